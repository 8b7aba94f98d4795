package security

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/specguard/specguard/internal/onetrip"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security/internal/cache"
)

// CSRF names: the header a browser client sends the token in, and the
// readable cookie that carries it for the double-submit check.
const (
	CSRFHeader = "X-CSRF-Token"
	CSRFCookie = "__Host-csrf"
)

// SessionService creates browser sessions and authenticates cookie-session
// requests (apiKey-in-cookie schemes), with a CSRF check on unsafe methods.
type SessionService struct {
	store    SessionStore
	ttl      time.Duration
	origins  []string // allowed Origin values; the request's own host when empty
	scopes   func(role string) []string
	accounts *Accounts
	max      int
	now      func() time.Time
	cache    *cache.Bounded[*cachedSession] // sessions seen; liveness is checked in the store
}

// SessionOption configures a SessionService.
type SessionOption func(*SessionService)

// WithSessionTTL sets how long a session lives (12 hours when absent).
func WithSessionTTL(d time.Duration) SessionOption { return func(s *SessionService) { s.ttl = d } }

// WithAllowedOrigins sets the origins (scheme://host[:port]) whose unsafe
// cookie-authenticated requests are accepted. When absent, an Origin must
// name the request's own Host.
func WithAllowedOrigins(origins ...string) SessionOption {
	return func(s *SessionService) { s.origins = origins }
}

// WithSessionAccounts makes every session hold for its account's current
// state (see WithAccounts): a disabled account's sessions are refused, and
// a session holds the scopes of its role at login that the account's
// current role still grants.
func WithSessionAccounts(a *Accounts) SessionOption {
	return func(s *SessionService) { s.accounts = a }
}

// WithMaxSessions caps the live browser sessions of one account: a login
// past it fails with ErrTooMany. Unlimited when absent.
func WithMaxSessions(n int) SessionOption { return func(s *SessionService) { s.max = n } }

// WithSessionClock sets the clock (time.Now when absent).
func WithSessionClock(now func() time.Time) SessionOption {
	return func(s *SessionService) { s.now = now }
}

// NewSessionService returns a session service; scopes maps a role to the
// scopes a session of that role holds. Each session has a CSRF token of its
// own, random, kept hashed with the session: no key to configure or rotate.
func NewSessionService(store SessionStore, scopes func(role string) []string, opts ...SessionOption) *SessionService {
	s := &SessionService{store: store, ttl: 12 * time.Hour, scopes: scopes, now: time.Now,
		cache: cache.New[*cachedSession](10000)}
	for _, opt := range opts {
		opt(s)
	}
	return s
}

// NewSession is what a browser login returns: the cookie value (shown to
// the browser only), the CSRF token and the stored session.
type NewSession struct {
	Cookie  string
	CSRF    string
	Session *Session
}

// splitCredential parses "<subject>.<id>.<base64url secret of 32 bytes>",
// the shape of session cookies and of API keys after their prefix.
func splitCredential(v string) (subject, id string, secret [32]byte, ok bool) {
	if len(v) > 256 {
		return "", "", secret, false
	}
	subject, rest, ok1 := strings.Cut(v, ".")
	id, enc, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || !isID(subject) || !isID(id) {
		return "", "", secret, false
	}
	secret, ok = decodeSecret(enc)
	return subject, id, secret, ok
}

// decodeSecret decodes the base64url secret of a credential: 32 bytes, in
// arrays rather than the decoder's slices (it runs on every request).
func decodeSecret(enc string) (secret [32]byte, ok bool) {
	// The decoder skips '\r' and '\n' and ignores the unused low bits of
	// the last character: only the canonical encoding is the credential.
	var src, canon [43]byte
	if len(enc) != len(src) {
		return secret, false
	}
	copy(src[:], enc)
	n, err := base64.RawURLEncoding.Decode(secret[:], src[:])
	if err != nil || n != len(secret) {
		return secret, false
	}
	base64.RawURLEncoding.Encode(canon[:], secret[:])
	return secret, canon == src
}

