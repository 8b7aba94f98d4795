package security_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/specguard/specguard/security"
)

var csrfFailed = want{status: http.StatusForbidden, problem: "csrf", authErr: noChallenge}

func TestSessionCSRF(t *testing.T) {
	e := newEnv(t)
	sess := e.session(t, "alice", "reader")
	other := e.session(t, "bob", "reader")
	token := e.login(t, "carol", "reader")
	post := http.MethodPost
	cases := []guardCase{
		{name: "GET with the cookie", path: "/account", mods: []mod{sessionCookies(sess)}, want: ok200, saw: okAs("getAccount", "alice", "cookieAuth")},
		{name: "GET cross-site needs no proof", path: "/account", mods: []mod{sessionCookies(sess), header("Sec-Fetch-Site", "cross-site")}, want: ok200, saw: okAs("getAccount", "alice", "cookieAuth")},
		{name: "POST with the correct proof", method: post, path: "/account", mods: []mod{sessionCookies(sess), csrfProof(sess)}, want: ok200, saw: okAs("postAccount", "alice", "cookieAuth")},
		{name: "POST without any proof", method: post, path: "/account", mods: []mod{sessionCookies(sess)}, want: csrfFailed},
		{name: "POST without the header", method: post, path: "/account", mods: []mod{sessionCookies(sess), cookie(security.CSRFCookie, sess.CSRF)}, want: csrfFailed},
		{name: "POST without the CSRF cookie", method: post, path: "/account", mods: []mod{sessionCookies(sess), header(security.CSRFHeader, sess.CSRF)}, want: csrfFailed},
		{name: "POST with a wrong token in both places", method: post, path: "/account",
			mods: []mod{sessionCookies(sess), cookie(security.CSRFCookie, "wrong-token-wrong-token"), header(security.CSRFHeader, "wrong-token-wrong-token")}, want: csrfFailed},
		{name: "POST with header and cookie that differ", method: post, path: "/account",
			mods: []mod{sessionCookies(sess), cookie(security.CSRFCookie, other.CSRF), header(security.CSRFHeader, sess.CSRF)}, want: csrfFailed},
		{name: "POST with the proof of another session", method: post, path: "/account", mods: []mod{sessionCookies(sess), csrfProof(other)}, want: csrfFailed},
		{name: "POST cross-site", method: post, path: "/account", mods: []mod{sessionCookies(sess), csrfProof(sess), header("Sec-Fetch-Site", "cross-site")}, want: csrfFailed},
		{name: "POST same-site", method: post, path: "/account", mods: []mod{sessionCookies(sess), csrfProof(sess), header("Sec-Fetch-Site", "same-site")}, want: csrfFailed},
		{name: "POST same-origin", method: post, path: "/account", mods: []mod{sessionCookies(sess), csrfProof(sess), header("Sec-Fetch-Site", "same-origin")}, want: ok200},
		{name: "POST from a foreign Origin", method: post, path: "/account", mods: []mod{sessionCookies(sess), csrfProof(sess), header("Origin", "https://evil.example")}, want: csrfFailed},
		{name: "POST from a look-alike Origin", method: post, path: "/account", mods: []mod{sessionCookies(sess), csrfProof(sess), header("Origin", e.srv.URL+".evil.example")}, want: csrfFailed},
		{name: "POST from Origin null", method: post, path: "/account", mods: []mod{sessionCookies(sess), csrfProof(sess), header("Origin", "null")}, want: csrfFailed},
		{name: "POST from the own Origin", method: post, path: "/account", mods: []mod{sessionCookies(sess), csrfProof(sess), header("Origin", e.srv.URL)}, want: ok200},
		{name: "POST from the own host over https", method: post, path: "/account", mods: []mod{sessionCookies(sess), csrfProof(sess), header("Origin", "https://"+strings.TrimPrefix(e.srv.URL, "http://"))}, want: ok200},
		{name: "POST from the own host over another scheme", method: post, path: "/account", mods: []mod{sessionCookies(sess), csrfProof(sess), header("Origin", "ws://"+strings.TrimPrefix(e.srv.URL, "http://"))}, want: csrfFailed},
		{name: "POST from plain http on a public host", method: post, path: "/account", mods: []mod{sessionCookies(sess), csrfProof(sess), host("blog.example"), header("Origin", "http://blog.example")}, want: csrfFailed},
		{name: "POST from https on a public host", method: post, path: "/account", mods: []mod{sessionCookies(sess), csrfProof(sess), host("blog.example"), header("Origin", "https://blog.example")}, want: ok200},
		{name: "POST with a bearer token needs no proof", method: post, path: "/account", mods: []mod{bearer(token.Access)}, want: ok200, saw: okAs("postAccount", "carol", "bearerAuth")},
		{name: "POST with a bearer token and an unproven cookie", method: post, path: "/account", mods: []mod{bearer(token.Access), sessionCookies(sess)}, want: csrfFailed},
		{name: "two session cookies", path: "/account", mods: []mod{sessionCookies(sess), sessionCookies(other)}, want: badRequest},
		{name: "two session cookies, one planted", path: "/account", mods: []mod{sessionCookies(sess), cookie(sessionCookie, "alice.planted.planted")}, want: badRequest},
	}
	runGuardCases(t, e, cases)
}

