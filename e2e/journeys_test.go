package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	openapi_types "github.com/oapi-codegen/runtime/types"

	"github.com/specguard/specguard/e2e/client"
	"github.com/specguard/specguard/internal/keytest"
	"github.com/specguard/specguard/policy"
)

var ctx = context.Background()

// stores runs a journey against an instance on the embedded defaults (the
// memory store, SQLite) and one as a fleet runs it (a throwaway Redis,
// PostgreSQL).
func stores(t *testing.T, journey func(t *testing.T, in *Instance)) {
	t.Run("memory", func(t *testing.T) { journey(t, Start(t)) })
	t.Run("redis", func(t *testing.T) { journey(t, Start(t, Shared(Redis(t), Postgres(t), keytest.File(t))...)) })
}

var userSeq atomic.Int64

// register makes a fresh account and logs it in; it returns the tokens.
func register(t *testing.T, c *Client) (email string, tok *client.TokenResponse) {
	t.Helper()
	email = fmt.Sprintf("e2e-user%d@example.com", userSeq.Add(1))
	reg, err := c.RegisterWithResponse(ctx, client.Credentials{Email: openapi_types.Email(email), Password: "correct horse battery"})
	if err != nil || reg.StatusCode() != 201 {
		t.Fatalf("register: %v %s", err, body(reg.Body))
	}
	return email, login(t, c, email, "correct horse battery")
}

func login(t *testing.T, c *Client, email, password string) *client.TokenResponse {
	t.Helper()
	r, err := c.LoginWithResponse(ctx, client.LoginRequest{Email: email, Password: password})
	if err != nil || r.JSON200 == nil {
		t.Fatalf("login %s: %v %d %s", email, err, r.StatusCode(), body(r.Body))
	}
	return r.JSON200
}

func body(b []byte) string { return string(b) }

// want fails the test unless got is the wanted status.
func want(t *testing.T, step string, got, wantStatus int, b []byte) {
	t.Helper()
	if got != wantStatus {
		t.Fatalf("%s: status %d, want %d: %s", step, got, wantStatus, b)
	}
}

func TestTokenJourney(t *testing.T) {
	stores(t, func(t *testing.T, in *Instance) {
		c := NewClient(t, in)
		email, tok := register(t, c)

		me, _ := c.GetMeWithResponse(ctx, Bearer(tok.AccessToken))
		want(t, "GET /me", me.StatusCode(), 200, me.Body)
		if me.JSON200.Email == nil || string(*me.JSON200.Email) != email || me.JSON200.Role == nil || *me.JSON200.Role != client.RoleUser {
			t.Fatalf("/me = %+v", me.JSON200)
		}
		ref, _ := c.RefreshWithResponse(ctx, client.RefreshRequest{RefreshToken: *tok.RefreshToken})
		want(t, "refresh", ref.StatusCode(), 200, ref.Body)
		next := ref.JSON200

		old, _ := c.GetMeWithResponse(ctx, Bearer(tok.AccessToken))
		want(t, "replaced access token", old.StatusCode(), 401, old.Body)
		if !strings.Contains(old.HTTPResponse.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("replaced token challenge = %q", old.HTTPResponse.Header.Get("WWW-Authenticate"))
		}
		cur, _ := c.GetMeWithResponse(ctx, Bearer(next.AccessToken))
		want(t, "new access token", cur.StatusCode(), 200, cur.Body)

		out, _ := c.LogoutWithResponse(ctx, Bearer(next.AccessToken))
		want(t, "logout", out.StatusCode(), 204, out.Body)
		after, _ := c.GetMeWithResponse(ctx, Bearer(next.AccessToken))
		want(t, "access token after logout", after.StatusCode(), 401, after.Body)
		again, _ := c.RefreshWithResponse(ctx, client.RefreshRequest{RefreshToken: *next.RefreshToken})
		want(t, "refresh token after logout", again.StatusCode(), 401, again.Body)
	})
}

