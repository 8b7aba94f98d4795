// Package sessions is specguard's browser sessions: a session in a cookie
// (an apiKey-in-cookie scheme), created at login, ended at logout or on
// every instance with its account, and a CSRF check (double submit, Origin
// and Sec-Fetch-Site) on every unsafe request.
//
// Start with New: give it the Store part that keeps sessions
// (security.SessionStore) and the scopes each role grants; its Service is
// the guard's Authenticator for such schemes, and Create starts a session
// (Issued carries its cookie and CSRF token).
package sessions

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/specguard/specguard/internal/clock"
	"github.com/specguard/specguard/internal/onetrip"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/internal/cache"
	"github.com/specguard/specguard/security/internal/cred"
	"github.com/specguard/specguard/security/internal/hold"
)

// CSRF names: the header a browser client sends the token in, and the
// readable cookie that carries it for the double-submit check.
const (
	CSRFHeader = "X-CSRF-Token"
	CSRFCookie = "__Host-csrf"
)

// Service creates browser sessions and authenticates cookie-session
// requests (apiKey-in-cookie schemes), with a CSRF check on unsafe methods.
type Service struct {
	store   security.SessionStore
	ttl     time.Duration
	idle    time.Duration
	origins []string // allowed Origin values (listedOnly); otherwise the request's own host
	// listedOnly: WithAllowedOrigins gave a list, which replaces the own
	// host even when none of it is an origin (then nothing is allowed).
	listedOnly bool
	scopes     func(role string) []string
	accounts   *security.Accounts
	max        int
	clock      clock.Clock
	cache      *cache.Bounded[*cachedSession] // sessions seen; liveness is checked in the store
}

// Option configures a Service.
type Option func(*Service)

// WithTTL sets how long a session lives (12 hours when absent).
func WithTTL(d time.Duration) Option { return func(s *Service) { s.ttl = d } }

// WithIdle ends a session once it goes unused for d, on every instance,
// before its TTL (0 or absent: only the TTL ends it). Each request the
// session authenticates counts as a use.
func WithIdle(d time.Duration) Option { return func(s *Service) { s.idle = d } }

// WithAllowedOrigins sets the origins (scheme://host[:port]) whose unsafe
// cookie-authenticated requests are accepted. When absent, an Origin must
// name the request's own Host. An origin CheckOrigin refuses ("null",
// "*", "example.com") is left out: it allows nothing. credentials.New
// refuses one, naming it.
func WithAllowedOrigins(origins ...string) Option {
	return func(s *Service) {
		s.origins, s.listedOnly = nil, len(origins) > 0
		for _, o := range origins {
			if CheckOrigin(o) == nil {
				s.origins = append(s.origins, o)
			}
		}
	}
}

// WithAccounts makes every session hold for its account's current
// state (see security.Accounts): a disabled account's sessions are refused, and
// a session holds the scopes of its role at login that the account's
// current role still grants.
func WithAccounts(a *security.Accounts) Option {
	return func(s *Service) { s.accounts = a }
}

// WithMax caps the live browser sessions of one account: a login
// past it fails with ErrTooMany. Unlimited when absent.
func WithMax(n int) Option { return func(s *Service) { s.max = n } }

// WithClock sets the clock (time.Now when absent or nil).
func WithClock(now func() time.Time) Option {
	return func(s *Service) { s.clock = clock.New(now) }
}

// New returns a session service; scopes maps a role to the
// scopes a session of that role holds. Each session has a CSRF token of its
// own, random, kept hashed with the session: no key to configure or rotate.
func New(store security.SessionStore, scopes func(role string) []string, opts ...Option) *Service {
	s := &Service{store: store, ttl: 12 * time.Hour, scopes: scopes,
		cache: cache.New[*cachedSession](10000)}
	for _, opt := range opts {
		opt(s)
	}
	return s
}

// Issued is what a browser login returns: the cookie value (shown to
// the browser only), the CSRF token and the stored session.
type Issued struct {
	Cookie  string
	CSRF    string
	Session *security.Session
}

// Create starts a session for subject. Each login makes a new id, so a
// session id planted before login is never promoted (no fixation).
func (s *Service) Create(ctx context.Context, subject, role, device string) (*Issued, error) {
	secret, csrf := make([]byte, 32), make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	if _, err := rand.Read(csrf); err != nil {
		return nil, err
	}
	version, err := s.accounts.MintVersion(ctx, subject)
	if err != nil {
		return nil, err
	}
	token := base64.RawURLEncoding.EncodeToString(csrf)
	sum, csrfSum := sha256.Sum256(secret), sha256.Sum256([]byte(token))
	sess := &security.Session{ID: security.NewID(), Subject: subject, Role: role, Device: device, SecretHash: sum[:], CSRFHash: csrfSum[:],
		AccountVersion: version, Expires: s.clock.Now().Add(s.ttl), Idle: max(s.idle, 0)}
	if err := s.store.CreateSession(ctx, sess, s.max); err != nil {
		return nil, hold.Unavailable(err)
	}
	return &Issued{
		Cookie:  subject + "." + sess.ID + "." + base64.RawURLEncoding.EncodeToString(secret),
		CSRF:    token,
		Session: sess,
	}, nil
}

