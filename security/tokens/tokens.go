// Package tokens is specguard's own tokens: short-lived access tokens
// (JWTs, signed with a Key) and refresh tokens that rotate, with reuse
// detection ending the whole login, logout and logout everywhere, and the
// public keys as a JWKS.
//
// Start with New: give it an issuer and audience, a signing Key
// (GenerateKey, ReadKeyFile) and the Store part that keeps logins
// (security.FamilyStore). Bearer is the guard's Authenticator for http
// bearer and oauth2 schemes.
package tokens

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/specguard/specguard/internal/clock"
	"github.com/specguard/specguard/internal/nilcheck"
	"github.com/specguard/specguard/internal/onetrip"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/apikeys"
	"github.com/specguard/specguard/security/internal/cred"
	"github.com/specguard/specguard/security/internal/hold"
	"github.com/specguard/specguard/security/internal/jws"
)

// Token types, carried in the JOSE header "typ" so an access token can
// never stand in for a refresh token or the other way round (RFC 9068, 8725).
const (
	TypeAccess  = "at+jwt"
	TypeRefresh = "rt+jwt"
)

// Claims are the claims of specguard's tokens.
type Claims struct {
	jwt.RegisteredClaims
	Family string `json:"fam"`
	// AccountVersion (refresh tokens) is the account's version at login:
	// a refresh is refused once the account's NotBefore passed it.
	AccountVersion int64 `json:"av,omitempty"`
	// Grant (refresh tokens) is the space-separated scopes granted at
	// login: every refresh yields them, bounded by the role's current
	// scopes, never more (RFC 6749 section 6). A refresh token without it
	// (minted before it existed) is refused: what it was granted is unknown.
	Grant *string `json:"grant,omitempty"`
	Scope string  `json:"scope,omitempty"` // access tokens: space-separated
	Role  string  `json:"role,omitempty"`  // access tokens
	Fresh bool    `json:"fresh,omitempty"` // access tokens minted from a password
	// Key (access tokens of the client_credentials grant) is the id of the
	// API key the token was minted from: it holds while the key does.
	Key string `json:"key,omitempty"`

	// principals are the read-only Principals made from these claims.
	principals hold.Memo
	// revoked is set once the store said the token was revoked or
	// replaced, which is for good: a cached token so marked is refused
	// without asking the store again.
	revoked atomic.Bool
}

// principal returns the principal these access-token claims make when they
// satisfy scheme, for an account in state acct (nil: no account state):
// the token's scopes that the account's current role still grants. It is
// shared by every request presenting the same cached token while the
// account stays at that version, so it must never be modified.
func (c *Claims) principal(scheme string, acct *security.Account, accounts *security.Accounts) *security.Principal {
	if p := c.principals.Get(scheme, acct); p != nil {
		return p
	}
	p := &security.Principal{
		Subject: c.Subject,
		Role:    c.Role,
		Scheme:  scheme,
		Scopes:  splitScopes(c.Scope),
		Credentials: []security.Credential{&Access{
			id: c.ID, family: c.Family, key: c.Key, fresh: c.Fresh,
		}},
		Claims: map[string]string{security.ClaimFamily: c.Family},
	}
	if acct != nil {
		p.Role = acct.Role
		p.Scopes = accounts.Bounded(p.Scopes, acct)
	}
	c.principals.Put(p, acct)
	return p
}

// Access is the access token that admitted a request, as it stands in
// Principal.Credentials (kind security.KindToken); AccessOf finds it.
type Access struct {
	id, family, key string
	fresh           bool
}

// AccessOf returns the access token among the credentials that admitted
// p's request, or nil.
func AccessOf(p *security.Principal) *Access {
	a, _ := p.Credential(security.KindToken).(*Access)
	return a
}

// Kind is security.KindToken.
func (a *Access) Kind() string { return security.KindToken }

// ID is the token's jti.
func (a *Access) ID() string { return a.id }

// Family is the login the token belongs to: its refresh-token family,
// which Service.Revoke ends. A token minted from an API key has no login:
// its family is "key:" and the key's id, which nothing revokes but the
// key's revocation.
func (a *Access) Family() string { return a.family }

