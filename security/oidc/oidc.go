// Package oidc checks the tokens of outside identity providers, for the
// openIdConnect schemes of a document: JWTs against the keys each provider
// publishes (OpenID Connect discovery, keyfunc and jwkset), opaque tokens
// by introspection (RFC 7662) where the scheme's x-introspect allows it.
// Its principals hold one credential of kind security.KindExternal (its ID
// the token's jti), their Subject "<scheme>:<sub>"; specguard's
// own API keys are never sent out.
//
// Start with New: one Authenticator serves every openIdConnect scheme of
// the table, for guard.WithAuthenticator(policy.SchemeOIDC, a). Settings
// the document cannot hold (a provider's URL per environment, the client
// credentials for introspection) come with WithSettings.
package oidc

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"

	"github.com/specguard/specguard/internal/redact"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/internal/cache"
	"github.com/specguard/specguard/security/internal/cred"
	"github.com/specguard/specguard/security/internal/jws"
)

// Settings are what the environment, not the document, says of one
// openIdConnect scheme.
type Settings struct {
	// URL replaces the scheme's openIdConnectUrl when not empty (a
	// provider per environment).
	URL string
	// ClientID and ClientSecret authenticate introspection requests
	// (client_secret_basic). Without them opaque tokens are refused.
	ClientID, ClientSecret string
}

// Status is the state of one scheme's provider.
type Status struct {
	Scheme string
	// Ready is true once keys have been fetched: from then on JWTs are
	// verified even while the provider is unreachable.
	Ready bool
	// Err is the last failure to reach the provider (discovery, keys or
	// introspection), nil when the last attempt succeeded. Once the
	// authenticator is closed (Close, or New's context ended), Ready is
	// false and Err says so.
	Err error
	// Changed is true when this status differs from the one before: the
	// provider became reachable, or unreachable, or failed differently.
	Changed bool
}

// Option configures an Authenticator.
type Option func(*oidcConfig)

type oidcConfig struct {
	settings      map[string]Settings
	client        *http.Client
	leeway        time.Duration
	now           func() time.Time
	refresh       time.Duration
	unknownKID    time.Duration
	introspectTTL time.Duration
	negativeTTL   time.Duration
	cacheSize     int
	status        func(Status)
}

// MaxLeeway is the most clock skew WithLeeway may allow: a token stays
// good that long past its exp.
const MaxLeeway = 5 * time.Minute

// check refuses settings that would turn a protection off or crash the
// key refresh: a negative or zero interval, a negative TTL or cache size,
// a leeway below 0 or above MaxLeeway.
func (c *oidcConfig) check() error {
	switch {
	case c.leeway < 0 || c.leeway > MaxLeeway:
		return fmt.Errorf("oidc.WithLeeway(%s): want 0 to %s", c.leeway, MaxLeeway)
	case c.refresh <= 0:
		return fmt.Errorf("oidc.WithRefresh(%s): want a positive interval", c.refresh)
	case c.unknownKID <= 0:
		return fmt.Errorf("oidc.WithUnknownKeyInterval(%s): want a positive interval (it bounds the key fetches made-up kids trigger)", c.unknownKID)
	case c.introspectTTL < 0:
		return fmt.Errorf("oidc.WithIntrospectionTTL(%s): want 0 or more", c.introspectTTL)
	case c.cacheSize < 0:
		return fmt.Errorf("oidc.WithCacheSize(%d): want 0 or more", c.cacheSize)
	}
	return nil
}

// WithSettings gives scheme its URL override and introspection
// credentials.
func WithSettings(scheme string, s Settings) Option {
	return func(c *oidcConfig) { c.settings[scheme] = s }
}

// WithHTTPClient fetches discovery documents and keys and introspects
// with client (a default client when absent); a timeout of 0 is taken as
// 5 s. Its responses are read up to 1 MiB, and redirects are not followed.
func WithHTTPClient(client *http.Client) Option {
	return func(c *oidcConfig) { c.client = client }
}

// WithLeeway allows clock skew when checking exp, nbf and iat (60 s
// when absent; New refuses one below 0 or above MaxLeeway).
func WithLeeway(d time.Duration) Option { return func(c *oidcConfig) { c.leeway = d } }

// WithClock sets the clock tokens are checked against (time.Now when
// absent or nil).
func WithClock(now func() time.Time) Option {
	return func(c *oidcConfig) {
		if now != nil {
			c.now = now
		}
	}
}

// WithRefresh fetches every provider's keys again every d (10 minutes
// when absent; New refuses d <= 0); keys are kept when a fetch fails,
// or answers a set without keys.
func WithRefresh(d time.Duration) Option { return func(c *oidcConfig) { c.refresh = d } }

// WithUnknownKeyInterval bounds the fetches a token with an unknown kid
// triggers: at most one per d (30 s when absent; New refuses d <= 0).
// Tokens arriving while the bound holds are refused at once rather than
// queued.
func WithUnknownKeyInterval(d time.Duration) Option {
	return func(c *oidcConfig) { c.unknownKID = d }
}

