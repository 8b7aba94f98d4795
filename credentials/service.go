package credentials

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/internal/nilcheck"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/problem"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/apikeys"
	"github.com/specguard/specguard/security/sessions"
	"github.com/specguard/specguard/security/tokens"
)

// Stores are where the credential operations keep what they issue.
type Stores struct {
	// Accounts are the durable accounts (sqlstore.Store, or
	// NewMemoryAccounts for tests).
	Accounts Accounts
	// Keys are the durable API keys, usually in the same database
	// (sqlstore.Store, or security.NewMemoryKeyRecords).
	Keys security.KeyRecords
	// State is the fast shared state: token families, sessions, key marks,
	// accounts' mirrored state (security.NewMemoryStore for one process,
	// redisstore.New for a fleet).
	State security.Store
	// Limits keep the failed-password budgets: the guard's rate-limit
	// store is the natural one (limits.NewMemoryStore, or a Redis one).
	Limits limits.Store
}

// Option configures a Service.
type Option func(*config)

type config struct {
	issuer                string
	accessTTL, refreshTTL time.Duration
	sessionTTL, keyTTL    time.Duration
	sessionIdle           time.Duration
	verify                []*tokens.Key
	maxSessions, maxKeys  int
	origins               []string
	perIP, perAccount     Budget
	argon2                Argon2
	now                   func() time.Time
	clientAddr            func(*http.Request) netip.Addr
	problems              problem.Writer
	realm                 string
	log                   *slog.Logger
	storeTimeout          time.Duration
	registerRole          string
	passwordChecked       func(ctx context.Context, a *Account) // tests: runs after a password matched
}

// WithIssuer sets the iss and aud of tokens ("specguard" when absent).
func WithIssuer(iss string) Option { return func(c *config) { c.issuer = iss } }

// WithTokenTTL sets the lifetimes of access and refresh tokens (15 minutes
// and 30 days when absent; the access one at least a second, the refresh
// one at least the access one); a refresh token's is absolute.
func WithTokenTTL(access, refresh time.Duration) Option {
	return func(c *config) { c.accessTTL, c.refreshTTL = access, refresh }
}

// WithVerifyKeys adds keys that verify tokens but never sign: the previous
// keys of a rotation.
func WithVerifyKeys(keys ...*tokens.Key) Option {
	return func(c *config) { c.verify = append(c.verify, keys...) }
}

// WithSessionTTL sets how long a browser session lives (12 hours when
// absent; at least a second).
func WithSessionTTL(d time.Duration) Option { return func(c *config) { c.sessionTTL = d } }

// WithSessionIdle ends a browser session unused for d (an hour when
// absent; 0: only its TTL ends it).
func WithSessionIdle(d time.Duration) Option { return func(c *config) { c.sessionIdle = d } }

// WithAPIKeyTTL sets how long an API key lives (a year when absent).
func WithAPIKeyTTL(d time.Duration) Option { return func(c *config) { c.keyTTL = d } }

// WithMaxSessions caps the live logins (token families) of one account, and
// its live browser sessions (100 each when absent; 0 means no cap).
func WithMaxSessions(n int) Option { return func(c *config) { c.maxSessions = n } }

// WithMaxAPIKeys caps the live API keys of one account (50 when absent;
// 0 means no cap).
func WithMaxAPIKeys(n int) Option { return func(c *config) { c.maxKeys = n } }

// WithAllowedOrigins sets the origins (scheme://host[:port]) whose
// cookie-authenticated writes are accepted (the request's own host when
// absent).
func WithAllowedOrigins(origins ...string) Option {
	return func(c *config) { c.origins = append(c.origins, origins...) }
}

// WithFailedPasswords sets the failed password checks allowed per client
// address and per account (5 and 10 per 15 minutes when absent). New
// refuses a budget of no attempts or no window.
func WithFailedPasswords(perIP, perAccount Budget) Option {
	return func(c *config) { c.perIP, c.perAccount = perIP, perAccount }
}