// Cookies returns the session cookie (named name, from the spec) and the
// CSRF cookie for ns. Name the session cookie __Host-...: a browser takes
// such a cookie only from this host over HTTPS, so a sibling subdomain
// cannot plant one (credentials.New refuses any other name).
func (s *Service) Cookies(name string, ns *Issued) []*http.Cookie {
	exp := ns.Session.Expires
	// On the service's clock, as exp is (WithClock); at least a second:
	// a Max-Age of 0 or less would delete the cookie at once.
	age := max(int(exp.Sub(s.clock.Now()).Seconds()), 1)
	return []*http.Cookie{
		{Name: name, Value: ns.Cookie, Path: "/", Expires: exp, MaxAge: age, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode},
		{Name: CSRFCookie, Value: ns.CSRF, Path: "/", Expires: exp, MaxAge: age, Secure: true, HttpOnly: false, SameSite: http.SameSiteStrictMode},
	}
}

// ClearCookies returns cookies that delete the session and CSRF cookies.
func (s *Service) ClearCookies(name string) []*http.Cookie {
	return []*http.Cookie{
		{Name: name, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode},
		{Name: CSRFCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, SameSite: http.SameSiteStrictMode},
	}
}

// Delete ends subject's session id.
func (s *Service) Delete(ctx context.Context, subject, id string) error {
	s.cache.Del(id)
	return s.store.DeleteSession(ctx, subject, id)
}

// Authenticate verifies the session cookie named scheme.Param (and, for an
// unsafe method, its CSRF proof): (nil, nil) when the request has none.
func (s *Service) Authenticate(ctx context.Context, r *http.Request, scheme *policy.Scheme) (*security.Principal, error) {
	p, _, err := s.authenticate(ctx, r, scheme, onetrip.Mode{})
	return p, err
}

// Carries reports whether the principals of browser sessions carry
// claim: ClaimSubject and ClaimRole.
func (s *Service) Carries(_ *policy.Scheme, claim string) bool {
	return claim == security.ClaimSubject || claim == security.ClaimRole
}

func init() {
	hold.RegisterDeferrer(func(s *Service) hold.DeferFunc { return s.authenticateGuarded })
}

// authenticateGuarded is Authenticate with the store check of what it
// verified left to the returned precheck when m.Gated (nil when there is
// nothing to check), for the guard to run in the rate-limit call, and the
// time the guard read for the request (see onetrip.Mode).
func (s *Service) authenticateGuarded(ctx context.Context, r *http.Request, scheme *policy.Scheme, m onetrip.Mode) (*security.Principal, onetrip.Precheck, error) {
	return hold.Deferred(s.authenticate(ctx, r, scheme, m))
}

func (s *Service) authenticate(ctx context.Context, r *http.Request, scheme *policy.Scheme, m onetrip.Mode) (*security.Principal, *hold.Gate, error) {
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
		return nil, nil, fmt.Errorf("%w: more than one %s cookie", security.ErrMalformed, scheme.Param)
	}
	subject, id, secret, ok := cred.SplitCredential(value)
	if !ok {
		return nil, nil, fmt.Errorf("%w: malformed session cookie", security.ErrInvalid)
	}
	cs, err := s.lookup(ctx, subject, id, s.clock.At(m.At))
	if err := hold.CheckSecret(err, secret, func() []byte { return cs.sess.SecretHash }, "session expired or ended"); err != nil {
		return nil, nil, err
	}
	sess := cs.sess
	if !safeMethod(r.Method) {
		if err := s.checkCSRF(r, sess); err != nil {
			return nil, nil, err
		}
	}
	check := security.Check{Kind: security.SessionCredential, Subject: subject, ID: id}
	return hold.Hold(ctx, s.accounts, s.store, check, m, func(acct *security.Account) (*security.Principal, error) {
		if p := cs.principals.Get(scheme.Name, acct); p != nil {
			return p, nil
		}
		own := s.scopes(sess.Role)
		if !slices.IsSorted(own) {
			own = slices.Sorted(slices.Values(own))
		}
		p := &security.Principal{Subject: sess.Subject, Role: sess.Role, Scheme: scheme.Name, Scopes: own, Credentials: cs.credentials}
		if acct != nil {
			p.Role, p.Scopes = acct.Role, s.accounts.Bounded(own, acct)
		}
		cs.principals.Put(p, acct)
		return p, nil
	}, nil, hold.Evict[*cachedSession]{C: s.cache})
}

// cachedSession is a session's immutable parts, as this instance saw
// them, and the principals they made.
type cachedSession struct {
	sess        *security.Session
	credentials []security.Credential // the principals' (one, shared)
	principals  hold.Memo
}