// WithIntrospectionTTL keeps an active introspection result for at
// most d (60 s when absent; 0 keeps none; New refuses d < 0), and never
// past the token's exp: a token revoked at the provider is refused within
// d. Inactive results are kept for at most 5 s.
func WithIntrospectionTTL(d time.Duration) Option {
	return func(c *oidcConfig) { c.introspectTTL = d }
}

// WithCacheSize bounds the verified tokens and introspection results
// kept per provider (100,000 each when absent; 0 keeps none; New refuses
// n < 0).
func WithCacheSize(n int) Option { return func(c *oidcConfig) { c.cacheSize = n } }

// WithStatus is called on every failure to reach a provider and
// whenever its state changes (see Status.Changed). It must not block.
func WithStatus(f func(Status)) Option { return func(c *oidcConfig) { c.status = f } }

// Authenticator verifies the bearer tokens of every openIdConnect
// scheme of a table: JWTs against the keys the provider publishes, opaque
// tokens by introspection (RFC 7662). It is a guard Authenticator for
// policy.SchemeOIDC. Its principals' Subject is "<scheme>:<sub>", so an
// outside subject never names a local account.
type Authenticator struct {
	providers map[string]*oidcProvider
	cancel    context.CancelFunc
	done      sync.WaitGroup
	closed    atomic.Bool
}

// errClosed: the authenticator was closed, or the context New was given
// ended.
var errClosed = errors.New("oidc authenticator closed (Close, or the context given to oidc.New ended): keys are no longer refreshed")

// maxProviderResponse bounds what is read of any provider response.
const maxProviderResponse = 1 << 20

// maxIntrospections bounds the introspection calls to one provider in
// flight at once.
const maxIntrospections = 16

// outsideAlgs are the algorithms an outside token may use: asymmetric
// only, so a public key can never be used as an HMAC secret.
var outsideAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"}

