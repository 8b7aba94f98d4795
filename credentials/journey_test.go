package credentials_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/tokens"
)

// A library user mounts the credential operations of the Fragment and gets
// every one of them, on every backend: accounts, tokens with rotation and
// reuse detection, the OAuth2 token endpoint's three grants, browser
// sessions with CSRF, session lists, API keys, account changes, JWKS.
func TestJourney(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := onBackend(t, b)
			if err := e.svc.Seed(ctx, []credentials.SeedAccount{{Email: "root@example.com", Password: "root-password-1", Role: "admin"}}, nil); err != nil {
				t.Fatal(err)
			}
			t.Run("accounts", func(t *testing.T) { accountsJourney(t, e) })
			t.Run("tokens", func(t *testing.T) { tokensJourney(t, e) })
			t.Run("token endpoint", func(t *testing.T) { tokenEndpointJourney(t, e) })
			t.Run("browser sessions", func(t *testing.T) { sessionsJourney(t, e) })
			t.Run("API keys", func(t *testing.T) { keysJourney(t, e) })
			t.Run("account changes", func(t *testing.T) { changesJourney(t, e) })
		})
	}
}

func accountsJourney(t *testing.T, e *env) {
	r := e.json("POST", "/auth/register", `{"email":"ann@example.com","password":"ann-password-1"}`)
	if r.code != 201 || r.body["email"] != "ann@example.com" || r.body["role"] != "user" || r.body["disabled"] != false {
		t.Fatalf("register: %d %s", r.code, r.raw)
	}
	if r := e.json("POST", "/auth/register", `{"email":"ANN@example.com","password":"ann-password-2"}`); r.code != 409 {
		t.Errorf("the address again, in another case: %d, want 409", r.code)
	}
	if r := e.json("POST", "/auth/register", `{"email":"Ann <ann@example.com>","password":"ann-password-2"}`); r.code != 400 {
		t.Errorf("a display name for an address: %d, want 400", r.code)
	}
	// A wrong password is no invalid token: the request presented none
	// (RFC 6750 section 3.1), and a client told invalid_token refreshes
	// its token rather than ask for the password again.
	for _, path := range []string{"/auth/login", "/auth/session"} {
		r = e.json("POST", path, `{"email":"ann@example.com","password":"wrong-password"}`)
		if c := r.header.Get("WWW-Authenticate"); r.code != 401 || !strings.HasPrefix(c, "Bearer realm=") || strings.Contains(c, "error") {
			t.Errorf("%s, a wrong password: %d %q, want 401 with a challenge naming no error", path, r.code, c)
		}
	}
	access, _ := e.login("ann@example.com", "ann-password-1")
	r = e.do("GET", "/me", "", "", bearer(access)...)
	if r.code != 200 || r.body["email"] != "ann@example.com" || r.body["role"] != "user" || r.body["scheme"] != "bearerAuth" {
		t.Errorf("/me: %d %s", r.code, r.raw)
	}
	if r := e.do("GET", "/.well-known/jwks.json", "", ""); r.code != 200 || len(r.body["keys"].([]any)) != 1 {
		t.Errorf("JWKS: %d %s", r.code, r.raw)
	}
}