// forgedCookie is a cookie of the right shape whose id and secret were
// invented by an attacker.
func forgedCookie(subject string) string {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	return subject + "." + security.NewID() + "." + base64.RawURLEncoding.EncodeToString(secret)
}

func TestSessionRejectsBadCookies(t *testing.T) {
	e := newEnv(t)
	sess := e.session(t, "alice", "reader")
	subject, rest, _ := strings.Cut(sess.Cookie, ".")
	id, secret, _ := strings.Cut(rest, ".")
	otherSecret := strings.Split(forgedCookie("x"), ".")[2]
	deleted := e.session(t, "alice", "reader")
	if err := e.sessions.Delete(context.Background(), "alice", deleted.Session.ID); err != nil {
		t.Fatal(err)
	}
	cases := []guardCase{
		{name: "valid", path: "/account", mods: []mod{cookie(sessionCookie, sess.Cookie)}, want: ok200},
		{name: "invented by an attacker", path: "/account", mods: []mod{cookie(sessionCookie, forgedCookie("alice"))}, want: invalidToken},
		{name: "right id, wrong secret", path: "/account", mods: []mod{cookie(sessionCookie, subject+"."+id+"."+otherSecret)}, want: invalidToken},
		{name: "right id and secret, other subject", path: "/account", mods: []mod{cookie(sessionCookie, "bob."+id+"."+secret)}, want: invalidToken},
		{name: "malformed", path: "/account", mods: []mod{cookie(sessionCookie, "not-a-session")}, want: invalidToken},
		{name: "short secret", path: "/account", mods: []mod{cookie(sessionCookie, subject+"."+id+"."+secret[:20])}, want: invalidToken},
		{name: "overlong", path: "/account", mods: []mod{cookie(sessionCookie, subject+"."+id+"."+secret+strings.Repeat("A", 300))}, want: invalidToken},
		{name: "deleted", path: "/account", mods: []mod{sessionCookies(deleted)}, want: invalidToken},
		{name: "empty", path: "/account", mods: []mod{header("Cookie", sessionCookie+"=")}, want: invalidToken},
	}
	runGuardCases(t, e, cases)

	t.Run("expired", func(t *testing.T) {
		e.clock.Advance(13 * time.Hour)
		invalidToken.check(t, e.do(t, http.MethodGet, "/account", "", sessionCookies(sess)))
	})
}

func TestSessionFixation(t *testing.T) {
	e := newEnv(t)
	planted := forgedCookie("alice")
	invalidToken.check(t, e.do(t, http.MethodGet, "/account", "", cookie(sessionCookie, planted)))

	seenIDs, seenCookies, seenCSRF := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for range 5 {
		ns := e.session(t, "alice", "reader")
		if seenIDs[ns.Session.ID] || seenCookies[ns.Cookie] || seenCSRF[ns.CSRF] {
			t.Fatalf("Create repeated an id, cookie or CSRF token: %s", ns.Session.ID)
		}
		seenIDs[ns.Session.ID], seenCookies[ns.Cookie], seenCSRF[ns.CSRF] = true, true, true
		if strings.Contains(ns.Cookie, strings.Split(planted, ".")[1]) {
			t.Fatal("Create reused the planted id")
		}
	}
	// Logging in never promotes the planted value.
	invalidToken.check(t, e.do(t, http.MethodGet, "/account", "", cookie(sessionCookie, planted)))
}

func TestSessionStoresOnlyTheSecretHash(t *testing.T) {
	e := newEnv(t)
	ns := e.session(t, "alice", "reader")
	secret := strings.Split(ns.Cookie, ".")[2]
	list, err := e.store.Sessions(context.Background(), "alice")
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
	e := newEnv(t)
	ns := e.session(t, "alice", "reader")
	cookies := e.sessions.Cookies(sessionCookie, ns)
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
		{name: sessionCookie, value: ns.Cookie, httpOnly: true, sameSite: http.SameSiteLaxMode},
		{name: security.CSRFCookie, value: ns.CSRF, httpOnly: false, sameSite: http.SameSiteStrictMode},
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
		for _, c := range e.sessions.ClearCookies(sessionCookie) {
			if c.MaxAge >= 0 || c.Value != "" || !c.Secure || c.Path != "/" {
				t.Errorf("clearing cookie %+v; want MaxAge < 0, empty, Secure, Path /", c)
			}
		}
	})

	t.Run("the cookie authenticates", func(t *testing.T) {
		ok200.check(t, e.do(t, http.MethodGet, "/account", "", func(r *http.Request) { r.AddCookie(byName[sessionCookie]) }))
	})
}