// New starts fetching the discovery document and keys of
// every openIdConnect scheme the table uses, in the background: until a
// provider's keys arrive its tokens are answered security.ErrUnavailable, and the
// other schemes are not held up. It fails when settings name a scheme the
// table does not use as openIdConnect, or give a URL that is not valid.
// The background work lasts until Close, or until ctx ends: from then on
// every token is answered security.ErrUnavailable (keys no longer
// refreshed would keep verifying a key the provider withdrew). Pass a
// context that lasts as long as the server, not a start-up deadline.
func New(ctx context.Context, table *policy.Table, opts ...Option) (*Authenticator, error) {
	cfg := oidcConfig{
		settings: map[string]Settings{}, leeway: 60 * time.Second, now: time.Now,
		refresh: 10 * time.Minute, unknownKID: 30 * time.Second, introspectTTL: 60 * time.Second,
		negativeTTL: 5 * time.Second, cacheSize: 100_000, status: func(Status) {},
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.client == nil {
		cfg.client = &http.Client{}
	}
	client := *cfg.client
	if client.Timeout <= 0 {
		client.Timeout = 5 * time.Second // never a call without bound
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	cfg.client = &client

	a := &Authenticator{providers: map[string]*oidcProvider{}}
	for name, s := range cfg.settings {
		scheme := table.Schemes[name]
		if scheme == nil || scheme.Type != policy.SchemeOIDC {
			return nil, fmt.Errorf("oidc.WithSettings(%q): no operation uses an openIdConnect scheme of that name", name)
		}
		if s.URL != "" {
			if err := policy.ValidProviderURL(s.URL); err != nil {
				return nil, fmt.Errorf("oidc.WithSettings(%q): URL: %v", name, err)
			}
		}
		if (s.ClientID == "") != (s.ClientSecret == "") {
			return nil, fmt.Errorf("oidc.WithSettings(%q): give ClientID and ClientSecret both or neither", name)
		}
	}
	urls := map[string]string{}
	for name, s := range cfg.settings {
		urls[name] = s.URL
	}
	if err := table.CheckProviderURLs(urls); err != nil {
		return nil, fmt.Errorf("oidc.WithSettings: %w", err)
	}
	for name, s := range cfg.settings {
		if s.ClientID == "" {
			continue
		}
		if err := table.CheckIntrospectionLimited(name); err != nil {
			return nil, fmt.Errorf("oidc.WithSettings(%q): %w", name, err)
		}
	}
	ctx, a.cancel = context.WithCancel(ctx)
	// The background work lives as long as ctx: once it ends no key is
	// refreshed, so a key the provider withdraws would verify for ever.
	// Tokens are undecided from then on, as after Close.
	context.AfterFunc(ctx, func() { a.closed.Store(true) })
	var prefixes []string
	for _, scheme := range table.Providers() {
		if pr := scheme.Provider; pr.Introspect && pr.OpaquePrefix != "" {
			prefixes = append(prefixes, pr.OpaquePrefix)
		}
	}
	for _, scheme := range table.Providers() {
		p := newOIDCProvider(scheme, cfg.settings[scheme.Name], &cfg)
		p.claimed = prefixes
		a.providers[scheme.Name] = p
		a.done.Add(1)
		go func() {
			defer a.done.Done()
			p.load(ctx)
		}()
	}
	return a, nil
}

// Close stops fetching keys. Tokens are undecided (security.ErrUnavailable) from
// then on, and Status says every provider is closed.
func (a *Authenticator) Close() {
	a.closed.Store(true)
	a.cancel()
	a.done.Wait()
}

// Status returns the state of every provider, sorted by scheme.
func (a *Authenticator) Status() []Status {
	out := make([]Status, 0, len(a.providers))
	closed := a.closed.Load()
	for _, p := range a.providers {
		st := p.status()
		if closed {
			st.Ready, st.Err = false, errClosed
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Scheme < out[j].Scheme })
	return out
}

// Carries reports true: an outside token may carry any claim (one that
// lacks it is counted by its client address under the tier).
func (a *Authenticator) Carries(*policy.Scheme, string) bool { return true }

// Authenticate verifies the request's bearer token for scheme: (nil, nil)
// when it has none. A token this provider did not issue (another issuer,
// or an opaque token it does not know) is an error wrapping security.ErrInvalid and
// security.ErrUnclaimed, so another scheme reading the Authorization header may
// still accept it; one that cannot be decided while the provider is
// unreachable wraps security.ErrUnavailable.
func (a *Authenticator) Authenticate(ctx context.Context, r *http.Request, scheme *policy.Scheme) (*security.Principal, error) {
	raw, err := cred.Bearer(r)
	if raw == "" || err != nil {
		return nil, err
	}
	p := a.providers[scheme.Name]
	if p == nil {
		return nil, fmt.Errorf("%w: no provider for scheme %s", security.ErrUnavailable, scheme.Name)
	}
	if a.closed.Load() {
		return nil, fmt.Errorf("%w: scheme %s: %w", security.ErrUnavailable, scheme.Name, errClosed)
	}
	return p.verify(ctx, raw)
}

// introspects reports whether an opaque token may be sent to this
// provider's introspection: never one of specguard's own credentials (an
// API key presented as a bearer token by mistake), never when the scheme
// says x-introspect: false, and otherwise only a token that starts with
// the scheme's x-introspect prefix or, without one, that no provider's
// prefix claims.
func (p *oidcProvider) introspects(raw string) bool {
	pr := p.scheme.Provider
	if !pr.Introspect {
		return false
	}
	if strings.HasPrefix(raw, cred.APIKeyPrefix) {
		// A key of specguard's, even one SplitKey refuses ("sg_...=",
		// still a b64token): an outside provider never sees it.
		return false
	}
	if pr.OpaquePrefix != "" {
		return strings.HasPrefix(raw, pr.OpaquePrefix)
	}
	for _, prefix := range p.claimed {
		if strings.HasPrefix(raw, prefix) {
			return false
		}
	}
	return true
}

// Outbound reports whether verifying r's bearer token for scheme would
// call the provider: an opaque token it would introspect and has no
// answer cached for. The guard then charges the request to the
// operation's anonymous tiers first, so that made-up tokens are throttled
// before anything is sent out.
func (a *Authenticator) Outbound(r *http.Request, scheme *policy.Scheme) bool {
	raw, err := cred.Bearer(r)
	p := a.providers[scheme.Name]
	if raw == "" || err != nil || p == nil || strings.Count(raw, ".") == 2 || !p.introspects(raw) {
		return false
	}
	st := p.state.Load()
	if st == nil || st.introspection == "" || p.id == "" {
		return false
	}
	sum := sha256.Sum256([]byte(raw))
	e, ok := p.introspect.Get(string(sum[:]))
	return !ok || !p.cfg.now().Before(e.until)
}

// oidcProvider is one scheme's provider.
type oidcProvider struct {
	scheme   *policy.Scheme
	url      string
	id, pass string
	cfg      *oidcConfig
	parser   *jwt.Parser

	state   atomic.Pointer[providerState] // nil until keys are loaded
	lastErr atomic.Pointer[errBox]        // the last call's failure (Status.Err)
	// keysErr is the last key fetch's failure, nil once one succeeded:
	// a token of an unknown kid is undecided only while the keys cannot
	// be fetched, whatever introspection calls did since.
	keysErr atomic.Pointer[errBox]
	keysMu  sync.Mutex // held by reportKeys
	// claimed are the x-introspect prefixes of every provider of the
	// table: a provider without one never introspects a token one of
	// them claims.
	claimed []string

	tokens     *cache.Bounded[*outsideEntry] // by the exact token (see cacheKey)
	introspect *cache.Bounded[*outsideEntry] // by the SHA-256 of the token
	flight     singleflight.Group
	calls      chan struct{} // introspection calls in flight
	client     *http.Client  // cfg.client, bounded (see providerTransport)
	unknownKID *rate.Limiter // key fetches for unknown kids
	// keysGen moves on whenever a fetch drops or changes a key: a token
	// verified before is verified again (see keyStore).
	keysGen atomic.Uint64
}

type errBox struct{ err error }

// providerState is what discovery and the first key fetch established.
type providerState struct {
	issuers       []string
	keyfunc       keyfunc.Keyfunc
	fetched       jwkset.Storage // the keys last fetched, read only
	introspection string         // the introspection endpoint, "" when there is none
}

// outsideEntry is a verified token: its principal and how long it holds.
type outsideEntry struct {
	p     *security.Principal // nil for a token introspection found inactive
	until time.Time
	nbf   time.Time
	gen   uint64 // the provider's keysGen when it was verified
}

// keyStore holds a provider's keys as last fetched. A fetch that drops a
// key, or changes one, moves gen on, so that the tokens verified with the
// keys before are verified again: a token signed with a key the provider
// has withdrawn (leaked, say) is refused from then on, though it was
// verified and cached before, and whatever exp it names.
type keyStore struct {
	jwkset.Storage
	p *oidcProvider
}

// errNoKeys: a key set answer without a key. jwkset reads a 200 of {},
// null or a JSON error object as an empty set: taken, it would drop every
// key the provider has and refuse all its tokens as invalid, while the
// provider reads as up.
var errNoKeys = errors.New("the key set holds no key; the keys fetched before are kept")

func (s keyStore) KeyReplaceAll(ctx context.Context, given []jwkset.JWK) error {
	if len(given) == 0 {
		return errNoKeys
	}
	old, err := s.Storage.KeyReadAll(ctx)
	if err != nil {
		return err
	}
	if err := s.Storage.KeyReplaceAll(ctx, given); err != nil {
		return err
	}
	kept := make(map[string]bool, len(given))
	for _, k := range given {
		kept[jwkID(k)] = true
	}
	for _, k := range old {
		if !kept[jwkID(k)] {
			s.p.keysGen.Add(1)
			break
		}
	}
	// Keys read and stored (a 200 whose body is not a key set is a
	// failure, reported by jwkset's error handler): the provider is
	// reachable. The first load reports it itself, once its state is set.
	if s.p.state.Load() != nil {
		s.p.reportKeys(nil)
	}
	return nil
}

// jwkID is a JWK as published (kid and public parameters included): two
// are equal when they are the same key under the same kid.
func jwkID(k jwkset.JWK) string {
	b, _ := json.Marshal(k.Marshal())
	return string(b)
}

func newOIDCProvider(s *policy.Scheme, set Settings, cfg *oidcConfig) *oidcProvider {
	p := &oidcProvider{scheme: s, url: s.Provider.URL, id: set.ClientID, pass: set.ClientSecret, cfg: cfg,
		calls: make(chan struct{}, maxIntrospections), unknownKID: rate.NewLimiter(rate.Every(cfg.unknownKID), 1)}
	client := *cfg.client
	client.Transport = providerTransport{next: cfg.client.Transport}
	p.client = &client
	if cfg.cacheSize > 0 {
		p.tokens, p.introspect = cache.New[*outsideEntry](cfg.cacheSize), cache.New[*outsideEntry](cfg.cacheSize)
	}
	if set.URL != "" {
		p.url = set.URL
	}
	p.parser = jwt.NewParser(
		jwt.WithValidMethods(outsideAlgs),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithAudience(s.Provider.Audience...),
		jwt.WithLeeway(cfg.leeway),
		jwt.WithTimeFunc(cfg.now),
		jwt.WithStrictDecoding(),
	)
	return p
}

func (p *oidcProvider) status() Status {
	st := Status{Scheme: p.scheme.Name, Ready: p.state.Load() != nil}
	if b := p.lastErr.Load(); b != nil {
		st.Err = b.err
	}
	return st
}

// reportKeys records the outcome of a key fetch, and reports it: one
// fetch's two records at a time (a refresh and an unknown kid's fetch run
// on their own goroutines), so that the status and keysErr agree.
func (p *oidcProvider) reportKeys(err error) {
	p.keysMu.Lock()
	defer p.keysMu.Unlock()
	p.keysErr.Store(&errBox{err: err})
	p.report(err)
}

// report records the outcome of a call to the provider and tells the
// status callback when the state changed.
func (p *oidcProvider) report(err error) {
	old := p.lastErr.Swap(&errBox{err: err})
	wasUp := old != nil && old.err == nil
	changed := old == nil || (err == nil) != wasUp || (err != nil && old.err.Error() != err.Error())
	if changed || err != nil {
		st := p.status()
		st.Err, st.Changed = err, changed
		p.cfg.status(st)
	}
}

// load fetches the discovery document and the keys, retrying with backoff
// until both arrive or ctx ends. From then on jwkset refreshes the keys.
func (p *oidcProvider) load(ctx context.Context) {
	wait := time.Second
	for {
		err := p.loadOnce(ctx)
		if err == nil || ctx.Err() != nil {
			return
		}
		p.report(err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Minute)
	}
}

// discovery is the part of an OpenID Provider Metadata document specguard
// reads.
type discovery struct {
	Issuer        string `json:"issuer"`
	JWKSURI       string `json:"jwks_uri"`
	Introspection string `json:"introspection_endpoint"`
}

// parseDiscovery reads a discovery document: issuer and jwks_uri are
// required, and every URL must pass policy.ValidProviderURL.
func parseDiscovery(data []byte) (*discovery, error) {
	var d discovery
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("discovery document is not JSON: %v", err)
	}
	if d.Issuer == "" || d.JWKSURI == "" {
		return nil, errors.New("discovery document lacks issuer or jwks_uri")
	}
	if err := policy.ValidProviderURL(d.JWKSURI); err != nil {
		return nil, fmt.Errorf("discovery document: jwks_uri %v", err)
	}
	if d.Introspection != "" {
		if err := policy.ValidProviderURL(d.Introspection); err != nil {
			return nil, fmt.Errorf("discovery document: introspection_endpoint %v", err)
		}
	}
	return &d, nil
}

// masked is err with the URL a *url.Error of it quotes masked (see
// internal/redact): a provider's URL may carry a secret in its query.
func masked(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = redact.URL(ue.URL)
	}
	return err
}

