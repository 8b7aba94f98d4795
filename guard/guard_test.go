package guard_test

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/internal/guardtest"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/tokens"
)

func TestGuardBearerPresentation(t *testing.T) {
	e := guardtest.NewEnv(t)
	reader := e.Login(t, "alice", "reader")
	long := strings.Repeat("a", security.MaxTokenBytes+1)
	cases := []guardtest.Case{
		{Name: "valid token", Path: "/read", Mods: []guardtest.Mod{guardtest.Bearer(reader.Access)}, Want: guardtest.OK200, Saw: guardtest.OKAs("read", "alice", "oauth2")},
		{Name: "scheme in lower case", Path: "/read", Mods: []guardtest.Mod{guardtest.Header("Authorization", "bearer "+reader.Access)}, Want: guardtest.OK200, Saw: guardtest.OKAs("read", "alice", "oauth2")},
		{Name: "scheme in upper case", Path: "/read", Mods: []guardtest.Mod{guardtest.Header("Authorization", "BEARER "+reader.Access)}, Want: guardtest.OK200, Saw: guardtest.OKAs("read", "alice", "oauth2")},
		{Name: "two Authorization headers", Path: "/read", Mods: []guardtest.Mod{guardtest.Bearer(reader.Access), guardtest.Bearer(reader.Access)}, Want: guardtest.BadRequest},
		{Name: "token in the query string", Path: "/read?access_token=" + reader.Access, Want: guardtest.BadRequest},
		{Name: "token in the query string and the header", Path: "/read?access_token=" + reader.Access, Mods: []guardtest.Mod{guardtest.Bearer(reader.Access)}, Want: guardtest.BadRequest},
		{Name: "token in the query string, key percent-encoded", Path: "/read?access%5Ftoken=" + reader.Access, Want: guardtest.BadRequest},
		{Name: "token in the query string of an optional operation", Path: "/optional?access_token=" + reader.Access, Want: guardtest.BadRequest},
		{Name: "Bearer with no token", Path: "/read", Mods: []guardtest.Mod{guardtest.Header("Authorization", "Bearer")}, Want: guardtest.BadRequest},
		{Name: "Bearer with only a space", Path: "/read", Mods: []guardtest.Mod{guardtest.Header("Authorization", "Bearer ")}, Want: guardtest.BadRequest},
		{Name: "token with characters outside b64token", Path: "/read", Mods: []guardtest.Mod{guardtest.Header("Authorization", "Bearer abc$def")}, Want: guardtest.BadRequest},
		{Name: "Basic credentials on a bearer-only operation", Path: "/things", Mods: []guardtest.Mod{guardtest.Header("Authorization", "Basic YWxpY2U6cGFzc3dvcmQ=")}, Want: guardtest.Unauth},
		{Name: "no credentials", Path: "/things", Want: guardtest.Unauth},
		{Name: "no credentials on an oauth2 operation", Path: "/read", Want: guardtest.Unauth},
		{Name: "garbage token", Path: "/read", Mods: []guardtest.Mod{guardtest.Bearer("not-a-jwt")}, Want: guardtest.InvalidToken},
		{Name: "oversized token", Path: "/read", Mods: []guardtest.Mod{guardtest.Bearer(long)}, Want: guardtest.InvalidToken},
		{Name: "oversized Authorization header", Path: "/read", Mods: []guardtest.Mod{guardtest.Bearer(strings.Repeat(reader.Access, 20))}, Want: guardtest.InvalidToken},
		{Name: "refresh token presented as access token", Path: "/read", Mods: []guardtest.Mod{guardtest.Bearer(reader.Refresh)}, Want: guardtest.InvalidToken},
		{Name: "insufficient scope", Method: http.MethodPost, Path: "/write", Body: `{"title":"x"}`, Mods: []guardtest.Mod{guardtest.Bearer(reader.Access)},
			Want: guardtest.Want{Status: http.StatusForbidden, Problem: "insufficient-scope", AuthErr: "insufficient_scope", Scope: "a:write"}},
		{Name: "public operation ignores a bad token", Path: "/public", Mods: []guardtest.Mod{guardtest.Bearer("not-a-jwt")}, Want: guardtest.OK200, Saw: guardtest.Anonymous("public")},
		{Name: "public operation ignores two Authorization headers", Path: "/public", Mods: []guardtest.Mod{guardtest.Bearer("x"), guardtest.Bearer("y")}, Want: guardtest.OK200, Saw: guardtest.Anonymous("public")},
	}
	guardtest.RunCases(t, e, cases)
}