// isID reports whether s is a plausible identifier: 1-64 base64url characters.
func isID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Create starts a session for subject. Each login makes a new id, so a
// session id planted before login is never promoted (no fixation).
func (s *SessionService) Create(ctx context.Context, subject, role, device string) (*NewSession, error) {
	secret, csrf := make([]byte, 32), make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	if _, err := rand.Read(csrf); err != nil {
		return nil, err
	}
	version, err := s.accounts.mintVersion(ctx, subject)
	if err != nil {
		return nil, err
	}
	token := base64.RawURLEncoding.EncodeToString(csrf)
	sum, csrfSum := sha256.Sum256(secret), sha256.Sum256([]byte(token))
	sess := &Session{ID: NewID(), Subject: subject, Role: role, Device: device, SecretHash: sum[:], CSRFHash: csrfSum[:],
		AccountVersion: version, Expires: s.now().Add(s.ttl)}
	if err := s.store.CreateSession(ctx, sess, s.max); err != nil {
		return nil, unavailable(err)
	}
	return &NewSession{
		Cookie:  subject + "." + sess.ID + "." + base64.RawURLEncoding.EncodeToString(secret),
		CSRF:    token,
		Session: sess,
	}, nil
}

// Cookies returns the session cookie (named name, from the spec) and the
// CSRF cookie for ns.
func (s *SessionService) Cookies(name string, ns *NewSession) []*http.Cookie {
	exp := ns.Session.Expires
	return []*http.Cookie{
		{Name: name, Value: ns.Cookie, Path: "/", Expires: exp, MaxAge: int(time.Until(exp).Seconds()), Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode},
		{Name: CSRFCookie, Value: ns.CSRF, Path: "/", Expires: exp, MaxAge: int(time.Until(exp).Seconds()), Secure: true, HttpOnly: false, SameSite: http.SameSiteStrictMode},
	}
}

// ClearCookies returns cookies that delete the session and CSRF cookies.
func (s *SessionService) ClearCookies(name string) []*http.Cookie {
	return []*http.Cookie{
		{Name: name, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode},
		{Name: CSRFCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, SameSite: http.SameSiteStrictMode},
	}
}

// Delete ends subject's session id.
func (s *SessionService) Delete(ctx context.Context, subject, id string) error {
	s.cache.Del(id)
	return s.store.DeleteSession(ctx, subject, id)
}

// Authenticate verifies the session cookie named scheme.Param (and, for an
// unsafe method, its CSRF proof): (nil, nil) when the request has none.
func (s *SessionService) Authenticate(ctx context.Context, r *http.Request, scheme *policy.Scheme) (*Principal, error) {
	p, _, err := s.authenticate(ctx, r, scheme, false)
	return p, err
}

// Carries reports whether the principals of browser sessions carry
// claim: ClaimSubject and ClaimRole.
func (s *SessionService) Carries(_ *policy.Scheme, claim string) bool {
	return claim == ClaimSubject || claim == ClaimRole
}

// forget drops session id from the cache once the store said it ended.
func (s *SessionService) forget(id string) { s.cache.Del(id) }

// authenticateDeferred is Authenticate with the store check of what it
// verified left to the returned precheck (nil when there is nothing to
// check), for the guard to run in the rate-limit call (see onetrip).
func (s *SessionService) authenticateDeferred(ctx context.Context, r *http.Request, scheme *policy.Scheme) (*Principal, onetrip.Precheck, error) {
	return deferred(s.authenticate(ctx, r, scheme, true))
}

func (s *SessionService) authenticate(ctx context.Context, r *http.Request, scheme *policy.Scheme, gated bool) (*Principal, *gate, error) {
	var value string
	n := 0
	for _, c := range r.Cookies() {
		if c.Name == scheme.Param {
			value = c.Value
			n++
		}
	}
	switch {
	case n == 0:
		return nil, nil, nil
	case n > 1:
		// Two cookies of one name mean one was planted (cookie tossing).
		return nil, nil, fmt.Errorf("%w: more than one %s cookie", ErrMalformed, scheme.Param)
	}
	subject, id, secret, ok := splitCredential(value)
	if !ok {
		return nil, nil, fmt.Errorf("%w: malformed session cookie", ErrInvalid)
	}
	cs, err := s.lookup(ctx, subject, id)
	if err := checkSecret(err, secret, func() []byte { return cs.sess.SecretHash }, "session expired or ended"); err != nil {
		return nil, nil, err
	}
	sess := cs.sess
	if !safeMethod(r.Method) {
		if err := s.checkCSRF(r, sess); err != nil {
			return nil, nil, err
		}
	}
	check := Check{Kind: SessionCredential, Subject: subject, ID: id}
	return s.accounts.hold(ctx, s.store, check, gated, func(acct *Account) (*Principal, error) {
		if p := cs.principals.get(scheme.Name, stampOf(acct)); p != nil {
			return p, nil
		}
		own := s.scopes(sess.Role)
		if !slices.IsSorted(own) {
			own = slices.Sorted(slices.Values(own))
		}
		p := &Principal{Subject: sess.Subject, Role: sess.Role, Scheme: scheme.Name, Scopes: own, SessionID: sess.ID}
		if acct != nil {
			p.Role, p.Scopes, p.accountStamp = acct.Role, s.accounts.bounded(own, acct), acct.Stamp
		}
		cs.principals.put(p)
		return p, nil
	}, nil, s)
}