func (p *oidcProvider) loadOnce(ctx context.Context) (err error) {
	data, err := p.get(ctx, p.url)
	if err != nil {
		return fmt.Errorf("discovery %s: %w", redact.URL(p.url), masked(err))
	}
	d, err := parseDiscovery(data)
	if err != nil {
		return fmt.Errorf("%s: %w", redact.URL(p.url), err)
	}
	issuers := p.scheme.Provider.Issuers
	if len(issuers) == 0 {
		// OpenID Connect Discovery 1.0 section 4.3: the issuer is the
		// URL the document was found under, so that a document cannot
		// speak for another provider.
		if want := strings.TrimSuffix(d.Issuer, "/") + "/.well-known/openid-configuration"; want != p.url {
			return fmt.Errorf("%s: the discovery document names issuer %q, whose discovery URL is %s; declare x-issuers to accept it", redact.URL(p.url), d.Issuer, want)
		}
		issuers = []string{d.Issuer}
	}
	// The refresh goroutine lives as long as ctx; a failed attempt must
	// not leave one behind.
	sctx, cancel := context.WithCancel(ctx)
	defer func() {
		if err != nil {
			cancel()
		}
	}()
	storage, err := jwkset.NewStorageFromHTTP(d.JWKSURI, jwkset.HTTPClientStorageOptions{
		Storage:         keyStore{Storage: jwkset.NewMemoryStorage(), p: p},
		Client:          p.client,
		Ctx:             sctx,
		HTTPTimeout:     p.client.Timeout,
		RefreshInterval: p.cfg.refresh,
		RefreshErrorHandler: func(_ context.Context, err error) {
			p.reportKeys(fmt.Errorf("keys %s: %w", redact.URL(d.JWKSURI), masked(err)))
		},
	})
	if err != nil {
		return fmt.Errorf("keys %s: %w", redact.URL(d.JWKSURI), masked(err))
	}
	// Fetching again for an unknown kid is decided by p.unknownKID
	// (gatedKeys), never waited for: the client below always fetches.
	refetch, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs:          map[string]jwkset.Storage{d.JWKSURI: storage},
		RefreshUnknownKID: rate.NewLimiter(rate.Inf, 1),
		RateLimitWaitMax:  p.client.Timeout,
	})
	if err != nil {
		return err
	}
	keys := gatedKeys{Storage: refetch, fetched: storage, p: p}
	kf, err := keyfunc.New(keyfunc.Options{Ctx: sctx, Storage: keys, UseWhitelist: []jwkset.USE{jwkset.UseSig, ""}})
	if err != nil {
		return err
	}
	p.state.Store(&providerState{issuers: issuers, keyfunc: kf, fetched: storage, introspection: d.Introspection})
	p.reportKeys(nil)
	return nil
}

