package sessions_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/specguard/specguard/internal/guardtest"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/sessions"
)

var csrfFailed = guardtest.Want{Status: http.StatusForbidden, Problem: "csrf", AuthErr: guardtest.NoChallenge}

func TestSessionCSRF(t *testing.T) {
	e := guardtest.NewEnv(t)
	sess := e.Session(t, "alice", "reader")
	other := e.Session(t, "bob", "reader")
	token := e.Login(t, "carol", "reader")
	post := http.MethodPost
	cases := []guardtest.Case{
		{Name: "GET with the cookie", Path: "/account", Mods: []guardtest.Mod{guardtest.SessionCookies(sess)}, Want: guardtest.OK200, Saw: guardtest.OKAs("getAccount", "alice", "cookieAuth")},
		{Name: "GET cross-site needs no proof", Path: "/account", Mods: []guardtest.Mod{guardtest.SessionCookies(sess), guardtest.Header("Sec-Fetch-Site", "cross-site")}, Want: guardtest.OK200, Saw: guardtest.OKAs("getAccount", "alice", "cookieAuth")},
		{Name: "POST with the correct proof", Method: post, Path: "/account", Mods: []guardtest.Mod{guardtest.SessionCookies(sess), guardtest.CSRFProof(sess)}, Want: guardtest.OK200, Saw: guardtest.OKAs("postAccount", "alice", "cookieAuth")},
		{Name: "POST without any proof", Method: post, Path: "/account", Mods: []guardtest.Mod{guardtest.SessionCookies(sess)}, Want: csrfFailed},
		{Name: "POST without the header", Method: post, Path: "/account", Mods: []guardtest.Mod{guardtest.SessionCookies(sess), guardtest.Cookie(sessions.CSRFCookie, sess.CSRF)}, Want: csrfFailed},
		{Name: "POST without the CSRF cookie", Method: post, Path: "/account", Mods: []guardtest.Mod{guardtest.SessionCookies(sess), guardtest.Header(sessions.CSRFHeader, sess.CSRF)}, Want: csrfFailed},
		{Name: "POST with a wrong token in both places", Method: post, Path: "/account",
			Mods: []guardtest.Mod{guardtest.SessionCookies(sess), guardtest.Cookie(sessions.CSRFCookie, "wrong-token-wrong-token"), guardtest.Header(sessions.CSRFHeader, "wrong-token-wrong-token")}, Want: csrfFailed},
		{Name: "POST with header and cookie that differ", Method: post, Path: "/account",
			Mods: []guardtest.Mod{guardtest.SessionCookies(sess), guardtest.Cookie(sessions.CSRFCookie, other.CSRF), guardtest.Header(sessions.CSRFHeader, sess.CSRF)}, Want: csrfFailed},
		{Name: "POST with the proof of another session", Method: post, Path: "/account", Mods: []guardtest.Mod{guardtest.SessionCookies(sess), guardtest.CSRFProof(other)}, Want: csrfFailed},
		{Name: "POST cross-site", Method: post, Path: "/account", Mods: []guardtest.Mod{guardtest.SessionCookies(sess), guardtest.CSRFProof(sess), guardtest.Header("Sec-Fetch-Site", "cross-site")}, Want: csrfFailed},
		{Name: "POST same-site", Method: post, Path: "/account", Mods: []guardtest.Mod{guardtest.SessionCookies(sess), guardtest.CSRFProof(sess), guardtest.Header("Sec-Fetch-Site", "same-site")}, Want: csrfFailed},
		{Name: "POST same-origin", Method: post, Path: "/account", Mods: []guardtest.Mod{guardtest.SessionCookies(sess), guardtest.CSRFProof(sess), guardtest.Header("Sec-Fetch-Site", "same-origin")}, Want: guardtest.OK200},
		{Name: "POST from a foreign Origin", Method: post, Path: "/account", Mods: []guardtest.Mod{guardtest.SessionCookies(sess), guardtest.CSRFProof(sess), guardtest.Header("Origin", "https://evil.example")}, Want: csrfFailed},
		{Name: "POST from a look-alike Origin", Method: post, Path: "/account", Mods: []guardtest.Mod{guardtest.SessionCookies(sess), guardtest.CSRFProof(sess), guardtest.Header("Origin", e.Srv.URL+".evil.example")}, Want: csrfFailed},
		{Name: "POST from Origin null", Method: post, Path: "/account", Mods: []guardtest.Mod{guardtest.SessionCookies(sess), guardtest.CSRFProof(sess), guardtest.Header("Origin", "null")}, Want: csrfFailed},
		{Name: "POST from the own Origin", Method: post, Path: "/account", Mods: []guardtest.Mod{guardtest.SessionCookies(sess), guardtest.CSRFProof(sess), guardtest.Header("Origin", e.Srv.URL)}, Want: guardtest.OK200},
		{Name: "POST from the own host over https", Method: post, Path: "/account", Mods: []guardtest.Mod{guardtest.SessionCookies(sess), guardtest.CSRFProof(sess), guardtest.Header("Origin", "https://"+strings.TrimPrefix(e.Srv.URL, "http://"))}, Want: guardtest.OK200},
		{Name: "POST from the own host over another scheme", Method: post, Path: "/account", Mods: []guardtest.Mod{guardtest.SessionCookies(sess), guardtest.CSRFProof(sess), guardtest.Header("Origin", "ws://"+strings.TrimPrefix(e.Srv.URL, "http://"))}, Want: csrfFailed},
		{Name: "POST from plain http on a public host", Method: post, Path: "/account", Mods: []guardtest.Mod{guardtest.SessionCookies(sess), guardtest.CSRFProof(sess), guardtest.Host("blog.example"), guardtest.Header("Origin", "http://blog.example")}, Want: csrfFailed},
		{Name: "POST from https on a public host", Method: post, Path: "/account", Mods: []guardtest.Mod{guardtest.SessionCookies(sess), guardtest.CSRFProof(sess), guardtest.Host("blog.example"), guardtest.Header("Origin", "https://blog.example")}, Want: guardtest.OK200},
		{Name: "POST with a bearer token needs no proof", Method: post, Path: "/account", Mods: []guardtest.Mod{guardtest.Bearer(token.Access)}, Want: guardtest.OK200, Saw: guardtest.OKAs("postAccount", "carol", "bearerAuth")},
		// The cookie's alternative is listed first and is not met (no
		// proof): the token's admits the request, as it would were it
		// listed first. No cross-site page can send the token.
		{Name: "POST with a bearer token and an unproven cookie", Method: post, Path: "/account", Mods: []guardtest.Mod{guardtest.Bearer(token.Access), guardtest.SessionCookies(sess)}, Want: guardtest.OK200, Saw: guardtest.OKAs("postAccount", "carol", "bearerAuth")},
		{Name: "POST with a forged token and an unproven cookie", Method: post, Path: "/account", Mods: []guardtest.Mod{guardtest.Bearer(guardtest.Tamper(t, token.Access)), guardtest.SessionCookies(sess)}, Want: guardtest.InvalidToken},
		{Name: "two session cookies", Path: "/account", Mods: []guardtest.Mod{guardtest.SessionCookies(sess), guardtest.SessionCookies(other)}, Want: guardtest.BadRequest},
		{Name: "two session cookies, one planted", Path: "/account", Mods: []guardtest.Mod{guardtest.SessionCookies(sess), guardtest.Cookie(guardtest.SessionCookie, "alice.planted.planted")}, Want: guardtest.BadRequest},
	}
	guardtest.RunCases(t, e, cases)
}