// APIKey is the id of the API key the token was minted from (the
// client_credentials grant), or "".
func (a *Access) APIKey() string { return a.key }

// Fresh reports whether the token was minted from a password, not a
// refresh.
func (a *Access) Fresh() bool { return a.fresh }

// revoker is a token's claims as the hold.Forgetter of the token.
type revoker struct{ c *Claims }

// Forget marks the claims revoked, once the store said so: a replay is
// refused without asking the store again.
func (r revoker) Forget(string) { r.c.revoked.Store(true) }

// Pair is a freshly minted access and refresh token.
type Pair struct {
	Access        string
	AccessClaims  *Claims
	Refresh       string
	RefreshClaims *Claims
	ExpiresIn     time.Duration // lifetime of the access token
}

// Option configures a Service.
type Option func(*Service)

// WithTTL sets the access and refresh lifetimes (15 minutes and 30 days
// when absent; the access one at least a second, the refresh one at least
// the access one). The refresh lifetime is absolute: rotation never extends it.
func WithTTL(access, refresh time.Duration) Option {
	return func(t *Service) { t.accessTTL, t.refreshTTL = access, refresh }
}

// WithVerifyKeys adds keys that verify but never sign: the previous keys of
// a rotation, so tokens they signed stay valid until they expire.
func WithVerifyKeys(keys ...*Key) Option {
	return func(t *Service) { t.extra = append(t.extra, keys...) }
}

// WithClock sets the clock (time.Now when absent or nil).
func WithClock(now func() time.Time) Option { return func(t *Service) { t.clock = clock.New(now) } }

// WithLeeway sets the allowed clock skew for exp, nbf and iat (30s when
// absent; New refuses one below 0 or above MaxLeeway).
func WithLeeway(d time.Duration) Option { return func(t *Service) { t.leeway = d } }

// MaxLeeway is the most clock skew WithLeeway may allow: a token stays
// good that long past its exp.
const MaxLeeway = 5 * time.Minute

// WithAccounts makes every token hold for its account's current state: a
// disabled account's tokens are refused, a token holds only the scopes its
// account's current role grants, and a login records the account version
// it was minted at, so that a later disable or logout everywhere kills it.
// Without it, tokens are checked against their family alone.
func WithAccounts(a *security.Accounts) Option { return func(t *Service) { t.accounts = a } }

// WithMaxLogins caps the live logins (refresh-token families) of one
// account: a login past it fails with ErrTooMany. Unlimited when absent.
func WithMaxLogins(n int) Option { return func(t *Service) { t.maxLogins = n } }

// WithAPIKeys lets the service mint access tokens from the API keys of
// keys (MintForKey, the client_credentials grant): such a token holds only
// while its key does, checked in the store as the key is.
func WithAPIKeys(keys *apikeys.Service) Option { return func(t *Service) { t.apiKeys = keys } }

// WithCacheSize bounds the verified-token cache (10000 entries when absent;
// 0 disables it).
func WithCacheSize(n int) Option { return func(t *Service) { t.cacheSize = n } }

// Service mints and verifies specguard's access and refresh tokens and
// drives refresh rotation through a Store.
type Service struct {
	issuer, audience      string
	signing               *Key
	extra                 []*Key
	keys                  map[string]*Key
	accessTTL, refreshTTL time.Duration
	leeway                time.Duration
	clock                 clock.Clock
	store                 security.FamilyStore
	accounts              *security.Accounts
	maxLogins             int
	cacheSize             int
	cache                 *tokenCache
	parser                *jwt.Parser
	apiKeys               *apikeys.Service // for tokens minted from API keys; nil when none are
}