func TestGuardOptional(t *testing.T) {
	e := guardtest.NewEnv(t)
	reader := e.Login(t, "alice", "reader")
	nobody := e.Login(t, "nemo", "nobody")
	cases := []guardtest.Case{
		{Name: "no credentials is anonymous", Path: "/optional", Want: guardtest.OK200, Saw: guardtest.Anonymous("optional")},
		{Name: "another scheme counts as none", Path: "/optional", Mods: []guardtest.Mod{guardtest.Header("Authorization", "Basic YWxpY2U6cGFzc3dvcmQ=")}, Want: guardtest.OK200, Saw: guardtest.Anonymous("optional")},
		{Name: "valid token", Path: "/optional", Mods: []guardtest.Mod{guardtest.Bearer(reader.Access)}, Want: guardtest.OK200, Saw: guardtest.OKAs("optional", "alice", "oauth2")},
		{Name: "invalid token is never anonymous", Path: "/optional", Mods: []guardtest.Mod{guardtest.Bearer("not-a-jwt")}, Want: guardtest.InvalidToken},
		{Name: "tampered token is never anonymous", Path: "/optional", Mods: []guardtest.Mod{guardtest.Bearer(guardtest.Tamper(t, reader.Access))}, Want: guardtest.InvalidToken},
		{Name: "refresh token is never anonymous", Path: "/optional", Mods: []guardtest.Mod{guardtest.Bearer(reader.Refresh)}, Want: guardtest.InvalidToken},
		{Name: "malformed presentation is never anonymous", Path: "/optional", Mods: []guardtest.Mod{guardtest.Bearer("a"), guardtest.Bearer("b")}, Want: guardtest.BadRequest},
		{Name: "a token after a tab is never anonymous", Path: "/optional", Mods: []guardtest.Mod{guardtest.Header("Authorization", "Bearer\tforged.forged.forged")}, Want: guardtest.BadRequest},
		{Name: "valid token without the scope", Path: "/optional", Mods: []guardtest.Mod{guardtest.Bearer(nobody.Access)},
			Want: guardtest.Want{Status: http.StatusForbidden, Problem: "insufficient-scope", AuthErr: "insufficient_scope", Scope: "a:read"}},
	}
	guardtest.RunCases(t, e, cases)

	t.Run("revoked token is never anonymous", func(t *testing.T) {
		p := e.Login(t, "carol", "reader")
		if err := e.Store.RevokeFamily(context.Background(), "carol", p.AccessClaims.Family); err != nil {
			t.Fatal(err)
		}
		guardtest.InvalidToken.Check(t, e.Do(t, http.MethodGet, "/optional", "", guardtest.Bearer(p.Access)))
	})
}