// get fetches url and returns its body when the status is 200.
func (p *oidcProvider) get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	return io.ReadAll(resp.Body)
}

// providerTransport caps every response body at maxProviderResponse.
type providerTransport struct{ next http.RoundTripper }

func (t providerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	next := t.next
	if next == nil {
		next = http.DefaultTransport
	}
	resp, err := next.RoundTrip(r)
	if err != nil {
		return resp, err
	}
	resp.Body = limitedBody{Reader: io.LimitReader(resp.Body, maxProviderResponse), Closer: resp.Body}
	return resp, err
}

// errKeysUnreachable: a token's kid is unknown and fetching the keys
// again failed, so the token cannot be decided.
var errKeysUnreachable = errors.New("the key is unknown and the provider's keys cannot be fetched")

// gatedKeys is the provider's key set: a kid it does not hold makes one
// fetch per unknown-kid interval (p.unknownKID), and a request finding the
// interval spent is answered at once, never queued behind the limiter: as
// undecided while the provider's keys cannot be fetched, else as unknown.
type gatedKeys struct {
	jwkset.Storage                // reads, and fetches again on an unknown kid
	fetched        jwkset.Storage // the keys last fetched, read only
	p              *oidcProvider
}

func (g gatedKeys) KeyRead(ctx context.Context, kid string) (jwkset.JWK, error) {
	jwk, err := g.fetched.KeyRead(ctx, kid)
	if !errors.Is(err, jwkset.ErrKeyNotFound) {
		return jwk, err
	}
	if g.p.unknownKID.Allow() {
		// The fetch this interval allows must not die with the caller
		// that happened to trigger it.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.p.client.Timeout)
		defer cancel()
		jwk, err = g.Storage.KeyRead(fctx, kid)
	}
	// Not found, and the keys could not be fetched the last time (by this
	// request, or by one before it in the interval): undecided, not
	// invalid.
	if errors.Is(err, jwkset.ErrKeyNotFound) {
		if b := g.p.keysErr.Load(); b != nil && b.err != nil {
			return jwk, fmt.Errorf("%w: %v", errKeysUnreachable, b.err)
		}
	}
	return jwk, err
}