// New returns a service that signs with signing and stores
// state in store. issuer and audience are required and checked on every token.
func New(issuer, audience string, signing *Key, store security.FamilyStore, opts ...Option) (*Service, error) {
	if issuer == "" || audience == "" {
		return nil, errors.New("token service: issuer and audience are required")
	}
	if signing == nil || !signing.CanSign() {
		return nil, errors.New("token service: a signing key with a private part is required")
	}
	if nilcheck.Nil(store) {
		return nil, errors.New("token service: a store is required (security.NewMemoryStore, or redisstore.New for a fleet)")
	}
	t := &Service{
		issuer: issuer, audience: audience, signing: signing, store: store,
		accessTTL: 15 * time.Minute, refreshTTL: 30 * 24 * time.Hour,
		leeway: 30 * time.Second, cacheSize: 10000,
		keys: map[string]*Key{},
	}
	for _, opt := range opts {
		opt(t)
	}
	if t.accessTTL < time.Second || t.refreshTTL < t.accessTTL {
		// A token's times are whole seconds: one shorter expires as it is
		// issued.
		return nil, fmt.Errorf("token service: need 1s <= access TTL (%s) <= refresh TTL (%s)", t.accessTTL, t.refreshTTL)
	}
	if t.leeway < 0 || t.leeway > MaxLeeway {
		return nil, fmt.Errorf("token service: leeway %s: want 0 to %s", t.leeway, MaxLeeway)
	}
	var algs []string
	extra := t.extra[:0:0]
	for i, k := range append([]*Key{signing}, t.extra...) {
		if prev, dup := t.keys[k.ID]; dup && prev != k {
			return nil, fmt.Errorf("token service: two keys share kid %s", k.ID)
		} else if dup {
			continue // the same key given again: one key, listed once in JWKS
		}
		t.keys[k.ID] = k
		if i > 0 {
			extra = append(extra, k)
		}
		if !slices.Contains(algs, k.Algorithm()) {
			algs = append(algs, k.Algorithm())
		}
	}
	t.extra = extra
	t.parser = jwt.NewParser(
		jwt.WithValidMethods(algs),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(audience),
		jwt.WithLeeway(t.leeway),
		jwt.WithStrictDecoding(),
		jwt.WithTimeFunc(t.clock.Now),
	)
	if t.cacheSize > 0 {
		t.cache = newTokenCache(t.cacheSize)
	}
	return t, nil
}

// AccessTTL is the lifetime of access tokens.
func (t *Service) AccessTTL() time.Duration { return t.accessTTL }

// JWKS returns the public keys that verify tokens, as an RFC 7517 set.
func (t *Service) JWKS() []map[string]any {
	out := []map[string]any{}
	for _, k := range append([]*Key{t.signing}, t.extra...) {
		if jwk := k.JWK(); jwk != nil {
			out = append(out, jwk)
		}
	}
	return out
}

// Login starts a new family for subject (a password login) and mints a
// fresh access token with scopes and a refresh token.
func (t *Service) Login(ctx context.Context, subject, role string, scopes []string, device string) (*Pair, error) {
	version, err := t.accounts.MintVersion(ctx, subject)
	if err != nil {
		return nil, err
	}
	now := t.clock.Now()
	fam := &security.Family{ID: security.NewID(), Subject: subject, Device: device, AccountVersion: version, Expires: now.Add(t.refreshTTL)}
	pair, err := t.mint(subject, role, scopes, strings.Join(scopes, " "), fam.ID, fam.Expires, version, true)
	if err != nil {
		return nil, err
	}
	fam.RefreshJTI, fam.AccessJTI = pair.RefreshClaims.ID, pair.AccessClaims.ID
	if err := t.store.CreateFamily(ctx, fam, t.maxLogins); err != nil {
		return nil, hold.Unavailable(err)
	}
	return pair, nil
}