func TestGuardAlternatives(t *testing.T) {
	e := guardtest.NewEnv(t)
	reader := e.Login(t, "alice", "reader")
	writer := e.Login(t, "alice2", "writer")
	aliceKey, _ := e.APIKey(t, "alice")
	aliceWriteKey, _ := e.APIKey(t, "alice", "a:write")
	aliceSession := e.Session(t, "alice", "reader")
	bobSession := e.Session(t, "bob", "reader")
	cases := []guardtest.Case{
		{Name: "OR: first alternative", Path: "/either", Mods: []guardtest.Mod{guardtest.Bearer(reader.Access)}, Want: guardtest.OK200, Saw: guardtest.OKAs("either", "alice", "bearerAuth")},
		{Name: "OR: second alternative", Path: "/either", Mods: []guardtest.Mod{guardtest.APIKeyHeader(aliceKey)}, Want: guardtest.OK200, Saw: guardtest.OKAs("either", "alice", "apiKeyAuth")},
		{Name: "OR: neither", Path: "/either", Want: guardtest.Unauth},
		{Name: "OR: invalid first credential is not skipped", Path: "/either", Mods: []guardtest.Mod{guardtest.Bearer("not-a-jwt"), guardtest.APIKeyHeader(aliceKey)}, Want: guardtest.InvalidToken},
		{Name: "OR: invalid second credential", Path: "/either", Mods: []guardtest.Mod{guardtest.APIKeyHeader("sg_nope")}, Want: guardtest.InvalidToken},
		{Name: "OR: first lacks scope, second satisfies", Path: "/write-or-key", Mods: []guardtest.Mod{guardtest.Bearer(reader.Access), guardtest.APIKeyHeader(aliceWriteKey)}, Want: guardtest.OK200, Saw: guardtest.OKAs("writeOrKey", "alice", "apiKeyAuth")},
		{Name: "OR: first satisfies with scope", Path: "/write-or-key", Mods: []guardtest.Mod{guardtest.Bearer(writer.Access)}, Want: guardtest.OK200, Saw: guardtest.OKAs("writeOrKey", "alice2", "oauth2")},
		{Name: "OR: every alternative lacks scope", Path: "/write-or-key", Mods: []guardtest.Mod{guardtest.Bearer(reader.Access), guardtest.APIKeyHeader(aliceKey)},
			Want: guardtest.Want{Status: http.StatusForbidden, Problem: "insufficient-scope", AuthErr: "insufficient_scope", Scope: "a:write"}},
		{Name: "AND: both credentials", Path: "/both", Mods: []guardtest.Mod{guardtest.APIKeyHeader(aliceKey), guardtest.SessionCookies(aliceSession)}, Want: guardtest.OK200, Saw: guardtest.OKAs("both", "alice", "apiKeyAuth+cookieAuth")},
		{Name: "AND: key alone", Path: "/both", Mods: []guardtest.Mod{guardtest.APIKeyHeader(aliceKey)}, Want: guardtest.Unauth},
		{Name: "AND: session alone", Path: "/both", Mods: []guardtest.Mod{guardtest.SessionCookies(aliceSession)}, Want: guardtest.Unauth},
		{Name: "AND: credentials of different users", Path: "/both", Mods: []guardtest.Mod{guardtest.APIKeyHeader(aliceKey), guardtest.SessionCookies(bobSession)}, Want: guardtest.InvalidToken},
		{Name: "AND: invalid session with valid key", Path: "/both", Mods: []guardtest.Mod{guardtest.APIKeyHeader(aliceKey), guardtest.Cookie(guardtest.SessionCookie, "alice.nope.nope")}, Want: guardtest.InvalidToken},
		// Nothing admits it: a forged credential after a missing one is
		// refused as such, not answered as if nothing had been sent.
		{Name: "AND: invalid session, no key", Path: "/both", Mods: []guardtest.Mod{guardtest.Cookie(guardtest.SessionCookie, "alice.nope.nope")}, Want: guardtest.InvalidToken},
		{Name: "AND: invalid key, no session", Path: "/both", Mods: []guardtest.Mod{guardtest.APIKeyHeader("sg_nope")}, Want: guardtest.InvalidToken},
		// A cookie failing its CSRF check leaves its alternative unmet,
		// whatever the order: a bearer token admits the request.
		{Name: "OR: a cookie without its CSRF token, then a token", Method: http.MethodPost, Path: "/account", Mods: []guardtest.Mod{guardtest.SessionCookies(bobSession), guardtest.Bearer(reader.Access)},
			Want: guardtest.OK200, Saw: guardtest.OKAs("postAccount", "alice", "bearerAuth")},
		{Name: "OR: a cookie without its CSRF token alone", Method: http.MethodPost, Path: "/account", Mods: []guardtest.Mod{guardtest.SessionCookies(bobSession)},
			Want: guardtest.Want{Status: http.StatusForbidden, Problem: "csrf"}},
		// An AND alternative whose first credential is missing still looks at
		// the others: a bad one is refused, never let in as anonymous.
		{Name: "AND or anonymous: invalid session, no key", Path: "/both-or-anonymous", Mods: []guardtest.Mod{guardtest.Cookie(guardtest.SessionCookie, "alice.nope.nope")}, Want: guardtest.InvalidToken},
		{Name: "AND or anonymous: invalid key, no session", Path: "/both-or-anonymous", Mods: []guardtest.Mod{guardtest.APIKeyHeader("sg_nope")}, Want: guardtest.InvalidToken},
		{Name: "AND or anonymous: valid key, invalid session", Path: "/both-or-anonymous", Mods: []guardtest.Mod{guardtest.APIKeyHeader(aliceKey), guardtest.Cookie(guardtest.SessionCookie, "alice.nope.nope")}, Want: guardtest.InvalidToken},
		{Name: "AND or anonymous: valid session alone", Path: "/both-or-anonymous", Mods: []guardtest.Mod{guardtest.SessionCookies(aliceSession)}, Want: guardtest.OK200, Saw: guardtest.Anonymous("bothOrAnonymous")},
		{Name: "AND or anonymous: both", Path: "/both-or-anonymous", Mods: []guardtest.Mod{guardtest.APIKeyHeader(aliceKey), guardtest.SessionCookies(aliceSession)}, Want: guardtest.OK200, Saw: guardtest.OKAs("bothOrAnonymous", "alice", "apiKeyAuth+cookieAuth")},
		{Name: "AND or anonymous: nothing", Path: "/both-or-anonymous", Want: guardtest.OK200, Saw: guardtest.Anonymous("bothOrAnonymous")},
	}
	guardtest.RunCases(t, e, cases)
}