func tokensJourney(t *testing.T, e *env) {
	first := e.json("POST", "/auth/login", `{"email":"root@example.com","password":"root-password-1","device":"laptop"}`)
	if first.code != 200 || first.header.Get("Cache-Control") != "no-store" || first.body["token_type"] != "Bearer" {
		t.Fatalf("login: %d %v %s", first.code, first.header, first.raw)
	}
	access, refresh := first.body["access_token"].(string), first.body["refresh_token"].(string)
	second := e.json("POST", "/auth/refresh", `{"refresh_token":"`+refresh+`"}`)
	if second.code != 200 || second.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("refresh: %d %s", second.code, second.raw)
	}
	if r := e.do("GET", "/me", "", "", bearer(access)...); r.code != 401 {
		t.Errorf("the replaced access token: %d, want 401", r.code)
	}
	newer := second.body["access_token"].(string)
	if r := e.do("GET", "/me", "", "", bearer(newer)...); r.code != 200 {
		t.Errorf("the successor: %d", r.code)
	}
	// Reuse of the spent refresh token ends the whole login.
	if r := e.json("POST", "/auth/refresh", `{"refresh_token":"`+refresh+`"}`); r.code != 401 || !strings.Contains(r.raw, "reused") {
		t.Errorf("a spent refresh token: %d %s", r.code, r.raw)
	}
	if r := e.do("GET", "/me", "", "", bearer(newer)...); r.code != 401 {
		t.Errorf("the successor after reuse: %d, want 401", r.code)
	}
	// Logout ends this login only.
	a1, _ := e.login("root@example.com", "root-password-1")
	a2, _ := e.login("root@example.com", "root-password-1")
	if r := e.do("POST", "/auth/logout", "", "", bearer(a1)...); r.code != 204 {
		t.Fatalf("logout: %d %s", r.code, r.raw)
	}
	if r := e.do("GET", "/me", "", "", bearer(a1)...); r.code != 401 {
		t.Errorf("after logout: %d, want 401", r.code)
	}
	if r := e.do("GET", "/me", "", "", bearer(a2)...); r.code != 200 {
		t.Errorf("another login after logout: %d, want 200", r.code)
	}
	// The session list shows the live logins, the current one marked.
	r := e.do("GET", "/auth/sessions", "", "", bearer(a2)...)
	if r.code != 200 || len(r.list) == 0 {
		t.Fatalf("sessions: %d %s", r.code, r.raw)
	}
	var other string
	current := 0
	for _, it := range r.list {
		s := it.(map[string]any)
		if s["current"] == true {
			current++
		} else {
			other = s["id"].(string)
		}
	}
	if current != 1 {
		t.Errorf("%d sessions marked current, want 1", current)
	}
	if other != "" {
		if r := e.do("DELETE", "/auth/sessions/"+other, "", "", bearer(a2)...); r.code != 204 {
			t.Errorf("deleting another session: %d", r.code)
		}
	}
	if r := e.do("DELETE", "/auth/sessions/nope", "", "", bearer(a2)...); r.code != 404 {
		t.Errorf("deleting no session: %d, want 404", r.code)
	}
	// Logout everywhere ends every credential, this one too.
	if r := e.do("POST", "/auth/logout-all", "", "", bearer(a2)...); r.code != 204 {
		t.Fatalf("logout-all: %d %s", r.code, r.raw)
	}
	if r := e.do("GET", "/me", "", "", bearer(a2)...); r.code != 401 {
		t.Errorf("after logout-all: %d, want 401", r.code)
	}
}