// forgedCookie is a cookie of the right shape whose id and secret were
// invented by an attacker.
func forgedCookie(subject string) string {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	return subject + "." + security.NewID() + "." + base64.RawURLEncoding.EncodeToString(secret)
}

func TestSessionRejectsBadCookies(t *testing.T) {
	e := guardtest.NewEnv(t)
	sess := e.Session(t, "alice", "reader")
	subject, rest, _ := strings.Cut(sess.Cookie, ".")
	id, secret, _ := strings.Cut(rest, ".")
	otherSecret := strings.Split(forgedCookie("x"), ".")[2]
	deleted := e.Session(t, "alice", "reader")
	if err := e.Sessions.Delete(context.Background(), "alice", deleted.Session.ID); err != nil {
		t.Fatal(err)
	}
	cases := []guardtest.Case{
		{Name: "valid", Path: "/account", Mods: []guardtest.Mod{guardtest.Cookie(guardtest.SessionCookie, sess.Cookie)}, Want: guardtest.OK200},
		{Name: "invented by an attacker", Path: "/account", Mods: []guardtest.Mod{guardtest.Cookie(guardtest.SessionCookie, forgedCookie("alice"))}, Want: guardtest.InvalidToken},
		{Name: "right id, wrong secret", Path: "/account", Mods: []guardtest.Mod{guardtest.Cookie(guardtest.SessionCookie, subject+"."+id+"."+otherSecret)}, Want: guardtest.InvalidToken},
		{Name: "right id and secret, other subject", Path: "/account", Mods: []guardtest.Mod{guardtest.Cookie(guardtest.SessionCookie, "bob."+id+"."+secret)}, Want: guardtest.InvalidToken},
		{Name: "malformed", Path: "/account", Mods: []guardtest.Mod{guardtest.Cookie(guardtest.SessionCookie, "not-a-session")}, Want: guardtest.InvalidToken},
		{Name: "short secret", Path: "/account", Mods: []guardtest.Mod{guardtest.Cookie(guardtest.SessionCookie, subject+"."+id+"."+secret[:20])}, Want: guardtest.InvalidToken},
		{Name: "overlong", Path: "/account", Mods: []guardtest.Mod{guardtest.Cookie(guardtest.SessionCookie, subject+"."+id+"."+secret+strings.Repeat("A", 300))}, Want: guardtest.InvalidToken},
		{Name: "deleted", Path: "/account", Mods: []guardtest.Mod{guardtest.SessionCookies(deleted)}, Want: guardtest.InvalidToken},
		{Name: "empty", Path: "/account", Mods: []guardtest.Mod{guardtest.Header("Cookie", guardtest.SessionCookie+"=")}, Want: guardtest.InvalidToken},
	}
	guardtest.RunCases(t, e, cases)

	t.Run("expired", func(t *testing.T) {
		e.Clock.Advance(13 * time.Hour)
		guardtest.InvalidToken.Check(t, e.Do(t, http.MethodGet, "/account", "", guardtest.SessionCookies(sess)))
	})
}