type limitedBody struct {
	io.Reader
	io.Closer
}

// unclaimed marks err as a credential this provider did not issue.
func unclaimed(err error) error { return fmt.Errorf("%w (%w)", err, security.ErrUnclaimed) }

// cacheKey is raw's key in the token cache: raw itself, or for a token
// past 4 KiB (up to security.MaxTokenBytes) its SHA-256 after a '#', which
// no token holds, so that a cache entry stays under about 4 KiB. verify
// refuses a raw value starting with '#' before it looks in the cache: the
// hash of a token is not that token.
func cacheKey(raw string) string {
	if len(raw) <= 4<<10 {
		return raw
	}
	sum := sha256.Sum256([]byte(raw))
	return "#" + string(sum[:])
}

func (p *oidcProvider) verify(ctx context.Context, raw string) (*security.Principal, error) {
	now := p.cfg.now()
	gen := p.keysGen.Load()
	if raw != "" && raw[0] == '#' {
		return nil, cred.ErrBadTokenSyntax
	}
	key := cacheKey(raw)
	if e, ok := p.tokens.Get(key); ok {
		if now.Before(e.until) && !now.Before(e.nbf) && e.gen == gen {
			return e.p, nil
		}
		p.tokens.Del(key)
	}
	// A cached token passed this when it was verified: only an unknown
	// one is scanned (an RS256 token is near a kilobyte).
	if !cred.IsB64Token(raw) {
		return nil, cred.ErrBadTokenSyntax
	}
	if strings.Count(raw, ".") != 2 {
		if !p.introspects(raw) {
			return nil, unclaimed(fmt.Errorf("%w: not an opaque token of %s", security.ErrInvalid, p.scheme.Name))
		}
		return p.introspected(ctx, raw, now)
	}
	if len(raw) > security.MaxTokenBytes || !jws.IsCompact(raw) {
		return nil, unclaimed(fmt.Errorf("%w: malformed token", security.ErrInvalid))
	}
	payload, err := decodePayload(raw)
	if err != nil {
		return nil, unclaimed(err)
	}
	// Declared issuers decide even before the keys arrive, so that other
	// issuers' tokens are refused rather than left undecided.
	st := p.state.Load()
	issuers := p.scheme.Provider.Issuers
	if st != nil {
		issuers = st.issuers
	}
	if iss, _ := payload["iss"].(string); len(issuers) > 0 && !slices.Contains(issuers, iss) {
		return nil, unclaimed(fmt.Errorf("%w: issuer is not %s's", security.ErrInvalid, p.scheme.Name))
	}
	// For another audience (another scheme of the same provider, say):
	// passed on before its signature is checked, which the scheme that
	// takes it does; a signed token failing the audience below is too.
	if aud, ok := audiences(payload["aud"]); ok && !slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(p.scheme.Provider.Audience, a) }) {
		return nil, unclaimed(fmt.Errorf("%w: wrong audience", security.ErrInvalid))
	}
	if st == nil {
		return nil, unclaimed(fmt.Errorf("%w: the %s provider's keys have not been fetched yet", security.ErrUnavailable, p.scheme.Name))
	}
	if err := checkClaims(payload); err != nil {
		return nil, err
	}
	var c jwt.RegisteredClaims
	_, err = p.parser.ParseWithClaims(raw, &c, func(tok *jwt.Token) (any, error) {
		if _, crit := tok.Header["crit"]; crit {
			return nil, jws.Reason("crit header is not supported")
		}
		if typ, present := tok.Header["typ"]; present {
			// A refresh, ID or logout token says so here (rt+jwt,
			// id_token+jwt, logout+jwt): only an access token passes.
			s, _ := typ.(string)
			if s = strings.TrimPrefix(strings.ToLower(s), "application/"); s != "jwt" && s != "at+jwt" {
				return nil, jws.Reason("the header's typ is not an access token's")
			}
		}
		if set, ok := sharedKID(ctx, st.fetched, tok); ok {
			return publicKeys(set)
		}
		key, err := st.keyfunc.KeyfuncCtx(ctx)(tok)
		if err != nil {
			return nil, err
		}
		return publicKeys(key)
	})
	if errors.Is(err, errKeysUnreachable) {
		return nil, fmt.Errorf("%w: %s: %v", security.ErrUnavailable, p.scheme.Name, errKeysUnreachable)
	}
	if err != nil {
		refused := fmt.Errorf("%w: %s", security.ErrInvalid, jws.Describe(err))
		if errors.Is(err, jwt.ErrTokenInvalidAudience) {
			// Signed by this provider for another audience: another
			// scheme of the same provider (one per audience of the API)
			// may take it.
			return nil, unclaimed(refused)
		}
		return nil, refused
	}
	pr, err := p.principal(payload, c.Subject, c.ID)
	if err != nil {
		return nil, err
	}
	e := &outsideEntry{p: pr, until: c.ExpiresAt.Add(p.cfg.leeway), gen: gen}
	if c.NotBefore != nil {
		e.nbf = c.NotBefore.Add(-p.cfg.leeway)
	}
	p.tokens.Put(key, e)
	return pr, nil
}