// Refresh spends refresh token raw and returns its successor pair. scopes
// gives the subject's current role and its scopes (a role may have
// changed); the new access token holds those the login was granted; an
// error there stops the refresh. Reuse of a spent token revokes the family and
// returns an error wrapping ErrInvalid and ErrReused.
func (t *Service) Refresh(ctx context.Context, raw string, scopes func(subject string) (role string, scopes []string, err error)) (*Pair, error) {
	c, err := t.parse(raw, TypeRefresh)
	if err != nil {
		return nil, err
	}
	if t.accounts != nil {
		acct, err := t.accounts.Reload(ctx, c.Subject)
		if err != nil {
			return nil, security.AccountError(err)
		}
		if acct.Disabled || c.AccountVersion < acct.NotBefore {
			return nil, fmt.Errorf("%w: the login was ended", security.ErrInvalid)
		}
	}
	if c.Grant == nil {
		// Minted before refresh tokens recorded their grant: what the login
		// was given is unknown, and the role's scopes may be more.
		return nil, fmt.Errorf("%w: the refresh token records no grant; log in again", security.ErrInvalid)
	}
	role, sc, err := scopes(c.Subject)
	if err != nil {
		return nil, err
	}
	grant := *c.Grant
	granted := strings.Fields(grant)
	sc = slices.DeleteFunc(slices.Clone(sc), func(s string) bool { return !slices.Contains(granted, s) })
	pair, err := t.mint(c.Subject, role, sc, grant, c.Family, c.ExpiresAt.Time, c.AccountVersion, false)
	if err != nil {
		return nil, err
	}
	err = t.store.RotateFamily(ctx, c.Subject, c.Family, c.ID, pair.RefreshClaims.ID, pair.AccessClaims.ID)
	switch {
	case err == nil:
		return pair, nil
	case errors.Is(err, security.ErrReused):
		return nil, fmt.Errorf("%w: %w", security.ErrInvalid, security.ErrReused)
	case errors.Is(err, security.ErrNotFound):
		return nil, fmt.Errorf("%w: the refresh token was revoked", security.ErrInvalid)
	}
	return nil, hold.Unavailable(err)
}

// MintForKey mints an access token for the owner of API key k (the
// client_credentials grant of RFC 6749 section 4.4) holding scopes, which
// the caller has bounded by the key's own. The token is not fresh, comes
// without a refresh token (Pair.Refresh is empty), and holds only while k
// does: revoking the key ends it on every instance. It needs WithAPIKeys.
func (t *Service) MintForKey(ctx context.Context, k *security.APIKey, role string, scopes []string) (*Pair, error) {
	if t.apiKeys == nil {
		return nil, errors.New("token service: MintForKey needs WithAPIKeys")
	}
	if _, err := t.accounts.MintVersion(ctx, k.Subject); err != nil {
		return nil, err
	}
	now := t.clock.Now()
	exp := now.Add(t.accessTTL)
	if exp.After(k.Expires) {
		exp = k.Expires
	}
	ac := &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: t.issuer, Subject: k.Subject, Audience: jwt.ClaimStrings{t.audience},
			ExpiresAt: jwt.NewNumericDate(exp), IssuedAt: jwt.NewNumericDate(now), ID: security.NewID(),
		},
		Family: keyFamily + k.ID, Scope: strings.Join(scopes, " "), Role: role, Key: k.ID,
	}
	access, err := t.sign(ac, TypeAccess)
	if err != nil {
		return nil, err
	}
	return &Pair{Access: access, AccessClaims: ac, ExpiresIn: exp.Sub(now)}, nil
}

// keyFamily starts the family of a token minted from an API key: no login
// (no refresh-token family) stands behind it.
const keyFamily = "key:"

// Revoke ends one login of subject, its refresh-token family (a token's
// Claims.Family, a principal's AccessOf(p).Family()): logout. Every token of that
// login is refused from the next request on, on every instance.
// ErrNotFound when the login has ended already. (Logging out everywhere
// ends the account's every credential: credentials.Service.LogoutAll.)
func (t *Service) Revoke(ctx context.Context, subject, family string) error {
	if err := t.store.RevokeFamily(ctx, subject, family); err != nil {
		if errors.Is(err, security.ErrNotFound) {
			return err
		}
		return hold.Unavailable(err)
	}
	return nil
}

// RefreshClaims verifies a refresh token without spending it (for logout).
func (t *Service) RefreshClaims(raw string) (*Claims, error) { return t.parse(raw, TypeRefresh) }