func tokenEndpointJourney(t *testing.T, e *env) {
	// A parameter given twice is refused (RFC 6749 section 3.2), by the
	// guard's validation here (see TestDecodeRefusesBodiesThatAreNotOneValue
	// for the operation's own check): the validator checks the first that
	// is not empty, a handler reads the first.
	for _, v := range []url.Values{
		{"grant_type": {"", "password"}, "username": {"root@example.com"}, "password": {"root-password-1"}},
		{"grant_type": {"password"}, "username": {"root@example.com", "other@example.com"}, "password": {"root-password-1"}},
	} {
		if r := e.form("/auth/token", v); r.code != 400 || r.body["error"] != "invalid_request" || !strings.Contains(r.raw, "given more than once") {
			t.Errorf("%s: %d %s, want 400 invalid_request saying a parameter is given more than once", v.Encode(), r.code, r.raw)
		}
	}
	// Whatever the guard's validation refuses is answered as RFC 6749
	// section 5.2 says, as an OAuth2 client reads it, not as a problem.
	for _, c := range []struct {
		contentType, body, code string
	}{
		{"application/x-www-form-urlencoded", "grant_type=authorization_code&code=x", "unsupported_grant_type"},
		{"application/x-www-form-urlencoded", "username=root%40example.com&password=x", "invalid_request"},
		{"application/json", `{"grant_type":"password"}`, "invalid_request"},
		{"application/x-www-form-urlencoded", "grant_type=password&password=root-password-1&username=" + strings.Repeat("a", 2000), "invalid_request"},
	} {
		r := e.do("POST", "/auth/token", c.contentType, c.body)
		if r.code != 400 || r.body["error"] != c.code || r.body["error_description"] == nil || r.header.Get("Content-Type") != "application/json" || r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s %.60s: %d %s %q, want 400 application/json, no-store, error %s", c.contentType, c.body, r.code, r.header.Get("Content-Type"), r.raw, c.code)
		}
	}
	r := e.form("/auth/token", url.Values{"grant_type": {"password"}, "username": {"root@example.com"}, "password": {"root-password-1"}, "scope": {"users:read"}})
	if r.code != 200 || r.body["scope"] != "users:read" || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("password grant narrowed to users:read: %d %s", r.code, r.raw)
	}
	// A refresh asking for a scope the login was not granted is refused
	// (RFC 6749 section 6), and spends nothing: the token still works.
	wider := e.form("/auth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r.body["refresh_token"].(string)}, "scope": {"users:read users:admin"}})
	if wider.code != 400 || wider.body["error"] != "invalid_scope" {
		t.Errorf("refresh grant asking for more: %d %s, want 400 invalid_scope", wider.code, wider.raw)
	}
	// The narrowing holds across refreshes.
	again := e.form("/auth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r.body["refresh_token"].(string)}})
	if again.code != 200 || again.body["scope"] != "users:read" {
		t.Errorf("refresh grant: %d %s, want scope users:read", again.code, again.raw)
	}
	// A refresh may narrow the login's scopes for its access token.
	full := e.form("/auth/token", url.Values{"grant_type": {"password"}, "username": {"root@example.com"}, "password": {"root-password-1"}})
	if full.code != 200 {
		t.Fatalf("password grant: %d %s", full.code, full.raw)
	}
	narrowed := e.form("/auth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {full.body["refresh_token"].(string)}, "scope": {"users:read"}})
	if narrowed.code != 200 || narrowed.body["scope"] != "users:read" {
		t.Errorf("refresh grant narrowed to users:read: %d %s", narrowed.code, narrowed.raw)
	}
	for _, c := range []struct {
		form url.Values
		code string
	}{
		{url.Values{"grant_type": {"password"}, "username": {"root@example.com"}, "password": {"root-password-1"}, "scope": {"nope"}}, "invalid_scope"},
		{url.Values{"grant_type": {"password"}, "username": {"root@example.com"}, "password": {"wrong"}}, "invalid_grant"},
		{url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x.y.z"}}, "invalid_grant"},
		{url.Values{"grant_type": {"client_credentials"}}, "invalid_request"},
		// A parameter missing is a malformed request, not a wrong password.
		{url.Values{"grant_type": {"password"}, "username": {"root@example.com"}}, "invalid_request"},
		{url.Values{"grant_type": {"password"}, "password": {"root-password-1"}}, "invalid_request"},
	} {
		if r := e.form("/auth/token", c.form); r.code != 400 || r.body["error"] != c.code {
			t.Errorf("%v: %d %s, want 400 %s", c.form, r.code, r.raw, c.code)
		}
	}
}

func sessionsJourney(t *testing.T, e *env) {
	r := e.json("POST", "/auth/session", `{"email":"root@example.com","password":"root-password-1","device":"browser"}`)
	if r.code != 201 || r.body["csrf_token"] == nil || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("browser login: %d %s", r.code, r.raw)
	}
	var cookies []string
	var session string
	for _, c := range r.cookie {
		cookies = append(cookies, c.Name+"="+c.Value)
		if c.Name == "__Host-session" {
			session = c.Value
			if !c.Secure || !c.HttpOnly || c.Path != "/" {
				t.Errorf("session cookie %+v: want Secure, HttpOnly, Path=/", c)
			}
		}
	}
	if session == "" {
		t.Fatalf("no session cookie: %v", r.cookie)
	}
	cookie := strings.Join(cookies, "; ")
	csrf := r.body["csrf_token"].(string)
	if r := e.do("GET", "/me", "", "", "Cookie", cookie); r.code != 200 || r.body["scheme"] != "cookieAuth" {
		t.Errorf("/me by cookie: %d %s", r.code, r.raw)
	}
	// The session list marks this browser session as the current one.
	if r := e.do("GET", "/auth/sessions", "", "", "Cookie", cookie); r.code != 200 {
		t.Errorf("sessions by cookie: %d %s", r.code, r.raw)
	} else {
		marked := 0
		for _, it := range r.list {
			if s := it.(map[string]any); s["current"] == true {
				marked++
				if s["kind"] != "cookie" || s["id"] == "" {
					t.Errorf("the current session %v, want this cookie session", s)
				}
			}
		}
		if marked != 1 {
			t.Errorf("%d sessions marked current by cookie, want 1: %s", marked, r.raw)
		}
	}
	if r := e.do("POST", "/auth/logout", "", "", "Cookie", cookie); r.code != 403 {
		t.Errorf("logout by cookie without the CSRF token: %d, want 403", r.code)
	}
	if r := e.do("POST", "/auth/logout", "", "", "Cookie", cookie, "X-CSRF-Token", "wrong"); r.code != 403 {
		t.Errorf("logout by cookie with a wrong CSRF token: %d, want 403", r.code)
	}
	r = e.do("POST", "/auth/logout", "", "", "Cookie", cookie, "X-CSRF-Token", csrf)
	if r.code != 204 {
		t.Fatalf("logout by cookie: %d %s", r.code, r.raw)
	}
	cleared := 0
	for _, c := range r.cookie {
		if c.MaxAge < 0 {
			cleared++
		}
	}
	if cleared != 2 {
		t.Errorf("logout cleared %d cookies, want the session's and the CSRF one", cleared)
	}
	if r := e.do("GET", "/me", "", "", "Cookie", cookie); r.code != 401 {
		t.Errorf("the session after logout: %d, want 401", r.code)
	}
	// A browser session login ends the session whose cookie it replaces,
	// the same account's or another's: a copy of that cookie (the last
	// user's, on a shared browser) must not outlive it.
	e.register("next@example.com", "next-password-1")
	for _, who := range []string{"root@example.com", "next@example.com"} {
		old, _ := e.browserLogin("root@example.com", "root-password-1")
		pw := map[string]string{"root@example.com": "root-password-1", "next@example.com": "next-password-1"}[who]
		r := e.json("POST", "/auth/session", `{"email":"`+who+`","password":"`+pw+`","device":"browser"}`, "Cookie", old)
		if r.code != 201 {
			t.Fatalf("browser login as %s over root's session: %d %s", who, r.code, r.raw)
		}
		if r := e.do("GET", "/me", "", "", "Cookie", old); r.code != 401 {
			t.Errorf("root's session after a login as %s replaced its cookie: GET /me %d, want 401", who, r.code)
		}
		var cookies []string
		for _, c := range r.cookie {
			cookies = append(cookies, c.Name+"="+c.Value)
		}
		if r := e.do("GET", "/me", "", "", "Cookie", strings.Join(cookies, "; ")); r.code != 200 {
			t.Errorf("the new session of %s: GET /me %d", who, r.code)
		}
	}
	bothLogout(t, e)
}

// bothLogout: a logout by token that also carries a session cookie (a page
// holding both) ends that session too. A session of the token's own account
// needs no CSRF token (the token could end it anyway); another account's
// does, and without it nothing is ended (403). The same for logout
// everywhere.
func bothLogout(t *testing.T, e *env) {
	live := func(what string, want int, header ...string) {
		t.Helper()
		if r := e.do("GET", "/me", "", "", header...); r.code != want {
			t.Errorf("%s: %d, want %d", what, r.code, want)
		}
	}
	cleared := func(r reply) int {
		n := 0
		for _, c := range r.cookie {
			if c.MaxAge < 0 {
				n++
			}
		}
		return n
	}
	if r := e.do("POST", "/auth/register", "application/json", `{"email":"carol@example.com","password":"carol-password-1"}`); r.code != 201 {
		t.Fatalf("register: %d %s", r.code, r.raw)
	}
	for _, op := range []string{"/auth/logout", "/auth/logout-all"} {
		// The token's own account's session, without its CSRF token.
		cookie, _ := e.browserLogin("root@example.com", "root-password-1")
		access, _ := e.login("root@example.com", "root-password-1")
		if r := e.do("POST", op, "", "", append(bearer(access), "Cookie", cookie)...); r.code != 204 || cleared(r) != 2 {
			t.Errorf("%s by token with its own account's session cookie: %d %s (%d cookies cleared), want 204 and 2", op, r.code, r.raw, cleared(r))
		}
		live(op+": the token afterwards", 401, bearer(access)...)
		live(op+": the session afterwards", 401, "Cookie", cookie)
		// Another account's session: its CSRF token, or nothing ends.
		cookie, csrf := e.browserLogin("carol@example.com", "carol-password-1")
		access, _ = e.login("root@example.com", "root-password-1")
		if r := e.do("POST", op, "", "", append(bearer(access), "Cookie", cookie)...); r.code != 403 || cleared(r) != 0 {
			t.Errorf("%s by token with another account's live session cookie and no CSRF token: %d %s (%d cookies cleared), want 403 and none", op, r.code, r.raw, cleared(r))
		}
		live(op+": the token after a refused logout", 200, bearer(access)...)
		live(op+": the other account's session after a refused logout", 200, "Cookie", cookie)
		if r := e.do("POST", op, "", "", append(bearer(access), "Cookie", cookie, "X-CSRF-Token", csrf)...); r.code != 204 || cleared(r) != 2 {
			t.Errorf("%s by token with another account's session cookie and its CSRF token: %d %s (%d cookies cleared), want 204 and 2", op, r.code, r.raw, cleared(r))
		}
		live(op+": the token after logging out of both", 401, bearer(access)...)
		live(op+": the other account's session after logging out of both", 401, "Cookie", cookie)
		// A cookie whose session has ended is only cleared, CSRF token or not.
		access, _ = e.login("root@example.com", "root-password-1")
		if r := e.do("POST", op, "", "", append(bearer(access), "Cookie", cookie)...); r.code != 204 || cleared(r) != 2 {
			t.Errorf("%s by token with an ended session's cookie: %d %s (%d cookies cleared), want 204 and 2", op, r.code, r.raw, cleared(r))
		}
		live(op+": the token after its logout", 401, bearer(access)...)
	}
	// Without a session cookie, nothing is cleared.
	access, _ := e.login("root@example.com", "root-password-1")
	if r := e.do("POST", "/auth/logout", "", "", bearer(access)...); r.code != 204 || len(r.cookie) != 0 {
		t.Errorf("logout by token alone: %d %s (%d cookies set), want 204 and none", r.code, r.raw, len(r.cookie))
	}
}

func keysJourney(t *testing.T, e *env) {
	access, _ := e.login("root@example.com", "root-password-1")
	r := e.json("POST", "/api-keys", `{"name":"ci","scopes":["users:read"]}`, bearer(access)...)
	if r.code != 201 || r.header.Get("Cache-Control") != "no-store" || !strings.HasPrefix(r.body["key"].(string), security.APIKeyPrefix) {
		t.Fatalf("create a key: %d %s", r.code, r.raw)
	}
	key, id := r.body["key"].(string), r.body["id"].(string)
	if r := e.json("POST", "/api-keys", `{"name":"x","scopes":["nope"]}`, bearer(access)...); r.code != 400 {
		t.Errorf("a key with an undeclared scope: %d, want 400", r.code)
	}
	if r := e.do("GET", "/api-keys", "", "", bearer(access)...); r.code != 200 || len(r.list) != 1 || r.list[0].(map[string]any)["key"] != nil {
		t.Errorf("list keys: %d %s (never the secret)", r.code, r.raw)
	}
	if r := e.do("GET", "/me", "", "", "X-API-Key", key); r.code != 200 || strings.Join(toStrings(r.body["scopes"]), " ") != "users:read" {
		t.Errorf("/me by key: %d %s", r.code, r.raw)
	}
	// The client_credentials grant: the key's id and secret.
	kid, secret, _ := strings.Cut(strings.TrimPrefix(key, security.APIKeyPrefix), ".")
	cc := e.form("/auth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {kid}, "client_secret": {secret}})
	if cc.code != 200 || cc.body["refresh_token"] != nil || cc.body["scope"] != "users:read" {
		t.Fatalf("client_credentials: %d %s, want a token of the key's scopes and no refresh token", cc.code, cc.raw)
	}
	ccToken := cc.body["access_token"].(string)
	// In HTTP Basic it is the same client; in Basic and the form at once
	// it is refused (RFC 6749 section 2.3: one method), even when both
	// name the key; an Authorization header that is no Basic credential is
	// a client authentication that failed (section 5.2).
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(kid+":"+secret))
	if r := e.form("/auth/token", url.Values{"grant_type": {"client_credentials"}}, "Authorization", basic); r.code != 200 {
		t.Errorf("client_credentials in HTTP Basic: %d %s", r.code, r.raw)
	}
	if r := e.form("/auth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {kid}, "client_secret": {"wrong"}}, "Authorization", basic); r.code != 400 || r.body["error"] != "invalid_request" {
		t.Errorf("client_credentials in HTTP Basic and the form: %d %s, want 400 invalid_request", r.code, r.raw)
	}
	// client_id alone in the form names the client (section 3.2.1): the
	// same one as Basic's is no second method, another one is.
	if r := e.form("/auth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {security.APIKeyPrefix + kid}}, "Authorization", basic); r.code != 200 {
		t.Errorf("client_credentials in HTTP Basic, its client_id in the form: %d %s, want 200", r.code, r.raw)
	}
	if r := e.form("/auth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"other"}}, "Authorization", basic); r.code != 400 || r.body["error"] != "invalid_request" {
		t.Errorf("client_credentials in HTTP Basic, another client_id in the form: %d %s, want 400 invalid_request", r.code, r.raw)
	}
	if r := e.form("/auth/token", url.Values{"grant_type": {"client_credentials"}}, "Authorization", "Basic !!!"); r.code != 401 || r.body["error"] != "invalid_client" || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("client_credentials with an unreadable Basic header: %d %s, want 401 invalid_client with a Basic challenge", r.code, r.raw)
	}
	if r := e.do("GET", "/admin/users", "", "", bearer(ccToken)...); r.code != 200 {
		t.Errorf("the client_credentials token: %d %s", r.code, r.raw)
	}
	// It has no login: logging out with it ends nothing, and says so
	// rather than answer 204 (its client would take the token for ended).
	if r := e.do("POST", "/auth/logout", "", "", bearer(ccToken)...); r.code != 400 || !strings.Contains(fmt.Sprint(r.body["detail"]), "no login to end") {
		t.Errorf("logout with the client_credentials token: %d %s, want 400 saying it has no login to end", r.code, r.raw)
	}
	if err := e.svc.Logout(ctx, bearerPrincipal(t, e, ccToken)); !errors.Is(err, credentials.ErrNoLogin) {
		t.Errorf("Logout of the client_credentials token's principal: %v, want ErrNoLogin", err)
	}
	// Sent with a session cookie of the key's account, the session ends.
	cookie, csrf := e.browserLogin("root@example.com", "root-password-1")
	if r := e.do("POST", "/auth/logout", "", "", append(bearer(ccToken), "Cookie", cookie, "X-CSRF-Token", csrf)...); r.code != 204 {
		t.Errorf("logout with the client_credentials token and a session cookie: %d %s, want 204", r.code, r.raw)
	}
	if r := e.do("GET", "/me", "", "", "Cookie", cookie); r.code != 401 {
		t.Errorf("the session after a logout with the key's token beside it: %d, want 401", r.code)
	}
	if r := e.do("GET", "/admin/users", "", "", bearer(ccToken)...); r.code != 200 {
		t.Errorf("the client_credentials token after its logout: %d, want 200 (it holds while the key does)", r.code)
	}
	// A token of a login presented together with a key (an operation
	// requiring both): logout ends the login all the same.
	other, _ := e.login("root@example.com", "root-password-1")
	if err := e.svc.Logout(ctx, withKey(t, e, other, kid)); err != nil {
		t.Fatal(err)
	}
	if r := e.do("GET", "/admin/users", "", "", bearer(other)...); r.code != 401 {
		t.Errorf("a login's token after logout together with a key: %d, want 401", r.code)
	}
	if r := e.do("GET", "/admin/users", "", "", bearer(ccToken)...); r.code != 200 {
		t.Errorf("the key's token after another login's logout: %d, want 200", r.code)
	}
	// A secret one character off. It must differ whatever the secret: a
	// fixed tail ("AA") equals the real one once in 1,024 keys.
	wrong := "A" + secret[1:]
	if wrong == secret {
		wrong = "B" + secret[1:]
	}
	if r := e.form("/auth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {kid}, "client_secret": {wrong}}); r.code != 401 || r.body["error"] != "invalid_client" {
		t.Errorf("a wrong client secret: %d %s, want 401 invalid_client", r.code, r.raw)
	}
	// Revoking the key ends it and every token minted from it.
	if r := e.do("DELETE", "/api-keys/"+id, "", "", bearer(access)...); r.code != 204 {
		t.Fatalf("revoke: %d %s", r.code, r.raw)
	}
	if r := e.do("GET", "/me", "", "", "X-API-Key", key); r.code != 401 {
		t.Errorf("the revoked key: %d, want 401", r.code)
	}
	if r := e.do("GET", "/admin/users", "", "", bearer(ccToken)...); r.code != 401 {
		t.Errorf("a token of the revoked key: %d, want 401", r.code)
	}
	if r := e.do("DELETE", "/api-keys/"+id, "", "", bearer(access)...); r.code != 404 {
		t.Errorf("revoking it again: %d, want 404", r.code)
	}
}

func changesJourney(t *testing.T, e *env) {
	admin, _ := e.login("root@example.com", "root-password-1")
	userAccess, userRefresh := e.register("bob@example.com", "bob-password-1")
	r := e.do("GET", "/admin/users", "", "", bearer(admin)...)
	var bob string
	for _, it := range r.list {
		if u := it.(map[string]any); u["email"] == "bob@example.com" {
			bob = u["id"].(string)
		}
	}
	if r.code != 200 || bob == "" {
		t.Fatalf("list users: %d %s", r.code, r.raw)
	}
	// Page by page, one account each, after the last address of the
	// page before: every account once, in the same order.
	var all, paged []string
	for _, it := range r.list {
		all = append(all, it.(map[string]any)["email"].(string))
	}
	for after := ""; len(paged) <= len(all); {
		page := e.do("GET", "/admin/users?limit=1&after="+url.QueryEscape(after), "", "", bearer(admin)...)
		if page.code != 200 || len(page.list) > 1 {
			t.Fatalf("a page of one account: %d %s", page.code, page.raw)
		}
		if len(page.list) == 0 {
			break
		}
		after = page.list[0].(map[string]any)["email"].(string)
		paged = append(paged, after)
	}
	if len(all) < 2 || !slices.Equal(paged, all) {
		t.Errorf("page by page: %q, want %q (the whole list)", paged, all)
	}
	if r := e.do("GET", "/admin/users", "", "", bearer(userAccess)...); r.code != 403 {
		t.Errorf("a user lists users: %d, want 403", r.code)
	}
	if r := e.json("PATCH", "/admin/users/"+bob, `{"role":"moderator"}`, bearer(admin)...); r.code != 200 || r.body["role"] != "moderator" {
		t.Fatalf("promote: %d %s", r.code, r.raw)
	}
	if r := e.json("PATCH", "/admin/users/"+bob, `{"role":"emperor"}`, bearer(admin)...); r.code != 400 {
		t.Errorf("an undeclared role: %d, want 400", r.code)
	}
	if r := e.json("PATCH", "/admin/users/nobody", `{"role":"user"}`, bearer(admin)...); r.code != 404 {
		t.Errorf("no such account: %d, want 404", r.code)
	}
	if r := e.do("POST", "/admin/users/"+bob+"/disable", "", "", bearer(admin)...); r.code != 204 {
		t.Fatalf("disable: %d %s", r.code, r.raw)
	}
	if r := e.do("GET", "/me", "", "", bearer(userAccess)...); r.code != 401 {
		t.Errorf("a disabled account's token: %d, want 401", r.code)
	}
	if r := e.json("POST", "/auth/refresh", `{"refresh_token":"`+userRefresh+`"}`); r.code != 401 {
		t.Errorf("a disabled account's refresh token: %d, want 401", r.code)
	}
	if r := e.json("POST", "/auth/login", `{"email":"bob@example.com","password":"bob-password-1"}`); r.code != 401 {
		t.Errorf("a disabled account logs in: %d, want 401", r.code)
	}
	if r := e.json("PATCH", "/admin/users/"+bob, `{"disabled":false}`, bearer(admin)...); r.code != 200 || r.body["disabled"] != false {
		t.Fatalf("enable: %d %s", r.code, r.raw)
	}
	e.login("bob@example.com", "bob-password-1") // enabled again
}

func toStrings(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, s := range list {
		out = append(out, s.(string))
	}
	return out
}

// withKey is the principal of access token raw as an operation requiring
// a token and API key kid together makes it: the token's credential, then
// the key's.
func withKey(t *testing.T, e *env, raw, kid string) *security.Principal {
	t.Helper()
	p := bearerPrincipal(t, e, raw)
	both := *p
	both.Scheme += "+apiKeyAuth"
	both.Credentials = append(p.Credentials[:len(p.Credentials):len(p.Credentials)], security.NewCredential(security.KindAPIKey, kid))
	return &both
}

// bearerPrincipal is the principal the bearer token raw authenticates.
func bearerPrincipal(t *testing.T, e *env, raw string) *security.Principal {
	t.Helper()
	r := httptest.NewRequest("POST", "/auth/logout", nil)
	r.Header.Set("Authorization", "Bearer "+raw)
	p, err := tokens.Bearer{Tokens: e.svc.Tokens()}.Authenticate(ctx, r, &policy.Scheme{Name: "bearerAuth", Type: policy.SchemeBearer})
	if err != nil || p == nil {
		t.Fatalf("authenticate the token: %v", err)
	}
	return p
}

// At the cap on an account's sessions, logging in again in a browser that
// holds one of them replaces it: the login was refused 409 (too many)
// though it was to end that very session.
func TestLoginAgainAtTheSessionCap(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := onBackend(t, b, credentials.WithMaxSessions(1))
			e.register("capped@example.com", "capped-password-1")
			old, _ := e.browserLogin("capped@example.com", "capped-password-1")
			r := e.json("POST", "/auth/session", `{"email":"capped@example.com","password":"capped-password-1","device":"browser"}`, "Cookie", old)
			if r.code != 201 {
				t.Fatalf("logging in again over the one session allowed: %d %s", r.code, r.raw)
			}
			if r := e.do("GET", "/me", "", "", "Cookie", old); r.code != 401 {
				t.Errorf("the replaced session: GET /me %d, want 401", r.code)
			}
			// Another browser, without the cookie, is still refused.
			if r := e.json("POST", "/auth/session", `{"email":"capped@example.com","password":"capped-password-1","device":"browser"}`); r.code != 409 {
				t.Errorf("a second browser at the cap: %d %s, want 409", r.code, r.raw)
			}
		})
	}
}

