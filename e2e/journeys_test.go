package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	openapi_types "github.com/oapi-codegen/runtime/types"

	"github.com/specguard/specguard/e2e/client"
	"github.com/specguard/specguard/internal/keytest"
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
	email = fmt.Sprintf("user%d@example.com", userSeq.Add(1))
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
		post, _ := c.CreatePostWithResponse(ctx, client.NewPost{Title: "first", Body: "hello"}, Bearer(tok.AccessToken))
		want(t, "create post", post.StatusCode(), 201, post.Body)

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
		withToken, _ := c.CreatePostWithResponse(ctx, client.NewPost{Title: "t", Body: "b"},
			Header("Cookie", cookie), Header("X-CSRF-Token", csrf), Header("Origin", in.Base), Header("Sec-Fetch-Site", "same-origin"))
		want(t, "create post with CSRF token", withToken.StatusCode(), 201, withToken.Body)
		without, _ := c.CreatePostWithResponse(ctx, client.NewPost{Title: "t", Body: "b"}, Header("Cookie", cookie))
		want(t, "create post without CSRF token", without.StatusCode(), 403, without.Body)
		cross, _ := c.CreatePostWithResponse(ctx, client.NewPost{Title: "t", Body: "b"},
			Header("Cookie", cookie), Header("X-CSRF-Token", csrf), Header("Sec-Fetch-Site", "cross-site"))
		want(t, "cross-site create post", cross.StatusCode(), 403, cross.Body)

		out, _ := c.LogoutWithResponse(ctx, Header("Cookie", cookie), Header("X-CSRF-Token", csrf))
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

func TestAPIKeyJourney(t *testing.T) {
	stores(t, func(t *testing.T, in *Instance) {
		c := NewClient(t, in)
		_, tok := register(t, c)
		made, _ := c.CreateApiKeyWithResponse(ctx, client.NewApiKey{Name: "ci", Scopes: []string{"posts:read"}}, Bearer(tok.AccessToken))
		want(t, "create API key", made.StatusCode(), 201, made.Body)
		key := made.JSON201.Key

		list, _ := c.ListPostsWithResponse(ctx, nil, Header("X-API-Key", key))
		want(t, "list posts with the key", list.StatusCode(), 200, list.Body)
		write, _ := c.CreatePostWithResponse(ctx, client.NewPost{Title: "t", Body: "b"}, Header("X-API-Key", key))
		want(t, "write with a read-only key", write.StatusCode(), 403, write.Body)
		if !strings.Contains(write.HTTPResponse.Header.Get("WWW-Authenticate"), "insufficient_scope") {
			t.Errorf("challenge = %q", write.HTTPResponse.Header.Get("WWW-Authenticate"))
		}
		// A key cannot be made with a scope its creator lacks.
		over, _ := c.CreateApiKeyWithResponse(ctx, client.NewApiKey{Name: "x", Scopes: []string{"users:admin"}}, Bearer(tok.AccessToken))
		want(t, "key with a scope the user lacks", over.StatusCode(), 403, over.Body)
		// Creating a key needs a fresh token: a refreshed one is refused.
		ref, _ := c.RefreshWithResponse(ctx, client.RefreshRequest{RefreshToken: *tok.RefreshToken})
		stale, _ := c.CreateApiKeyWithResponse(ctx, client.NewApiKey{Name: "y", Scopes: []string{"posts:read"}}, Bearer(ref.JSON200.AccessToken))
		want(t, "create key with a refreshed token", stale.StatusCode(), 401, stale.Body)

		del, _ := c.DeleteApiKeyWithResponse(ctx, made.JSON201.Id, Bearer(ref.JSON200.AccessToken))
		want(t, "revoke key", del.StatusCode(), 204, del.Body)
		after, _ := c.ListPostsWithResponse(ctx, nil, Header("X-API-Key", key))
		want(t, "list posts with a revoked key", after.StatusCode(), 401, after.Body)
	})
}