func TestRefreshReuseKillsFamily(t *testing.T) {
	stores(t, func(t *testing.T, in *Instance) {
		c := NewClient(t, in)
		_, tok := register(t, c)
		ref, _ := c.RefreshWithResponse(ctx, client.RefreshRequest{RefreshToken: *tok.RefreshToken})
		want(t, "refresh", ref.StatusCode(), 200, ref.Body)
		// An attacker replays the stolen, already rotated token.
		reuse, _ := c.RefreshWithResponse(ctx, client.RefreshRequest{RefreshToken: *tok.RefreshToken})
		want(t, "reuse", reuse.StatusCode(), 401, reuse.Body)
		// The whole family is dead: the legitimate newest tokens too.
		me, _ := c.GetMeWithResponse(ctx, Bearer(ref.JSON200.AccessToken))
		want(t, "newest access token after reuse", me.StatusCode(), 401, me.Body)
		r2, _ := c.RefreshWithResponse(ctx, client.RefreshRequest{RefreshToken: *ref.JSON200.RefreshToken})
		want(t, "newest refresh token after reuse", r2.StatusCode(), 401, r2.Body)
	})
}

func TestConcurrentRefreshOneSuccessor(t *testing.T) {
	stores(t, func(t *testing.T, in *Instance) {
		c := NewClient(t, in)
		_, tok := register(t, c)
		var ok atomic.Int64
		var wg sync.WaitGroup
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := c.RefreshWithResponse(ctx, client.RefreshRequest{RefreshToken: *tok.RefreshToken})
				if err == nil && r.StatusCode() == 200 {
					ok.Add(1)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 1 {
			t.Fatalf("%d concurrent refreshes succeeded, want exactly 1", ok.Load())
		}
	})
}

// sessionCookies logs a browser in and returns its Cookie header and CSRF token.
func sessionCookies(t *testing.T, c *Client, email, password string) (cookie, csrf string) {
	t.Helper()
	r, _ := c.CreateSessionWithResponse(ctx, client.LoginRequest{Email: email, Password: password})
	want(t, "POST /auth/session", r.StatusCode(), 201, r.Body)
	var parts []string
	for _, ck := range r.HTTPResponse.Cookies() {
		if !ck.Secure || ck.Path != "/" || !strings.HasPrefix(ck.Name, "__Host-") {
			t.Errorf("cookie %s: Secure=%v Path=%q; want a __Host- cookie, Secure, Path=/", ck.Name, ck.Secure, ck.Path)
		}
		if ck.Name == "__Host-session" && (!ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode) {
			t.Errorf("session cookie: HttpOnly=%v SameSite=%v", ck.HttpOnly, ck.SameSite)
		}
		parts = append(parts, ck.Name+"="+ck.Value)
	}
	if len(parts) != 2 {
		t.Fatalf("cookies = %v, want session and CSRF", parts)
	}
	return strings.Join(parts, "; "), r.JSON201.CsrfToken
}

func TestBrowserJourney(t *testing.T) {
	stores(t, func(t *testing.T, in *Instance) {
		c := NewClient(t, in)
		email, _ := register(t, c)
		cookie, csrf := sessionCookies(t, c, email, "correct horse battery")

		me, _ := c.GetMeWithResponse(ctx, Header("Cookie", cookie))
		want(t, "GET /me by cookie", me.StatusCode(), 200, me.Body)
		if me.JSON200.Scheme != "cookieAuth" {
			t.Errorf("scheme = %q", me.JSON200.Scheme)
		}
		// A write by cookie needs the CSRF token, from this site.
		without, _ := c.LogoutWithResponse(ctx, Header("Cookie", cookie))
		want(t, "logout without the CSRF token", without.StatusCode(), 403, without.Body)
		cross, _ := c.LogoutWithResponse(ctx, Header("Cookie", cookie), Header("X-CSRF-Token", csrf), Header("Sec-Fetch-Site", "cross-site"))
		want(t, "cross-site logout", cross.StatusCode(), 403, cross.Body)

		out, _ := c.LogoutWithResponse(ctx, Header("Cookie", cookie), Header("X-CSRF-Token", csrf), Header("Origin", in.Base), Header("Sec-Fetch-Site", "same-origin"))
		want(t, "logout", out.StatusCode(), 204, out.Body)
		cleared := 0
		for _, ck := range out.HTTPResponse.Cookies() {
			if ck.MaxAge < 0 {
				cleared++
			}
		}
		if cleared != 2 {
			t.Errorf("logout cleared %d cookies, want 2", cleared)
		}
		gone, _ := c.GetMeWithResponse(ctx, Header("Cookie", cookie))
		want(t, "GET /me after logout", gone.StatusCode(), 401, gone.Body)
	})
}

// An API key holds the scopes it was made with: it reads where its scope
// suffices and is refused (403, insufficient_scope) where another is
// needed; making one needs a fresh token and scopes its maker holds; a
// revoked key is refused. The operations are found by kind in the
// document: a read and a write an API key may call, each guarded by one
// scope of the user role.
func TestAPIKeyJourney(t *testing.T) {
	read, readScope := keyScoped(t, "a safe operation an API key holding one scope of the user role may call", true)
	write, writeScope := keyScoped(t, "an unsafe operation an API key holding one scope of the user role may call", false)
	if readScope == writeScope {
		t.Fatalf("%s and %s need the same scope %s: this test needs a read and a write guarded by different scopes", describe(read), describe(write), readScope)
	}
	stores(t, func(t *testing.T, in *Instance) {
		c := NewClient(t, in)
		_, tok := register(t, c)
		made, _ := c.CreateApiKeyWithResponse(ctx, client.NewApiKey{Name: "ci", Scopes: []string{readScope}}, Bearer(tok.AccessToken))
		want(t, "create API key", made.StatusCode(), 201, made.Body)
		key := made.JSON201.Key

		if status, _, b := c.Call(t, read.Method, pathOf(read, "e2e-none"), "", Header("X-API-Key", key)); status == 401 || status == 403 {
			t.Fatalf("%s with a %s key: %d %s", describe(read), readScope, status, b)
		}
		status, h, b := c.Call(t, write.Method, pathOf(write, "e2e-none"), "{}", Header("X-API-Key", key), Header("X-E2E-Malformed", "an empty body: refused for its scope first"))
		want(t, describe(write)+" with a key holding "+readScope+" only", status, 403, b)
		if !strings.Contains(h.Get("WWW-Authenticate"), "insufficient_scope") {
			t.Errorf("challenge = %q", h.Get("WWW-Authenticate"))
		}
		// A key cannot be made with a scope its creator lacks.
		lacks := scopeOtherThan(docTable(t), "admin", docTable(t).RoleScopes("user")...)
		if lacks == "" {
			t.Fatal("this test needs a scope the admin role has and the user role lacks")
		}
		over, _ := c.CreateApiKeyWithResponse(ctx, client.NewApiKey{Name: "x", Scopes: []string{lacks}}, Bearer(tok.AccessToken))
		want(t, "key with a scope the user lacks", over.StatusCode(), 403, over.Body)
		// Creating a key needs a fresh token: a refreshed one is refused.
		ref, _ := c.RefreshWithResponse(ctx, client.RefreshRequest{RefreshToken: *tok.RefreshToken})
		stale, _ := c.CreateApiKeyWithResponse(ctx, client.NewApiKey{Name: "y", Scopes: []string{readScope}}, Bearer(ref.JSON200.AccessToken))
		want(t, "create key with a refreshed token", stale.StatusCode(), 401, stale.Body)

		del, _ := c.DeleteApiKeyWithResponse(ctx, made.JSON201.Id, Bearer(ref.JSON200.AccessToken))
		want(t, "revoke key", del.StatusCode(), 204, del.Body)
		status, _, b = c.Call(t, read.Method, pathOf(read, "e2e-none"), "", Header("X-API-Key", key))
		want(t, describe(read)+" with a revoked key", status, 401, b)
	})
}

// An operation that admits anonymous callers ({} among its alternatives)
// still refuses a bad credential: never downgraded to anonymous.
func TestOptionalAuthRefusesBadCredentials(t *testing.T) {
	op := appOp(t, "a safe operation that admits anonymous callers and accepts tokens", func(op *policy.Operation) bool {
		_, bearer := scopesOf(op, policy.SchemeOAuth2)
		return op.Security.Anonymous && bearer && isSafe(op.Method)
	})
	stores(t, func(t *testing.T, in *Instance) {
		c := NewClient(t, in)
		_, tok := register(t, c)
		path := pathOf(op, "e2e-none")
		if status, _, b := c.Call(t, op.Method, path, ""); status == 401 || status == 403 {
			t.Fatalf("%s anonymously: %d %s", describe(op), status, b)
		}
		status, h, b := c.Call(t, op.Method, path, "", Bearer(tok.AccessToken+"x"))
		want(t, describe(op)+" with an invalid token", status, 401, b)
		if !strings.Contains(h.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("challenge = %q", h.Get("WWW-Authenticate"))
		}
	})
}

func TestDisableUser(t *testing.T) {
	stores(t, func(t *testing.T, in *Instance) {
		c := NewClient(t, in)
		email, tok := register(t, c)
		cookie, _ := sessionCookies(t, c, email, "correct horse battery")
		key, _ := c.CreateApiKeyWithResponse(ctx, client.NewApiKey{Name: "k", Scopes: docTable(t).RoleScopes("user")[:1]}, Bearer(tok.AccessToken))
		want(t, "create key", key.StatusCode(), 201, key.Body)
		me, _ := c.GetMeWithResponse(ctx, Bearer(tok.AccessToken))

		admin := login(t, NewClient(t, in), "admin@example.com", "admin-password")
		// A user cannot disable anyone.
		self, _ := c.DisableUserWithResponse(ctx, me.JSON200.Id, Bearer(tok.AccessToken))
		want(t, "user disables", self.StatusCode(), 403, self.Body)
		dis, _ := c.DisableUserWithResponse(ctx, me.JSON200.Id, Bearer(admin.AccessToken))
		want(t, "admin disables", dis.StatusCode(), 204, dis.Body)

		r1, _ := c.GetMeWithResponse(ctx, Bearer(tok.AccessToken))
		want(t, "token after disable", r1.StatusCode(), 401, r1.Body)
		r2, _ := c.GetMeWithResponse(ctx, Header("Cookie", cookie))
		want(t, "session after disable", r2.StatusCode(), 401, r2.Body)
		r3, _ := c.GetMeWithResponse(ctx, Header("X-API-Key", key.JSON201.Key))
		want(t, "API key after disable", r3.StatusCode(), 401, r3.Body)
		r4, _ := c.RefreshWithResponse(ctx, client.RefreshRequest{RefreshToken: *tok.RefreshToken})
		want(t, "refresh after disable", r4.StatusCode(), 401, r4.Body)
		r5, _ := c.LoginWithResponse(ctx, client.LoginRequest{Email: email, Password: "correct horse battery"})
		want(t, "login after disable", r5.StatusCode(), 401, r5.Body)
	})
}

func TestOAuth2TokenEndpoint(t *testing.T) {
	stores(t, func(t *testing.T, in *Instance) {
		c := NewClient(t, in)
		u, p := "user@example.com", "user-password"
		ok, _ := c.OauthTokenWithFormdataBodyWithResponse(ctx, client.TokenRequest{GrantType: client.Password, Username: &u, Password: &p})
		want(t, "password grant", ok.StatusCode(), 200, ok.Body)
		if ok.JSON200.TokenType != client.Bearer || ok.JSON200.ExpiresIn != 900 {
			t.Errorf("token response = %+v", ok.JSON200)
		}
		// A token narrowed to one scope of the role lacks the one making an
		// API key needs.
		needs, _ := scopesOf(credentialOp(t, "create-api-key"), policy.SchemeOAuth2)
		var scope string
		for _, s := range docTable(t).RoleScopes("user") {
			if !slices.Contains(needs, s) {
				scope = s
			}
		}
		narrow, _ := c.OauthTokenWithFormdataBodyWithResponse(ctx, client.TokenRequest{GrantType: client.Password, Username: &u, Password: &p, Scope: &scope})
		want(t, "narrowed scope", narrow.StatusCode(), 200, narrow.Body)
		w, _ := c.CreateApiKeyWithResponse(ctx, client.NewApiKey{Name: "n", Scopes: []string{scope}}, Bearer(narrow.JSON200.AccessToken))
		want(t, "make an API key with a token narrowed to "+scope, w.StatusCode(), 403, w.Body)

		rt := *ok.JSON200.RefreshToken
		ref, _ := c.OauthTokenWithFormdataBodyWithResponse(ctx, client.TokenRequest{GrantType: client.RefreshToken, RefreshToken: &rt})
		want(t, "refresh_token grant", ref.StatusCode(), 200, ref.Body)
		bad := "wrong"
		no, _ := c.OauthTokenWithFormdataBodyWithResponse(ctx, client.TokenRequest{GrantType: client.Password, Username: &u, Password: &bad})
		want(t, "wrong password", no.StatusCode(), 400, no.Body)
		if no.JSON400 == nil || no.JSON400.Error != client.InvalidGrant {
			t.Errorf("error = %s", no.Body)
		}
	})
}