// mint signs an access token holding scopes and a refresh token carrying
// grant, the scopes granted at login.
func (t *Service) mint(subject, role string, scopes []string, grant, family string, refreshExp time.Time, version int64, fresh bool) (*Pair, error) {
	now := t.clock.Now()
	accessExp := now.Add(t.accessTTL)
	if accessExp.After(refreshExp) {
		accessExp = refreshExp
	}
	ac := &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: t.issuer, Subject: subject, Audience: jwt.ClaimStrings{t.audience},
			ExpiresAt: jwt.NewNumericDate(accessExp), IssuedAt: jwt.NewNumericDate(now), ID: security.NewID(),
		},
		Family: family, Scope: strings.Join(scopes, " "), Role: role, Fresh: fresh,
	}
	rc := &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: t.issuer, Subject: subject, Audience: jwt.ClaimStrings{t.audience},
			ExpiresAt: jwt.NewNumericDate(refreshExp), IssuedAt: jwt.NewNumericDate(now), ID: security.NewID(),
		},
		Family:         family,
		AccountVersion: version,
		Grant:          &grant,
	}
	access, err := t.sign(ac, TypeAccess)
	if err != nil {
		return nil, err
	}
	refresh, err := t.sign(rc, TypeRefresh)
	if err != nil {
		return nil, err
	}
	return &Pair{Access: access, AccessClaims: ac, Refresh: refresh, RefreshClaims: rc, ExpiresIn: accessExp.Sub(now)}, nil
}

func (t *Service) sign(c *Claims, typ string) (string, error) {
	tok := jwt.NewWithClaims(t.signing.Method, c)
	tok.Header["kid"] = t.signing.ID
	tok.Header["typ"] = typ
	return tok.SignedString(t.signing.sign)
}

// parse verifies signature, algorithm, kid, typ and the registered claims.
// It never consults the store.
func (t *Service) parse(raw, typ string) (*Claims, error) {
	if len(raw) > security.MaxTokenBytes {
		return nil, fmt.Errorf("%w: token larger than %d bytes", security.ErrInvalid, security.MaxTokenBytes)
	}
	// base64 decoding skips '\r' and '\n', so without this check the
	// signature segment would verify with line breaks added anywhere in it.
	if !jws.IsCompact(raw) {
		return nil, fmt.Errorf("%w: malformed token", security.ErrInvalid)
	}
	// A token that is no JWS, or names another issuer, may be an outside
	// provider's: refused here without going further, and marked so that
	// another scheme reading the same header may take it.
	if strings.Count(raw, ".") != 2 {
		return nil, unclaimed(fmt.Errorf("%w: malformed token", security.ErrInvalid))
	}
	iss, err := peekClaims(raw)
	if err != nil {
		return nil, err
	}
	if iss != t.issuer {
		return nil, unclaimed(fmt.Errorf("%w: wrong issuer", security.ErrInvalid))
	}
	c := &Claims{}
	_, err = t.parser.ParseWithClaims(raw, c, func(tok *jwt.Token) (any, error) {
		if _, crit := tok.Header["crit"]; crit {
			return nil, jws.Reason("crit header is not supported")
		}
		if got, _ := tok.Header["typ"].(string); !strings.EqualFold(got, typ) {
			return nil, jws.Reason("the token's type is not " + typ)
		}
		kid, _ := tok.Header["kid"].(string)
		k := t.keys[kid]
		if k == nil {
			return nil, jws.Reason("unknown key id")
		}
		if tok.Method.Alg() != k.Algorithm() {
			return nil, jws.Reason("the algorithm is not the key's")
		}
		return k.verify, nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %s", security.ErrInvalid, jws.Describe(err))
	}
	if c.Subject == "" || c.ID == "" || c.Family == "" {
		return nil, fmt.Errorf("%w: token lacks sub, jti or fam", security.ErrInvalid)
	}
	if c.IssuedAt == nil {
		// golang-jwt's WithIssuedAt checks iat only when present: every
		// token this service mints has one.
		return nil, fmt.Errorf("%w: token lacks iat", security.ErrInvalid)
	}
	return c, nil
}

// peekClaims reads, unverified, a JWS's issuer, and refuses exp, nbf or
// iat that are not NumericDates (RFC 7519 section 2: JSON numbers;
// golang-jwt also takes strings). A struct, not decodePayload's map: this
// runs on every token not in the cache.
func peekClaims(raw string) (iss string, err error) {
	_, rest, _ := strings.Cut(raw, ".")
	seg, _, _ := strings.Cut(rest, ".")
	data, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return "", fmt.Errorf("%w: malformed token", security.ErrInvalid)
	}
	var head struct {
		Iss           string
		Exp, Nbf, Iat json.RawMessage
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return "", fmt.Errorf("%w: malformed token", security.ErrInvalid)
	}
	for _, t := range []struct {
		name string
		v    json.RawMessage
	}{{"exp", head.Exp}, {"nbf", head.Nbf}, {"iat", head.Iat}} {
		if t.v == nil {
			continue
		}
		// A JSON string would also decode into a json.Number.
		if _, ok := jws.NumericTime(json.Number(t.v)); !ok || !strings.ContainsRune("-0123456789", rune(t.v[0])) {
			return "", fmt.Errorf("%w: %s is not a number of seconds", security.ErrInvalid, t.name)
		}
	}
	return head.Iss, nil
}