// WithArgon2 sets the parameters passwords are hashed with (DefaultArgon2
// when absent). Hashes of other parameters are replaced at the next
// successful login.
func WithArgon2(p Argon2) Option { return func(c *config) { c.argon2 = p } }

// WithClock sets the clock (time.Now when absent or nil).
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithClientAddr says how to find a request's client address for the
// failed-password budgets per address: pass the guard's limiter's
// ClientAddr so that they count clients as its tiers do. The socket peer
// when absent or nil, as a limiter of the defaults counts it.
func WithClientAddr(f func(*http.Request) netip.Addr) Option {
	if f == nil {
		f = peerAddr
	}
	return func(c *config) { c.clientAddr = f }
}

// WithProblems sets the writer of every problem the operations answer, and
// so the prefix of their type URIs (pass the guard's).
func WithProblems(w problem.Writer) Option { return func(c *config) { c.problems = w } }

// WithRealm sets the realm of the WWW-Authenticate challenges the
// operations answer with ("specguard" when absent; pass the guard's).
func WithRealm(realm string) Option { return func(c *config) { c.realm = realm } }

// WithLog receives what the operations could not do but did not have to
// refuse for (a hash upgrade that failed, a tidying that failed); nothing
// is logged when absent or nil.
func WithLog(log *slog.Logger) Option {
	return func(c *config) {
		if log != nil {
			c.log = log
		}
	}
}

// WithStoreTimeout bounds every call to the stores that decides a request
// (100ms when absent; it must be positive).
func WithStoreTimeout(d time.Duration) Option { return func(c *config) { c.storeTimeout = d } }

// WithRegistrationRole sets the role of accounts that register themselves
// ("user" when absent). It must be one of the document's x-roles.
func WithRegistrationRole(role string) Option { return func(c *config) { c.registerRole = role } }

// Service serves the credential operations a document declares (see
// Fragment) and verifies the credentials it issues for the guard.
type Service struct {
	table     *policy.Table
	accounts  Accounts
	store     security.Store
	state     *security.Accounts
	tokens    *tokens.Service
	sessions  *sessions.Service
	keys      *apikeys.Service
	passwords *passwords
	// passwordRule: what a new password must be (from register's schema)
	passwordRule passwordRule
	failures     *failedPasswords
	cfg          config
	problems     problem.Writer
	cookie       string         // the session cookie's name: the document's apiKey-in-cookie scheme
	cookieSc     *policy.Scheme // that scheme
	routes       []route
	// keyOnlyBeside are the scopes the document asks of an API key only
	// beside another credential: a token of the client_credentials grant
	// may not hold them (see clientCredentials).
	keyOnlyBeside map[string]bool
	// grants are those the token operation's document declares.
	grants []string
}

// keyOnlyBesideScopes are the scopes a token minted from an API key (the
// client_credentials grant) may not hold: those of a token alternative
// (bearer, oauth2) of an operation that takes an API key, where no
// alternative takes the key alone with those scopes or fewer. The
// example's admin writes take an admin token, or an admin key beside the
// admin's own session; an operation may also take a key alone only with a
// stronger scope than its token alternative asks. A token minted from the
// key holding them would pass where the key alone is refused.
func keyOnlyBesideScopes(table *policy.Table) map[string]bool {
	out := map[string]bool{}
	for _, op := range table.Operations() {
		var alone [][]string // the scopes of each alternative of a key alone
		keyed := false
		for _, alt := range op.Security.Alternatives {
			for _, sr := range alt {
				if sr.Scheme.Type == policy.SchemeAPIKeyHeader {
					keyed = true
					if len(alt) == 1 {
						alone = append(alone, sr.Scopes)
					}
				}
			}
		}
		if !keyed {
			continue // a token is what it asks for: the grant is for that
		}
		for _, alt := range op.Security.Alternatives {
			var asked []string
			for _, sr := range alt {
				if t := sr.Scheme.Type; t == policy.SchemeBearer || t == policy.SchemeOAuth2 {
					asked = append(asked, sr.Scopes...)
				}
			}
			if slices.ContainsFunc(alone, func(key []string) bool {
				return !slices.ContainsFunc(key, func(sc string) bool { return !slices.Contains(asked, sc) })
			}) {
				continue // the key alone holding these passes as well
			}
			for _, sc := range asked {
				out[sc] = true
			}
		}
	}
	return out
}