func TestSessionFixation(t *testing.T) {
	e := guardtest.NewEnv(t)
	planted := forgedCookie("alice")
	guardtest.InvalidToken.Check(t, e.Do(t, http.MethodGet, "/account", "", guardtest.Cookie(guardtest.SessionCookie, planted)))

	seenIDs, seenCookies, seenCSRF := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for range 5 {
		ns := e.Session(t, "alice", "reader")
		if seenIDs[ns.Session.ID] || seenCookies[ns.Cookie] || seenCSRF[ns.CSRF] {
			t.Fatalf("Create repeated an id, cookie or CSRF token: %s", ns.Session.ID)
		}
		seenIDs[ns.Session.ID], seenCookies[ns.Cookie], seenCSRF[ns.CSRF] = true, true, true
		if strings.Contains(ns.Cookie, strings.Split(planted, ".")[1]) {
			t.Fatal("Create reused the planted id")
		}
	}
	// Logging in never promotes the planted value.
	guardtest.InvalidToken.Check(t, e.Do(t, http.MethodGet, "/account", "", guardtest.Cookie(guardtest.SessionCookie, planted)))
}

func TestSessionStoresOnlyTheSecretHash(t *testing.T) {
	e := guardtest.NewEnv(t)
	ns := e.Session(t, "alice", "reader")
	secret := strings.Split(ns.Cookie, ".")[2]
	list, err := e.Store.Sessions(context.Background(), "alice")
	if err != nil || len(list) != 1 {
		t.Fatalf("Sessions = %v, %v; want one", list, err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(secret)
	for _, s := range []security.Session{*ns.Session, list[0]} {
		if string(s.SecretHash) == string(raw) || strings.Contains(string(s.SecretHash), secret) {
			t.Error("the stored session holds the secret itself")
		}
	}
}

func TestSessionCookies(t *testing.T) {
	e := guardtest.NewEnv(t)
	ns := e.Session(t, "alice", "reader")
	cookies := e.Sessions.Cookies(guardtest.SessionCookie, ns)
	byName := map[string]*http.Cookie{}
	for _, c := range cookies {
		byName[c.Name] = c
	}
	cases := []struct {
		name     string
		value    string
		httpOnly bool
		sameSite http.SameSite
	}{
		{name: guardtest.SessionCookie, value: ns.Cookie, httpOnly: true, sameSite: http.SameSiteLaxMode},
		{name: sessions.CSRFCookie, value: ns.CSRF, httpOnly: false, sameSite: http.SameSiteStrictMode},
	}
	if len(cookies) != len(cases) {
		t.Fatalf("Cookies returned %d cookies, want %d", len(cookies), len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := byName[tc.name]
			if c == nil {
				t.Fatalf("no cookie named %s", tc.name)
			}
			if !strings.HasPrefix(c.Name, "__Host-") {
				t.Errorf("name %q lacks the __Host- prefix", c.Name)
			}
			if c.Value != tc.value || !c.Secure || c.HttpOnly != tc.httpOnly || c.Path != "/" || c.Domain != "" || c.SameSite != tc.sameSite {
				t.Errorf("cookie = %+v; want value set, Secure, HttpOnly %v, Path /, no Domain, SameSite %v", c, tc.httpOnly, tc.sameSite)
			}
			if c.MaxAge <= 0 || c.Expires.IsZero() {
				t.Errorf("MaxAge %d, Expires %v: want a persistent cookie", c.MaxAge, c.Expires)
			}
			if err := c.Valid(); err != nil {
				t.Errorf("cookie is not valid: %v", err)
			}
			line := c.String()
			for _, attr := range []string{"Path=/", "Secure", "SameSite="} {
				if !strings.Contains(line, attr) {
					t.Errorf("Set-Cookie %q lacks %s", line, attr)
				}
			}
			if strings.Contains(line, "Domain=") {
				t.Errorf("Set-Cookie %q has a Domain, which __Host- forbids", line)
			}
		})
	}

	t.Run("clear", func(t *testing.T) {
		for _, c := range e.Sessions.ClearCookies(guardtest.SessionCookie) {
			if c.MaxAge >= 0 || c.Value != "" || !c.Secure || c.Path != "/" {
				t.Errorf("clearing cookie %+v; want MaxAge < 0, empty, Secure, Path /", c)
			}
		}
	})

	t.Run("the cookie authenticates", func(t *testing.T) {
		guardtest.OK200.Check(t, e.Do(t, http.MethodGet, "/account", "", func(r *http.Request) { r.AddCookie(byName[guardtest.SessionCookie]) }))
	})
}

// A cookie's Max-Age is read on the service's clock, as its Expires and the
// session's own expiry are: on another clock (WithClock) it was read on the
// system's, and a session made at a time the system clock has passed got
// cookies the browser deleted at once.
func TestSessionCookiesOnTheServicesClock(t *testing.T) {
	at := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	now := func() time.Time { return at }
	svc := sessions.New(security.NewMemoryStore(now), func(string) []string { return nil }, sessions.WithClock(now), sessions.WithTTL(time.Hour))
	ns, err := svc.Create(context.Background(), "alice", "reader", "laptop")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range svc.Cookies("__Host-session", ns) {
		if c.MaxAge != 3600 || !c.Expires.Equal(at.Add(time.Hour)) {
			t.Errorf("%s: Max-Age %d, Expires %v; want 3600 and %v", c.Name, c.MaxAge, c.Expires, at.Add(time.Hour))
		}
	}
}

// An allowed origin that is none a browser sends allows nothing: "null"
// (the Origin of sandboxed frames and data: pages of any site) given to
// WithAllowedOrigins admitted a cross-site write with Origin: null.
func TestAllowedOriginsThatAreNone(t *testing.T) {
	for _, o := range []string{"null", "*", "example.com", "https://App.example.com", "https://app.example.com/"} {
		if err := sessions.CheckOrigin(o); err == nil {
			t.Errorf("CheckOrigin(%q) = nil, want an error", o)
		}
	}
	// Nor a port with a leading zero, out of range, or an IPv6 address
	// not in its shortest form: a browser sends https://example.com,
	// https://example.com:8443, https://[::1]:8443 (helper-186).
	for _, o := range []string{"https://example.com:0443", "http://example.com:080", "https://example.com:08443",
		"https://example.com:99999", "https://example.com:0", "https://[0:0::1]:8443", "https://[::1]:443",
		// A browser writes an IPv4-mapped address in hex, and an IPv4
		// host in four decimal parts (helper-191).
		"https://[::ffff:127.0.0.1]:8443", "http://127.1:8080", "http://0x7f.0.0.1", "http://2130706433"} {
		if err := sessions.CheckOrigin(o); err == nil {
			t.Errorf("CheckOrigin(%q) = nil, want an error", o)
		}
	}
	for _, o := range []string{"https://app.example.com:8443", "http://example.com", "https://[::1]:8443", "http://127.0.0.1:8080", "https://[2001:db8::1]", "https://[::ffff:7f00:1]:8443", "https://app2.example.com", "https://1password.example"} {
		if err := sessions.CheckOrigin(o); err != nil {
			t.Errorf("CheckOrigin of an origin: %v", err)
		}
	}
	svc := sessions.New(security.NewMemoryStore(nil), func(string) []string { return nil }, sessions.WithAllowedOrigins("null", "*"))
	ns, err := svc.Create(context.Background(), "alice", "reader", "b")
	if err != nil {
		t.Fatal(err)
	}
	// A list none of which is an origin allows nothing, the own host
	// neither: it replaces the own host as any list does.
	own := sessions.New(security.NewMemoryStore(nil), func(string) []string { return nil }, sessions.WithAllowedOrigins("https://App.example"))
	ownSession, err := own.Create(context.Background(), "alice", "reader", "b")
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "https://app.example/x", nil)
	r.AddCookie(&http.Cookie{Name: "__Host-session", Value: ownSession.Cookie})
	r.AddCookie(&http.Cookie{Name: sessions.CSRFCookie, Value: ownSession.CSRF})
	r.Header.Set(sessions.CSRFHeader, ownSession.CSRF)
	r.Header.Set("Origin", "https://app.example")
	if p, err := own.Authenticate(context.Background(), r, &policy.Scheme{Name: "cookieAuth", Type: policy.SchemeAPIKeyCookie, Param: "__Host-session"}); err == nil {
		t.Errorf("the own host, with WithAllowedOrigins of no origin: admitted as %s", p.Subject)
	}
	for _, origin := range []string{"null", "*"} {
		r := httptest.NewRequest(http.MethodPost, "https://app.example/x", nil)
		r.AddCookie(&http.Cookie{Name: "__Host-session", Value: ns.Cookie})
		r.AddCookie(&http.Cookie{Name: sessions.CSRFCookie, Value: ns.CSRF})
		r.Header.Set(sessions.CSRFHeader, ns.CSRF)
		r.Header.Set("Origin", origin)
		r.Header.Set("Sec-Fetch-Site", "cross-site")
		if p, err := svc.Authenticate(context.Background(), r, &policy.Scheme{Name: "cookieAuth", Type: policy.SchemeAPIKeyCookie, Param: "__Host-session"}); err == nil {
			t.Errorf("Origin: %s, Sec-Fetch-Site: cross-site, with WithAllowedOrigins(%q): admitted as %s", origin, origin, p.Subject)
		}
	}
}