// sharedKID returns, when tok's kid names more than one fetched key (RFC
// 7517 4.5 lets keys of another type or use share one: a provider's
// encryption key and its signing key), those of them that may verify it,
// with keyfunc's filters: a use of sig or none, and an alg of none or the
// token's. keyfunc reads the first key of a kid only, and refused every
// token of the others. ok is false for a kid of one key or none, left to
// keyfunc (which fetches again for an unknown one).
func sharedKID(ctx context.Context, fetched jwkset.Storage, tok *jwt.Token) (set jwt.VerificationKeySet, ok bool) {
	kid, isString := tok.Header["kid"].(string)
	if !isString {
		return set, false
	}
	all, err := fetched.KeyReadAll(ctx)
	if err != nil {
		return set, false
	}
	named := 0
	for _, k := range all {
		m := k.Marshal()
		if m.KID != kid {
			continue
		}
		named++
		if (m.USE != jwkset.UseSig && m.USE != "") || (m.ALG != "" && m.ALG.String() != tok.Method.Alg()) {
			continue
		}
		key := k.Key()
		if pk, isPrivate := key.(interface{ Public() crypto.PublicKey }); isPrivate {
			key = pk.Public()
		}
		set.Keys = append(set.Keys, key)
	}
	return set, named > 1
}