func TestGuardFresh(t *testing.T) {
	e := guardtest.NewEnv(t)
	first := e.Login(t, "alice", "reader")
	if !first.AccessClaims.Fresh {
		t.Fatal("a password login did not mint a fresh token")
	}
	refreshed := e.Refresh(t, first.Refresh)
	if refreshed.AccessClaims.Fresh {
		t.Fatal("a refresh minted a fresh token")
	}
	second := e.Login(t, "bob", "reader")
	cases := []guardtest.Case{
		{Name: "refreshed token", Method: http.MethodPost, Path: "/fresh", Mods: []guardtest.Mod{guardtest.Bearer(refreshed.Access)},
			Want: guardtest.Want{Status: http.StatusUnauthorized, Problem: "fresh-login-required", AuthErr: "insufficient_user_authentication"}},
		{Name: "fresh token", Method: http.MethodPost, Path: "/fresh", Mods: []guardtest.Mod{guardtest.Bearer(second.Access)}, Want: guardtest.OK200, Saw: guardtest.OKAs("fresh", "bob", "bearerAuth")},
		{Name: "refreshed token elsewhere", Path: "/things", Mods: []guardtest.Mod{guardtest.Bearer(refreshed.Access)}, Want: guardtest.OK200, Saw: guardtest.OKAs("bearerOnly", "alice", "bearerAuth")},
		{Name: "no token", Method: http.MethodPost, Path: "/fresh", Want: guardtest.Unauth},
	}
	guardtest.RunCases(t, e, cases)
}

func TestGuardContext(t *testing.T) {
	e := guardtest.NewEnv(t)
	writer := e.Login(t, "alice", "writer")
	key, _ := e.APIKey(t, "bob", "a:read")
	sess := e.Session(t, "carol", "writer")
	cases := []struct {
		name string
		path string
		mods []guardtest.Mod
		want guardtest.Seen
	}{
		{name: "oauth2", path: "/read", mods: []guardtest.Mod{guardtest.Bearer(writer.Access)},
			want: guardtest.Seen{Op: "read", Subject: "alice", Scheme: "oauth2", Scopes: []string{"a:read", "a:write"}, Fresh: true}},
		{name: "bearer", path: "/things", mods: []guardtest.Mod{guardtest.Bearer(writer.Access)},
			want: guardtest.Seen{Op: "bearerOnly", Subject: "alice", Scheme: "bearerAuth", Scopes: []string{"a:read", "a:write"}, Fresh: true}},
		{name: "api key", path: "/key-read", mods: []guardtest.Mod{guardtest.APIKeyHeader(key)},
			want: guardtest.Seen{Op: "keyRead", Subject: "bob", Scheme: "apiKeyAuth", Scopes: []string{"a:read"}}},
		{name: "session", path: "/account", mods: []guardtest.Mod{guardtest.SessionCookies(sess)},
			want: guardtest.Seen{Op: "getAccount", Subject: "carol", Scheme: "cookieAuth", Scopes: []string{"a:read", "a:write"}}},
		{name: "public", path: "/public", want: guardtest.Seen{Op: "public", Anonymous: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := e.Do(t, http.MethodGet, tc.path, "", tc.mods...)
			guardtest.OK200.Check(t, got)
			if g, w := got.Seen, tc.want; g.Op != w.Op || g.Subject != w.Subject || g.Scheme != w.Scheme ||
				g.Anonymous != w.Anonymous || g.Fresh != w.Fresh || !slices.Equal(g.Scopes, w.Scopes) {
				t.Errorf("handler saw %+v, want %+v", g, w)
			}
		})
	}

	t.Run("operation is the compiled one", func(t *testing.T) {
		var got *policy.Operation
		r := chi.NewRouter()
		for _, op := range e.Table.Operations() {
			r.Method(op.Method, op.Pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = policy.FromContext(r.Context()) }))
		}
		g, err := guard.New(e.Table, r, guard.WithAuthenticator(policy.SchemeBearer, tokens.Bearer{Tokens: e.Tokens}),
			guard.WithAuthenticator(policy.SchemeOAuth2, tokens.Bearer{Tokens: e.Tokens}),
			guard.WithAuthenticator(policy.SchemeAPIKeyCookie, e.Sessions), guard.WithAuthenticator(policy.SchemeAPIKeyHeader, e.Keys))
		if err != nil {
			t.Fatal(err)
		}
		g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/public", nil))
		if want := e.Table.Operation("public"); got != want {
			t.Errorf("policy.FromContext = %p, want the table's operation %p", got, want)
		}
	})
}