// VerifyAccess checks an access token: signature, claims, and (every time,
// even on a cache hit) that it has not been replaced or revoked, and that
// its account may still use it. The claims returned are the token's with
// Role and Scope as its account holds them now (WithAccounts): the scopes
// minted, bounded by the current role's, as the guard grants them.
func (t *Service) VerifyAccess(ctx context.Context, raw string) (*Claims, error) {
	c, err := t.verifySignature(raw, nil, time.Time{})
	if err != nil {
		return nil, err
	}
	p, _, err := t.hold(ctx, c, "", onetrip.Mode{})
	if err != nil {
		return nil, err
	}
	// c is shared by every request of the token (the cache): a copy.
	return &Claims{RegisteredClaims: c.RegisteredClaims, Family: c.Family, AccountVersion: c.AccountVersion, Grant: c.Grant,
		Scope: strings.Join(p.Scopes, " "), Role: p.Role, Fresh: c.Fresh, Key: c.Key}, nil
}

// hold runs, or when gated defers, the store check of verified claims c and
// returns the principal they make for scheme.
func (t *Service) hold(ctx context.Context, c *Claims, scheme string, m onetrip.Mode) (*security.Principal, *hold.Gate, error) {
	if c.revoked.Load() {
		return nil, nil, fmt.Errorf("%w: credential revoked", security.ErrInvalid)
	}
	check := security.Check{Kind: security.AccessCredential, Subject: c.Subject, ID: c.Family, JTI: c.ID}
	var unmarked func(context.Context) error
	if c.Key != "" {
		// Minted from an API key: it holds while the key does.
		if t.apiKeys == nil {
			return nil, nil, fmt.Errorf("%w: a token of an API key, and no API keys here", security.ErrInvalid)
		}
		check = security.Check{Kind: security.KeyCredential, Subject: c.Subject, ID: c.Key}
		unmarked = func(ctx context.Context) error { return hold.Remark(t.apiKeys, ctx, c.Key) }
	}
	return hold.Hold(ctx, t.accounts, t.store, check, m, func(acct *security.Account) (*security.Principal, error) {
		return c.principal(scheme, acct, t.accounts), nil
	}, unmarked, revoker{c})
}

// verifySignature checks what needs no store: the token is well formed,
// signed by a known key, unexpired (at the guard's reading at, see
// internal/clock; zero when there is none), an access token. syntax, when
// not nil, is run only when the token is not cached: a bearer token
// presented in a header must also be an RFC 6750 b64token, which every
// cached one was.
func (t *Service) verifySignature(raw string, syntax func(string) bool, at time.Time) (*Claims, error) {
	c, ok := t.cache.get(raw, t.clock.At(at))
	if ok {
		return c, nil
	}
	if syntax != nil && !syntax(raw) {
		return nil, cred.ErrBadTokenSyntax
	}
	c, err := t.parse(raw, TypeAccess)
	if err != nil {
		return nil, err
	}
	t.cache.put(raw, c)
	return c, nil
}

// unclaimed marks err as possibly another scheme's (see ErrUnclaimed).
func unclaimed(err error) error { return fmt.Errorf("%w (%w)", err, security.ErrUnclaimed) }