// audiences reads aud, a string or a list of strings; ok is false for
// anything else, left to the parser to refuse.
func audiences(aud any) (out []string, ok bool) {
	switch v := aud.(type) {
	case string:
		return []string{v}, true
	case []any:
		for _, a := range v {
			s, isString := a.(string)
			if !isString {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	}
	return nil, false
}

// publicKeys keeps only asymmetric public keys of the strength specguard
// asks of its own (RSA of 2048 bits or more; ECDSA on P-256 or P-384, the
// curves of ES256 and ES384): an "oct" key in a JWK Set would let an HMAC
// token verify with a secret the provider published, and a short RSA key
// can be factored.
func publicKeys(key any) (any, error) {
	public := func(k any) bool {
		switch k := k.(type) {
		case *rsa.PublicKey:
			return k.N.BitLen() >= 2048
		case *ecdsa.PublicKey:
			return k.Curve == elliptic.P256() || k.Curve == elliptic.P384()
		case ed25519.PublicKey:
			return true
		}
		return false
	}
	if set, ok := key.(jwt.VerificationKeySet); ok {
		out := jwt.VerificationKeySet{}
		for _, k := range set.Keys {
			if public(k) {
				out.Keys = append(out.Keys, k)
			}
		}
		if len(out.Keys) == 0 {
			return nil, jws.Reason("no key fits the token")
		}
		return out, nil
	}
	if !public(key) {
		return nil, jws.Reason("the key is not an asymmetric public key of an accepted size")
	}
	return key, nil
}

// decodePayload decodes a JWS's payload, unverified, for routing by iss
// and for claims golang-jwt does not type.
func decodePayload(raw string) (map[string]any, error) {
	_, rest, _ := strings.Cut(raw, ".")
	seg, _, _ := strings.Cut(rest, ".")
	data, err := base64.RawURLEncoding.Strict().DecodeString(seg)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed token", security.ErrInvalid)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, fmt.Errorf("%w: malformed token", security.ErrInvalid)
	}
	return m, nil
}

// registered are the claims golang-jwt reads; encoding/json matches
// their names whatever the case, which the checks here do not.
var registered = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti"}

// checkClaims refuses what golang-jwt would let through: exp, nbf or iat
// that are not JSON numbers in range (it also takes strings), registered
// claim names in another case ("EXP", which it would read as exp), and
// tokens that are not plain bearer access tokens: bound to a key (cnf:
// DPoP or mTLS, whose proof the guard cannot check), of a token_use other
// than access, or of a Keycloak typ other than Bearer (an ID or refresh
// token).
func checkClaims(claims map[string]any) error {
	for k := range claims {
		for _, name := range registered {
			if k != name && strings.EqualFold(k, name) {
				return fmt.Errorf("%w: a claim differs from %s only in case", security.ErrInvalid, name)
			}
		}
	}
	if err := numericTimeClaims(claims); err != nil {
		return err
	}
	if _, bound := claims["cnf"]; bound {
		return fmt.Errorf("%w: the token is bound to a key (cnf); only bearer tokens are accepted", security.ErrInvalid)
	}
	// Amazon Cognito's token_use (and others'): access, else id or
	// refresh.
	if use, present := claims["token_use"]; present {
		if s, _ := use.(string); s != "access" && s != "access_token" {
			return fmt.Errorf("%w: the token's token_use is not an access token's", security.ErrInvalid)
		}
	}
	if typ, present := claims["typ"]; present {
		if s, _ := typ.(string); !strings.EqualFold(s, "bearer") {
			return fmt.Errorf("%w: the token's typ claim is not an access token's", security.ErrInvalid)
		}
		return nil // Keycloak's access token, which may carry the login's nonce
	}
	// An ID token with typ JWT, or none (most providers'), whose aud is a
	// client that shares its id with an audience of the API: only an ID
	// token carries these (OpenID Connect Core 1.0, sections 2 and 3.3.2.11).
	for _, name := range idTokenClaims {
		if _, present := claims[name]; present {
			return fmt.Errorf("%w: the token carries %s: an ID token, not an access token", security.ErrInvalid, name)
		}
	}
	return nil
}

// idTokenClaims are claims of ID tokens that access tokens do not carry.
var idTokenClaims = []string{"nonce", "at_hash", "c_hash", "s_hash"}

// numericTimeClaims refuses exp, nbf or iat that are not NumericDates
// (RFC 7519 section 2: JSON numbers; golang-jwt also takes strings).
func numericTimeClaims(claims map[string]any) error {
	for _, name := range []string{"exp", "nbf", "iat"} {
		if v, present := claims[name]; present {
			if _, ok := jws.NumericTime(v); !ok {
				return fmt.Errorf("%w: %s is not a number of seconds", security.ErrInvalid, name)
			}
		}
	}
	return nil
}

// principal makes the principal of verified claims.
func (p *oidcProvider) principal(claims map[string]any, sub, jti string) (*security.Principal, error) {
	if v, present := claims["sub"]; present {
		// Only a token that names no user stands for its client: a sub
		// that is no name is not read as none.
		if s, ok := v.(string); !ok || s == "" {
			return nil, fmt.Errorf("%w: sub is not a name", security.ErrInvalid)
		}
	} else if sub == "" {
		sub, _ = claims["client_id"].(string)
	}
	if sub == "" {
		return nil, fmt.Errorf("%w: token names no subject (sub or client_id)", security.ErrInvalid)
	}
	scopes, err := outsideScopes(claims, p.scheme.Provider.ScopesClaim)
	if err != nil {
		return nil, err
	}
	values := make(map[string]string, len(claims))
	for k, v := range claims {
		switch v := v.(type) {
		case string:
			values[k] = v
		case json.Number:
			values[k] = v.String()
		case bool:
			values[k] = fmt.Sprint(v)
		}
	}
	return &security.Principal{Subject: p.scheme.Name + ":" + sub, Scheme: p.scheme.Name, Scopes: scopes, Credentials: []security.Credential{security.NewCredential(security.KindExternal, jti)}, Claims: values}, nil
}

// outsideScopes reads the token's scopes: from claim when given (a
// space-separated string or an array of strings, each item one scope), else from scope (a
// string), else from scp (a string or an array).
func outsideScopes(claims map[string]any, claim string) ([]string, error) {
	names := []string{"scope", "scp"}
	if claim != "" {
		names = []string{claim}
	}
	for _, name := range names {
		v, present := claims[name]
		if !present {
			continue
		}
		var scopes []string
		// oneScope keeps s when it is one scope: "not admin" is not
		// admin, and an item with white space in it is none.
		oneScope := func(s string) {
			if f := strings.Fields(s); len(f) == 1 && f[0] == s {
				scopes = append(scopes, s)
			}
		}
		switch v := v.(type) {
		case string:
			// Separated by spaces (U+0020) alone (RFC 6749 3.3): a
			// no-break space, a tab or a line break in a value is not
			// a separator, and "read\u00a0admin" grants neither.
			for item := range strings.SplitSeq(v, " ") {
				oneScope(item)
			}
		case []any:
			for _, item := range v {
				s, ok := item.(string)
				if !ok {
					return nil, fmt.Errorf("%w: %s holds a non-string", security.ErrInvalid, name)
				}
				oneScope(s)
			}
		default:
			return nil, fmt.Errorf("%w: %s is neither a string nor an array", security.ErrInvalid, name)
		}
		sort.Strings(scopes)
		return slices.Compact(scopes), nil
	}
	return []string{}, nil
}