// spyBody records whether anything read it.
type spyBody struct {
	read atomic.Bool
	r    io.Reader
}

func (s *spyBody) Read(p []byte) (int, error) {
	s.read.Store(true)
	return s.r.Read(p)
}

func TestGuardRejectsBeforeReadingBodyOrBindingParameters(t *testing.T) {
	e := guardtest.NewEnv(t)
	reader := e.Login(t, "alice", "reader")
	writer := e.Login(t, "bob", "writer")
	cases := []struct {
		name   string
		method string
		path   string
		auth   string
		want   int
		read   bool
	}{
		{name: "no credentials", method: http.MethodPost, path: "/write", want: http.StatusUnauthorized},
		{name: "invalid token", method: http.MethodPost, path: "/write", auth: "Bearer not-a-jwt", want: http.StatusUnauthorized},
		{name: "insufficient scope", method: http.MethodPost, path: "/write", auth: "Bearer " + reader.Access, want: http.StatusForbidden},
		{name: "valid token reaches validation", method: http.MethodPost, path: "/write", auth: "Bearer " + writer.Access, want: http.StatusOK, read: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := &spyBody{r: strings.NewReader(`{"title":"hello"}`)}
			r, err := http.NewRequest(tc.method, "http://example.test"+tc.path, body)
			if err != nil {
				t.Fatal(err)
			}
			r.Header.Set("Content-Type", "application/json")
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			w := httptest.NewRecorder()
			e.Guard.ServeHTTP(w, r)
			if got := w.Code; got != tc.want {
				t.Fatalf("status = %d, want %d; body %s", got, tc.want, w.Body)
			}
			if got := body.read.Load(); got != tc.read {
				t.Errorf("body read = %v, want %v", got, tc.read)
			}
		})
	}

	params := []guardtest.Case{
		{Name: "bad path parameter without credentials", Path: "/items/not-a-number", Want: guardtest.Unauth},
		{Name: "bad path parameter with a bad token", Path: "/items/not-a-number", Mods: []guardtest.Mod{guardtest.Bearer("not-a-jwt")}, Want: guardtest.InvalidToken},
		{Name: "bad path parameter with a valid token", Path: "/items/not-a-number", Mods: []guardtest.Mod{guardtest.Bearer(reader.Access)},
			Want: guardtest.Want{Status: http.StatusBadRequest, Problem: "invalid-request", AuthErr: guardtest.NoChallenge}},
		{Name: "good path parameter", Path: "/items/42", Mods: []guardtest.Mod{guardtest.Bearer(reader.Access)}, Want: guardtest.OK200, Saw: guardtest.OKAs("item", "alice", "bearerAuth")},
	}
	guardtest.RunCases(t, e, params)
}