func TestOptionalAuth(t *testing.T) {
	stores(t, func(t *testing.T, in *Instance) {
		c := NewClient(t, in)
		_, tok := register(t, c)
		draft := client.Draft
		d, _ := c.CreatePostWithResponse(ctx, client.NewPost{Title: "draft", Body: "b", Status: &draft}, Bearer(tok.AccessToken))
		want(t, "create draft", d.StatusCode(), 201, d.Body)
		p, _ := c.CreatePostWithResponse(ctx, client.NewPost{Title: "public", Body: "b"}, Bearer(tok.AccessToken))
		want(t, "create post", p.StatusCode(), 201, p.Body)

		anon, _ := c.ListPostsWithResponse(ctx, nil)
		want(t, "anonymous list", anon.StatusCode(), 200, anon.Body)
		for _, post := range *anon.JSON200 {
			if post.Status == client.Draft {
				t.Fatalf("anonymous caller sees draft %s", post.Id)
			}
		}
		hidden, _ := c.GetPostWithResponse(ctx, d.JSON201.Id)
		want(t, "anonymous GET of a draft", hidden.StatusCode(), 404, hidden.Body)

		mine, _ := c.ListPostsWithResponse(ctx, nil, Bearer(tok.AccessToken))
		found := false
		for _, post := range *mine.JSON200 {
			found = found || post.Id == d.JSON201.Id
		}
		if !found {
			t.Fatal("the author does not see their draft")
		}
		bad, _ := c.ListPostsWithResponse(ctx, nil, Bearer(tok.AccessToken+"x"))
		want(t, "optional auth with an invalid token", bad.StatusCode(), 401, bad.Body)
	})
}

func TestOwnership(t *testing.T) {
	stores(t, func(t *testing.T, in *Instance) {
		c := NewClient(t, in)
		_, alice := register(t, c)
		_, bob := register(t, c)
		p, _ := c.CreatePostWithResponse(ctx, client.NewPost{Title: "alice's", Body: "b"}, Bearer(alice.AccessToken))
		want(t, "alice posts", p.StatusCode(), 201, p.Body)
		id := p.JSON201.Id
		title := "bob was here"

		edit, _ := c.UpdatePostWithResponse(ctx, id, client.PostPatch{Title: &title}, Bearer(bob.AccessToken))
		want(t, "bob edits alice's post", edit.StatusCode(), 403, edit.Body)
		del, _ := c.DeletePostWithResponse(ctx, id, Bearer(bob.AccessToken))
		want(t, "bob deletes alice's post", del.StatusCode(), 403, del.Body)

		admin := login(t, NewClient(t, in), "admin@example.com", "admin-password")
		title = "edited by an admin"
		aedit, _ := c.UpdatePostWithResponse(ctx, id, client.PostPatch{Title: &title}, Bearer(admin.AccessToken))
		want(t, "admin edits", aedit.StatusCode(), 200, aedit.Body)

		mod := login(t, NewClient(t, in), "moderator@example.com", "moderator-password")
		medit, _ := c.UpdatePostWithResponse(ctx, id, client.PostPatch{Title: &title}, Bearer(mod.AccessToken))
		want(t, "moderator edits", medit.StatusCode(), 403, medit.Body)
		mdel, _ := c.DeletePostWithResponse(ctx, id, Bearer(mod.AccessToken))
		want(t, "moderator deletes", mdel.StatusCode(), 204, mdel.Body)
	})
}

func TestDisableUser(t *testing.T) {
	stores(t, func(t *testing.T, in *Instance) {
		c := NewClient(t, in)
		email, tok := register(t, c)
		cookie, _ := sessionCookies(t, c, email, "correct horse battery")
		key, _ := c.CreateApiKeyWithResponse(ctx, client.NewApiKey{Name: "k", Scopes: []string{"posts:read"}}, Bearer(tok.AccessToken))
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
		scope := "posts:read"
		narrow, _ := c.OauthTokenWithFormdataBodyWithResponse(ctx, client.TokenRequest{GrantType: client.Password, Username: &u, Password: &p, Scope: &scope})
		want(t, "narrowed scope", narrow.StatusCode(), 200, narrow.Body)
		w, _ := c.CreatePostWithResponse(ctx, client.NewPost{Title: "t", Body: "b"}, Bearer(narrow.JSON200.AccessToken))
		want(t, "write with a read-only token", w.StatusCode(), 403, w.Body)

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