// hostPrefix starts the name of a session cookie: a browser takes such a
// cookie only from this host, over HTTPS, for the whole site.
const hostPrefix = "__Host-"

// route is one credential operation of the document and its handler.
type route struct {
	op *policy.Operation
	h  http.HandlerFunc
}

// New returns the credential service of table: it signs with signing and
// keeps its records in stores. It checks every operation of table marked
// x-credential against what it serves (Fragment) and fails, naming file
// and line, when one differs or names an operation it does not serve, and
// when a session cookie (an apiKey scheme in a cookie) is not named
// __Host-..., which a sibling subdomain cannot set.
func New(table *policy.Table, signing *tokens.Key, stores Stores, opts ...Option) (*Service, error) {
	cfg := config{
		issuer: "specguard", accessTTL: 15 * time.Minute, refreshTTL: 30 * 24 * time.Hour, sessionTTL: 12 * time.Hour, sessionIdle: time.Hour,
		keyTTL: apikeys.DefaultTTL, maxSessions: 100, maxKeys: 50,
		perIP: Budget{Limit: 5, Window: 15 * time.Minute}, perAccount: Budget{Limit: 10, Window: 15 * time.Minute},
		argon2: DefaultArgon2, clientAddr: peerAddr, realm: "specguard", storeTimeout: 100 * time.Millisecond,
		registerRole: "user", log: slog.New(slog.DiscardHandler),
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	switch {
	case table == nil:
		return nil, errors.New("credentials: a compiled document (policy.Table) is required")
	case nilcheck.Nil(stores.Accounts) || nilcheck.Nil(stores.Keys) || nilcheck.Nil(stores.State) || nilcheck.Nil(stores.Limits):
		return nil, errors.New("credentials: Stores needs Accounts, Keys, State and Limits")
	case signing == nil:
		return nil, errors.New("credentials: a signing key is required")
	case cfg.perIP.Limit < 1 || cfg.perIP.Window <= 0 || cfg.perAccount.Limit < 1 || cfg.perAccount.Window <= 0:
		return nil, fmt.Errorf("credentials: WithFailedPasswords(%s, %s): each budget needs at least 1 attempt and a window", cfg.perIP, cfg.perAccount)
	case cfg.perIP.Window%time.Second != 0 || cfg.perAccount.Window%time.Second != 0:
		// RateLimit-Policy's w is whole seconds, as an x-rate-limit
		// tier's window is.
		return nil, fmt.Errorf("credentials: WithFailedPasswords(%s, %s): a window is a whole number of seconds", cfg.perIP, cfg.perAccount)
	case cfg.perIP.rounding() != nil || cfg.perAccount.rounding() != nil:
		return nil, fmt.Errorf("credentials: WithFailedPasswords(%s, %s): %v", cfg.perIP, cfg.perAccount, errors.Join(cfg.perIP.rounding(), cfg.perAccount.rounding()))
	case cfg.argon2.check() != nil:
		// Hashes of such parameters could never be checked: every
		// account registered would be refused at its first login.
		return nil, fmt.Errorf("credentials: WithArgon2(%+v): %v", cfg.argon2, cfg.argon2.check())
	case cfg.sessionTTL < time.Second:
		return nil, fmt.Errorf("credentials: WithSessionTTL(%s): want at least 1s (a cookie's Max-Age is whole seconds; every session would be over when made)", cfg.sessionTTL)
	case cfg.sessionIdle < 0:
		return nil, fmt.Errorf("credentials: WithSessionIdle(%s): want 0 (the TTL alone) or a positive duration", cfg.sessionIdle)
	case cfg.keyTTL <= 0:
		return nil, fmt.Errorf("credentials: WithAPIKeyTTL(%s): want a positive duration (every key would be expired when made)", cfg.keyTTL)
	case cfg.storeTimeout <= 0:
		return nil, fmt.Errorf("credentials: WithStoreTimeout(%s): want a positive duration (every store call would time out at once)", cfg.storeTimeout)
	case cfg.maxSessions < 0 || cfg.maxKeys < 0:
		return nil, fmt.Errorf("credentials: WithMaxSessions(%d), WithMaxAPIKeys(%d): want 0 (no cap) or more", cfg.maxSessions, cfg.maxKeys)
	}
	s := &Service{table: table, accounts: stores.Accounts, store: stores.State, cfg: cfg, problems: cfg.problems, keyOnlyBeside: keyOnlyBesideScopes(table), grants: grants}
	if op := credentialOp(table, "token"); op != nil {
		s.grants = declaredGrants(op)
	}
	for _, name := range slices.Sorted(maps.Keys(table.Schemes)) {
		sc := table.Schemes[name]
		if sc.Type != policy.SchemeAPIKeyCookie {
			continue
		}
		if sc.Param == sessions.CSRFCookie {
			// Login would set it twice, and a browser keeps the last:
			// the CSRF token, never the session.
			return nil, fmt.Errorf("credentials: the session cookie of scheme %q is named %q, the CSRF cookie's name: name it %q", sc.Name, sc.Param, hostPrefix+"session")
		}
		if s.cookieSc != nil && sc.Param != s.cookie {
			// Login sets one cookie, and the sessions take it under
			// either name: the two schemes would be one credential, and
			// browsers would carry only one of them.
			return nil, fmt.Errorf("credentials: schemes %q and %q are both session cookies (%s, %s): specguard's sessions issue one cookie and take it under either name; declare one",
				s.cookieSc.Name, sc.Name, s.cookie, sc.Param)
		}
		if !strings.HasPrefix(sc.Param, hostPrefix) {
			// Without the prefix a sibling subdomain (or a page over plain
			// HTTP) can set the cookie: a browser with no session would
			// be logged in as someone else.
			return nil, fmt.Errorf("credentials: the session cookie of scheme %q is named %q: name it %q", sc.Name, sc.Param, hostPrefix+strings.TrimPrefix(sc.Param, "__Secure-"))
		}
		if s.cookieSc == nil {
			s.cookie, s.cookieSc = sc.Param, sc
		}
	}
	var err error
	if s.passwords, err = newPasswords(cfg.argon2); err != nil {
		return nil, err
	}
	s.failures = &failedPasswords{store: stores.Limits, perIP: cfg.perIP, perAccount: cfg.perAccount, timeout: cfg.storeTimeout}
	s.state = security.NewAccounts(stores.State, source{stores.Accounts}, table.RoleScopes)
	s.keys = apikeys.New(stores.State, stores.Keys, apikeys.WithAccounts(s.state), apikeys.WithClock(cfg.now),
		apikeys.WithMax(cfg.maxKeys), apikeys.WithTTL(cfg.keyTTL))
	s.tokens, err = tokens.New(cfg.issuer, cfg.issuer, signing, stores.State,
		tokens.WithTTL(cfg.accessTTL, cfg.refreshTTL), tokens.WithVerifyKeys(cfg.verify...), tokens.WithClock(cfg.now),
		tokens.WithAccounts(s.state), tokens.WithMaxLogins(cfg.maxSessions), tokens.WithAPIKeys(s.keys))
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	sessOpts := []sessions.Option{sessions.WithTTL(cfg.sessionTTL), sessions.WithIdle(cfg.sessionIdle), sessions.WithAccounts(s.state),
		sessions.WithClock(cfg.now), sessions.WithMax(cfg.maxSessions)}
	if len(cfg.origins) > 0 {
		for _, o := range cfg.origins {
			if err := sessions.CheckOrigin(o); err != nil {
				return nil, fmt.Errorf("credentials: WithAllowedOrigins: %w", err)
			}
		}
		sessOpts = append(sessOpts, sessions.WithAllowedOrigins(cfg.origins...))
	}
	s.sessions = sessions.New(stores.State, table.RoleScopes, sessOpts...)
	if err := s.bind(); err != nil {
		return nil, err
	}
	return s, nil
}

// CheckDocument reports what New would refuse in table (a session cookie
// without the __Host- prefix, a credential operation of another shape
// than the fragment's) without opening anything, in stores of its own
// that it drops: a service checks its document before it creates or
// migrates a database for it.
func CheckDocument(table *policy.Table, opts ...Option) error {
	key, err := tokens.GenerateKey()
	if err != nil {
		return err
	}
	_, err = New(table, key, Stores{Accounts: NewMemoryAccounts(nil), Keys: security.NewMemoryKeyRecords(nil),
		State: security.NewMemoryStore(nil), Limits: limits.NewMemoryStore(nil)}, opts...)
	return err
}

// peerAddr is the socket peer of r as a limiter of the defaults counts it
// (limits.Limiter.ClientAddr): an IPv6 one as its /64 (one subscriber
// holds a whole /64, and counted per address would have 2^64 budgets), an
// IPv4 one a NAT64 presents as its IPv4 address.
var peerAddr = limits.New(limits.NewMemoryStore(nil)).ClientAddr

// Mount routes the document's credential operations on r, each at the
// method and path the document declares. Mount them on the router the
// guard guards, next to the app's own (generated) routes.
func (s *Service) Mount(r chi.Router) {
	for _, rt := range s.routes {
		r.Method(rt.op.Method, rt.op.Pattern, rt.h)
	}
}

// Authenticators verify what the service issues: access tokens (http
// bearer and oauth2 schemes), browser sessions (apiKey in a cookie) and API
// keys (apiKey in a header). Pass them to guard.New. With them, a token
// request the guard's validation refuses is answered as RFC 6749 section
// 5.2 says, not as a problem (guard.WithMalformedAnswer).
func (s *Service) Authenticators() []guard.Option {
	var opts []guard.Option
	for _, t := range []policy.SchemeType{policy.SchemeBearer, policy.SchemeOAuth2, policy.SchemeAPIKeyCookie, policy.SchemeAPIKeyHeader} {
		opts = append(opts, guard.WithAuthenticator(t, s.authenticator(t)))
	}
	if op := credentialOp(s.table, "token"); op != nil {
		opts = append(opts, guard.WithMalformedAnswer(op.ID, s.malformedToken))
	}
	return opts
}

// Tokens is the service's token service: it mints, verifies and revokes
// the access and refresh tokens the operations issue.
func (s *Service) Tokens() *tokens.Service { return s.tokens }

// Sessions is the service's browser-session service.
func (s *Service) Sessions() *sessions.Service { return s.sessions }

// APIKeys is the service's API-key service.
func (s *Service) APIKeys() *apikeys.Service { return s.keys }

// AccountState is the mirror of accounts' state every credential check
// reads (security.Accounts).
func (s *Service) AccountState() *security.Accounts { return s.state }

// roleGrants reports whether role is one of the document's x-roles.
func (s *Service) roleGrants(role string) bool { return s.table.RoleScopes(role) != nil }

// scopeDeclared reports whether scope is declared by an oauth2 scheme.
func (s *Service) scopeDeclared(scope string) bool {
	_, ok := slices.BinarySearch(s.table.Scopes, scope)
	return ok
}