func TestGuardRequestValidation(t *testing.T) {
	e := guardtest.NewEnv(t)
	writer := e.Login(t, "bob", "writer")
	cases := []struct {
		name      string
		body      string
		want      int
		problem   string
		wantField string // a field errors[] must name
	}{
		{name: "valid", body: `{"title":"hello"}`, want: http.StatusOK},
		{name: "wrong type", body: `{"title":5}`, want: http.StatusBadRequest, problem: "invalid-request", wantField: "body.title"},
		{name: "too short", body: `{"title":""}`, want: http.StatusBadRequest, problem: "invalid-request", wantField: "body.title"},
		{name: "missing required field", body: `{}`, want: http.StatusBadRequest, problem: "invalid-request", wantField: "body.title"},
		{name: "unknown field", body: `{"title":"x","admin":true}`, want: http.StatusBadRequest, problem: "invalid-request", wantField: "body"},
		{name: "not JSON", body: `{"title":`, want: http.StatusBadRequest, problem: "invalid-request", wantField: "body"},
		{name: "body over the maximum", body: `{"title":"` + strings.Repeat("x", guardtest.MaxBody) + `"}`, want: http.StatusRequestEntityTooLarge, problem: "body-too-large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := e.Do(t, http.MethodPost, "/write", tc.body, guardtest.Bearer(writer.Access))
			w := guardtest.Want{Status: tc.want, Problem: tc.problem, AuthErr: guardtest.NoChallenge}
			w.Check(t, got)
			if tc.wantField == "" {
				return
			}
			var fields []string
			for _, fe := range got.Problem.Errors {
				fields = append(fields, fe.Field)
				if fe.Message == "" {
					t.Errorf("errors[] entry %q has no message", fe.Field)
				}
			}
			if !slices.Contains(fields, tc.wantField) {
				t.Errorf("errors[] fields = %q, want one named %q", fields, tc.wantField)
			}
		})
	}

	// One entry, however many fields are wrong: every one at once made a
	// body of a MiB of unknown properties cost a hundred MiB to answer.
	t.Run("many wrong fields, one error", func(t *testing.T) {
		var b strings.Builder
		b.WriteString(`{"title":"x"`)
		for i := range 100 { // within the environment's body limit
			fmt.Fprintf(&b, `,"f%d":0`, i)
		}
		b.WriteString("}")
		got := e.Do(t, http.MethodPost, "/write", b.String(), guardtest.Bearer(writer.Access))
		if got.Status != http.StatusBadRequest || len(got.Problem.Errors) != 1 || len(got.Body) > 1000 {
			t.Errorf("100 unknown fields: %d, %d errors, a %d-byte answer; want 400 with one error", got.Status, len(got.Problem.Errors), len(got.Body))
		}
	})

	t.Run("missing field is named in the message", func(t *testing.T) {
		got := e.Do(t, http.MethodPost, "/write", `{}`, guardtest.Bearer(writer.Access))
		if !strings.Contains(string(got.Body), "title") {
			t.Errorf("problem %s does not name the missing field title", got.Body)
		}
	})
}