// cachedSession is a session's immutable parts, as this instance saw
// them, and the principals they made.
type cachedSession struct {
	sess       *Session
	principals principalMemo
}

// lookup returns the session's immutable parts: from this instance's cache
// (the store check that follows says whether it still lives), else the
// store. An expired session is not found.
func (s *SessionService) lookup(ctx context.Context, subject, id string) (*cachedSession, error) {
	cs, ok := s.cache.Get(id)
	if !ok {
		sess, err := s.store.Session(ctx, subject, id)
		if err != nil {
			return nil, err
		}
		cs = &cachedSession{sess: sess}
		s.cache.Put(id, cs)
	}
	if cs.sess.Subject != subject {
		return nil, ErrNotFound
	}
	if !s.now().Before(cs.sess.Expires) {
		s.cache.Del(id)
		return nil, ErrNotFound
	}
	return cs, nil
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions || m == http.MethodTrace
}

// checkCSRF demands a same-origin request (Sec-Fetch-Site, Origin) and the
// session's own token (random, kept hashed with the session: unknowable to
// a cross-site attacker, and independent of any signing key) in both the
// header and the CSRF cookie.
func (s *SessionService) checkCSRF(r *http.Request, sess *Session) error {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return fmt.Errorf("%w: cross-site request (Sec-Fetch-Site: %q)", ErrCSRF, site)
	}
	if origin := r.Header.Get("Origin"); origin != "" && !s.originAllowed(r, origin) {
		return fmt.Errorf("%w: origin not allowed", ErrCSRF)
	}
	header := r.Header.Get(CSRFHeader)
	if header == "" {
		return fmt.Errorf("%w: missing %s header", ErrCSRF, CSRFHeader)
	}
	cookie, err := r.Cookie(CSRFCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(cookie.Value), []byte(header)) != 1 {
		return fmt.Errorf("%w: the %s header does not match the %s cookie", ErrCSRF, CSRFHeader, CSRFCookie)
	}
	sum := sha256.Sum256([]byte(header))
	if len(sess.CSRFHash) == 0 || subtle.ConstantTimeCompare(sum[:], sess.CSRFHash) != 1 {
		return fmt.Errorf("%w: the CSRF token does not belong to this session", ErrCSRF)
	}
	return nil
}

func (s *SessionService) originAllowed(r *http.Request, origin string) bool {
	if len(s.origins) == 0 {
		// Same origin means same scheme too: an http:// page on this host
		// (reachable by anyone on the network path) is another origin. The
		// session cookie is Secure, so plain http is only same-origin on a
		// loopback host, where browsers send Secure cookies over http.
		scheme, host, ok := strings.Cut(origin, "://")
		if !ok || host != r.Host {
			return false
		}
		return scheme == "https" || scheme == "http" && r.TLS == nil && loopbackHost(host)
	}
	for _, o := range s.origins {
		if o == origin {
			return true
		}
	}
	return false
}

// checkSecret judges a credential looked up in the store: lookupErr from
// the lookup (ErrNotFound: unknown or ended), then the presented secret
// against the stored SHA-256 hash in constant time. Both failures give the
// same message, so a caller cannot tell an unknown id from a wrong secret.
func checkSecret(lookupErr error, secret [32]byte, storedHash func() []byte, invalid string) error {
	if errors.Is(lookupErr, ErrNotFound) {
		return fmt.Errorf("%w: %s", ErrInvalid, invalid)
	} else if lookupErr != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, lookupErr)
	}
	sum := sha256.Sum256(secret[:])
	if subtle.ConstantTimeCompare(sum[:], storedHash()) != 1 {
		return fmt.Errorf("%w: %s", ErrInvalid, invalid)
	}
	return nil
}

// loopbackHost reports whether host (with an optional port) names the local
// machine: localhost, 127.0.0.0/8 or ::1.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