// lookup returns the session's immutable parts: from this instance's cache
// (the store check that follows says whether it still lives), else the
// store. A session expired at now is not found.
func (s *Service) lookup(ctx context.Context, subject, id string, now time.Time) (*cachedSession, error) {
	cs, ok := s.cache.Get(id)
	if !ok {
		sess, err := s.store.Session(ctx, subject, id)
		if err != nil {
			return nil, err
		}
		cs = &cachedSession{sess: sess, credentials: []security.Credential{security.NewCredential(security.KindSession, sess.ID)}}
		s.cache.Put(id, cs)
	}
	if cs.sess.Subject != subject {
		return nil, security.ErrNotFound
	}
	if !now.Before(cs.sess.Expires) {
		s.cache.Del(id)
		return nil, security.ErrNotFound
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
func (s *Service) checkCSRF(r *http.Request, sess *security.Session) error {
	origin := r.Header.Get("Origin")
	if origin != "" && !s.originAllowed(r, origin) {
		return fmt.Errorf("%w: origin not allowed", security.ErrCSRF)
	}
	// A page of another origin the operator allows (WithAllowedOrigins) is
	// same-site or cross-site to the browser: its Origin, allowed above,
	// decides. Any other request must come from this origin.
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" && !s.listed(origin) {
		return fmt.Errorf("%w: cross-site request (Sec-Fetch-Site: %q)", security.ErrCSRF, site)
	}
	header := r.Header.Get(CSRFHeader)
	if header == "" {
		return fmt.Errorf("%w: missing %s header", security.ErrCSRF, CSRFHeader)
	}
	cookie, err := r.Cookie(CSRFCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(cookie.Value), []byte(header)) != 1 {
		return fmt.Errorf("%w: the %s header does not match the %s cookie", security.ErrCSRF, CSRFHeader, CSRFCookie)
	}
	sum := sha256.Sum256([]byte(header))
	if len(sess.CSRFHash) == 0 || subtle.ConstantTimeCompare(sum[:], sess.CSRFHash) != 1 {
		return fmt.Errorf("%w: the CSRF token does not belong to this session", security.ErrCSRF)
	}
	return nil
}

func (s *Service) originAllowed(r *http.Request, origin string) bool {
	if !s.listedOnly {
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
	return s.listed(origin)
}

// listed reports whether origin is one of WithAllowedOrigins' (never the
// empty string).
func (s *Service) listed(origin string) bool {
	return origin != "" && slices.Contains(s.origins, origin)
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

// CheckOrigin says what is wrong with o as an allowed origin (see
// WithAllowedOrigins), or nil: what a browser never sends as an Origin
// would match no request at all: a host without a scheme ("example.com"),
// "null" (which sandboxed frames and data: pages of any site send, and
// must never be allowed), "*", or an origin not written as browsers send
// it (a trailing "/", upper case, the scheme's default port), which is
// compared as written.
func CheckOrigin(o string) error {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return fmt.Errorf("%q is not an origin: want scheme://host[:port], such as https://app.example.com", o)
	}
	if strings.HasSuffix(u.Host, ":") || !isASCII(u.Host) {
		return fmt.Errorf("%q is not an origin as browsers send it, and would match none: write the host in ASCII (punycode), and a port only with digits", o)
	}
	// The origin a browser would send: its host in lower case (an IPv6
	// address in its shortest form), its port as a number without
	// leading zeros, the scheme's default left out.
	host := strings.ToLower(u.Hostname())
	ip, err := netip.ParseAddr(host)
	switch {
	case err == nil && ip.Is4In6():
		// A browser writes it in hex (WHATWG URL), Go in dotted decimal.
		b := ip.As16()
		host = fmt.Sprintf("[::ffff:%x:%x]", uint16(b[12])<<8|uint16(b[13]), uint16(b[14])<<8|uint16(b[15]))
	case err == nil && ip.Is6():
		host = "[" + ip.String() + "]"
	case strings.Contains(host, ":"):
		host = "[" + host + "]"
	case err != nil && numericHost(host):
		// A browser reads a host ending in a number as IPv4 and writes
		// it in four decimal parts: 127.1 is sent as 127.0.0.1.
		return fmt.Errorf("%q is not an origin as browsers send it, and would match none: write an IPv4 host in four decimal parts, such as 127.0.0.1", o)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q is not an origin: port %s is not 1 to 65535", o, p)
		}
		if !(n == 443 && u.Scheme == "https" || n == 80 && u.Scheme == "http") {
			host += ":" + strconv.Itoa(n)
		}
	}
	if sent := u.Scheme + "://" + host; sent != o {
		return fmt.Errorf("%q is not an origin as browsers send it, and would match none: write %q", o, sent)
	}
	return nil
}

// numericHost reports whether host ends in a number, decimal or 0x hex:
// a browser reads such a host as an IPv4 address (WHATWG URL).
func numericHost(host string) bool {
	last := strings.TrimSuffix(host, ".")
	last = last[strings.LastIndexByte(last, '.')+1:]
	if hex, ok := strings.CutPrefix(last, "0x"); ok {
		last = hex
		if last == "" {
			return true
		}
		return strings.Trim(last, "0123456789abcdef") == ""
	}
	return last != "" && strings.Trim(last, "0123456789") == ""
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