// TestGuardResolvesLikeChi checks that the guard resolves the operation from
// the path chi routes on, so no request reaches a handler unguarded.
func TestGuardResolvesLikeChi(t *testing.T) {
	e := guardtest.NewEnv(t)
	reader := e.Login(t, "alice", "reader")

	t.Run("absolute-form request target with an empty path", func(t *testing.T) {
		// RFC 9112 3.2.2: a server must accept the absolute form. Its URL has
		// an empty path, which chi routes as "/".
		host := e.Srv.Listener.Addr().String()
		for _, tc := range []struct {
			name string
			auth string
			want int
		}{
			{name: "no credentials", want: http.StatusUnauthorized},
			{name: "valid token", auth: "Authorization: Bearer " + reader.Access + "\r\n", want: http.StatusOK},
		} {
			t.Run(tc.name, func(t *testing.T) {
				res := rawRequest(t, host, "GET http://"+host+" HTTP/1.1\r\nHost: "+host+"\r\n"+tc.auth+"Connection: close\r\n\r\n")
				if res.StatusCode != tc.want {
					t.Errorf("status = %d, want %d", res.StatusCode, tc.want)
				}
			})
		}
	})

	t.Run("mounted under a prefix", func(t *testing.T) {
		outer := chi.NewRouter()
		outer.Mount("/api", e.Guard)
		srv := httptest.NewServer(outer)
		t.Cleanup(srv.Close)
		for _, tc := range []struct {
			name   string
			method string
			path   string
			auth   string
			want   int
		}{
			{name: "protected without credentials", path: "/api/read", want: http.StatusUnauthorized},
			{name: "protected with a token", path: "/api/read", auth: "Bearer " + reader.Access, want: http.StatusOK},
			{name: "public", path: "/api/public", want: http.StatusOK},
			{name: "unknown", path: "/api/nope", want: http.StatusNotFound},
		} {
			t.Run(tc.name, func(t *testing.T) {
				req, _ := http.NewRequest(cmp.Or(tc.method, http.MethodGet), srv.URL+tc.path, nil)
				if tc.auth != "" {
					req.Header.Set("Authorization", tc.auth)
				}
				res, err := srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode != tc.want {
					t.Errorf("status = %d, want %d", res.StatusCode, tc.want)
				}
			})
		}
	})

	t.Run("HEAD routed as GET by an outer router", func(t *testing.T) {
		// GetHead leaves method GET and the path in the route context; the
		// guarded router then routes the HEAD request to the GET handler.
		outer := chi.NewRouter()
		outer.Use(middleware.GetHead)
		outer.Get("/*", e.Guard.ServeHTTP)
		srv := httptest.NewServer(outer)
		t.Cleanup(srv.Close)
		for _, tc := range []struct {
			name   string
			method string
			auth   string
			want   int
		}{
			{name: "HEAD without credentials", method: http.MethodHead, want: http.StatusUnauthorized},
			{name: "HEAD with a token", method: http.MethodHead, auth: "Bearer " + reader.Access, want: http.StatusOK},
			{name: "GET without credentials", method: http.MethodGet, want: http.StatusUnauthorized},
		} {
			t.Run(tc.name, func(t *testing.T) {
				req, _ := http.NewRequest(tc.method, srv.URL+"/read", nil)
				if tc.auth != "" {
					req.Header.Set("Authorization", tc.auth)
				}
				res, err := srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode != tc.want {
					t.Errorf("status = %d, want %d", res.StatusCode, tc.want)
				}
			})
		}
	})

	t.Run("unknown path and method", func(t *testing.T) {
		if got := e.Do(t, http.MethodGet, "/nope", "").Status; got != http.StatusNotFound {
			t.Errorf("unknown path: status = %d, want 404", got)
		}
		if got := e.Do(t, http.MethodDelete, "/read", "").Status; got != http.StatusMethodNotAllowed {
			t.Errorf("wrong method: status = %d, want 405", got)
		}
	})
}

func rawRequest(tb testing.TB, addr, req string) *http.Response {
	tb.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		tb.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		tb.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

func TestNewGuardChecksConfiguration(t *testing.T) {
	e := guardtest.NewEnv(t)
	bearer := tokens.Bearer{Tokens: e.Tokens}
	all := []guard.Option{
		guard.WithAuthenticator(policy.SchemeBearer, bearer),
		guard.WithAuthenticator(policy.SchemeOAuth2, bearer),
		guard.WithAuthenticator(policy.SchemeAPIKeyCookie, e.Sessions),
		guard.WithAuthenticator(policy.SchemeAPIKeyHeader, e.Keys),
	}
	full := func() chi.Router {
		r := chi.NewRouter()
		for _, op := range e.Table.Operations() {
			r.Method(op.Method, op.Pattern, http.HandlerFunc(guardtest.Echo))
		}
		return r
	}
	cases := []struct {
		name    string
		router  func() chi.Router
		opts    []guard.Option
		errHas  string
		oneLine bool // and nothing of a route or operation without the other
	}{
		{name: "complete", router: full, opts: all},
		{name: "missing authenticator", router: full, opts: all[:3], errHas: "no authenticator"},
		{name: "route without operation", router: func() chi.Router {
			r := full()
			r.Get("/debug", guardtest.Echo)
			return r
		}, opts: all, errHas: "has no operation"},
		{name: "operation without route", router: func() chi.Router {
			r := chi.NewRouter()
			r.Get("/public", guardtest.Echo)
			return r
		}, opts: all, errHas: "operation has no route"},
		// One mistake said once, naming both: not a route without an
		// operation and an operation without a route.
		{name: "a route naming its path parameters otherwise", router: func() chi.Router {
			r := chi.NewRouter()
			renamed := false
			for _, op := range e.Table.Operations() {
				pattern := op.Pattern
				if !renamed && strings.Contains(pattern, "{") {
					pattern, renamed = regexp.MustCompile(`\{[^}]*\}`).ReplaceAllString(pattern, "{renamedParam}"), true
				}
				r.Method(op.Method, pattern, http.HandlerFunc(guardtest.Echo))
			}
			return r
		}, opts: all, errHas: "writes its path parameters otherwise than", oneLine: true},
		{name: "middleware inside the guarded router", router: func() chi.Router {
			r := chi.NewRouter()
			r.Use(func(next http.Handler) http.Handler { return next })
			for _, op := range e.Table.Operations() {
				r.Method(op.Method, op.Pattern, http.HandlerFunc(guardtest.Echo))
			}
			return r
		}, opts: all, errHas: "install middleware around the guard"},
		{name: "inline middleware on a route", router: func() chi.Router {
			r := chi.NewRouter()
			for i, op := range e.Table.Operations() {
				if i == 0 {
					r.With(func(next http.Handler) http.Handler { return next }).Method(op.Method, op.Pattern, http.HandlerFunc(guardtest.Echo))
					continue
				}
				r.Method(op.Method, op.Pattern, http.HandlerFunc(guardtest.Echo))
			}
			return r
		}, opts: all, errHas: "has middleware inside the guarded router"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := guard.New(e.Table, tc.router(), tc.opts...)
			switch {
			case tc.errHas == "" && err != nil:
				t.Fatalf("guard.New = %v, want nil", err)
			case tc.errHas != "" && (err == nil || !strings.Contains(err.Error(), tc.errHas)):
				t.Fatalf("guard.New = %v, want an error containing %q", err, tc.errHas)
			case tc.oneLine && (strings.Contains(err.Error(), "has no route") || strings.Contains(err.Error(), "has no operation")):
				t.Fatalf("guard.New = %v, want the one problem, not a route and an operation each without the other", err)
			}
		})
	}
}