// A document whose token operation declares fewer grants has the others
// answered unsupported_grant_type, as RFC 6749 section 5.2 says of a grant
// the server does not support, naming those it does.
func TestTokenEndpointServesTheDocumentsGrants(t *testing.T) {
	spec := bytes.Replace(credentials.Fragment, []byte("enum: [password, refresh_token, client_credentials]"), []byte("enum: [password, refresh_token]"), 1)
	if bytes.Equal(spec, credentials.Fragment) {
		t.Fatal("the Fragment's grant_type enum was not found")
	}
	accounts, keys := memoryRecords(t)
	store, lim := memoryState(t)
	e := newEnv(t, spec, accounts, keys, store, lim)
	r := e.form("/auth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"a"}, "client_secret": {"b"}})
	if r.code != 400 || r.body["error"] != "unsupported_grant_type" || r.body["error_description"] != "grant_type must be one of: password, refresh_token" {
		t.Errorf("client_credentials, which the document leaves out: %d %s, want 400 unsupported_grant_type naming password and refresh_token", r.code, r.raw)
	}
	// The operation answers so itself, without the guard's validation.
	unvalidated := unvalidatedEnv(t, spec)
	if r := unvalidated.form("/auth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"a"}, "client_secret": {"b"}}); r.code != 400 || r.body["error"] != "unsupported_grant_type" {
		t.Errorf("client_credentials, which the document leaves out, without request validation: %d %s, want 400 unsupported_grant_type", r.code, r.raw)
	}
}