// An answer to an authenticated caller is kept by no cache unless its
// handler says otherwise (account data, fetched with a cookie, was
// cacheable); every admitted answer is nosniff.
func TestPrivateAnswersAreNotStored(t *testing.T) {
	e := guardtest.NewEnv(t)
	bob := e.Login(t, "bob", "reader")
	for _, c := range []struct {
		name, target string
		mods         []guardtest.Mod
		cache        string
	}{
		{"authenticated", "/things", []guardtest.Mod{guardtest.Bearer(bob.Access)}, "no-store"},
		{"anonymous", "/optional", nil, ""},
		{"public", "/public", nil, ""},
	} {
		got := e.Do(t, http.MethodGet, c.target, "", c.mods...)
		if got.Status != http.StatusOK || got.Header.Get("Cache-Control") != c.cache || got.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: %d Cache-Control %q nosniff %q; want 200, %q, nosniff", c.name, got.Status, got.Header.Get("Cache-Control"), got.Header.Get("X-Content-Type-Options"), c.cache)
		}
	}
}

// A body whose Content-Length is over WithMaxBodyBytes is answered 413
// before any handler runs, as promised, also where nothing reads it
// first: an operation that declares no requestBody, or validation off
// (helper-187: both reached the handler, 200).
func TestBodyOverTheCapRefusedBeforeTheHandler(t *testing.T) {
	e := guardtest.NewEnv(t)
	p := e.Login(t, "alice", "writer")
	big := strings.Repeat("x", 2*guardtest.MaxBody)
	unvalidated, err := guard.New(e.Table, e.Router,
		guard.WithAuthenticator(policy.SchemeBearer, tokens.Bearer{Tokens: e.Tokens}),
		guard.WithAuthenticator(policy.SchemeOAuth2, tokens.Bearer{Tokens: e.Tokens}),
		guard.WithAuthenticator(policy.SchemeAPIKeyCookie, e.Sessions),
		guard.WithAuthenticator(policy.SchemeAPIKeyHeader, e.Keys),
		guard.WithMaxBodyBytes(guardtest.MaxBody), guard.WithoutRequestValidation())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, body string
		h                http.Handler
	}{
		{"no requestBody declared", "/fresh", big, e.Guard},
		{"validation off", "/write", `{"title":"` + big + `"}`, unvalidated},
	} {
		r := httptest.NewRequest(http.MethodPost, tc.path, strings.NewReader(tc.body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer "+p.Access)
		w := httptest.NewRecorder()
		tc.h.ServeHTTP(w, r)
		if w.Code != http.StatusRequestEntityTooLarge {
			t.Errorf("%s: a body of %d bytes over a cap of %d: %d %s, want 413 before the handler", tc.name, len(tc.body), guardtest.MaxBody, w.Code, w.Body)
		}
	}
}
