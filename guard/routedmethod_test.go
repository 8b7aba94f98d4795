package guard_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/internal/guardtest"
)

// A parent router may route a request as another method than its own (a
// method override sets chi's RouteMethod): the guard serves it as that
// method's operation, so it is authenticated as that method too. A GET
// routed as POST /account with a session cookie and no CSRF token reached
// the POST handler: the session authenticator took it for a safe GET.
func TestRoutedMethodIsTheMethodAuthenticated(t *testing.T) {
	e := guardtest.NewEnv(t)
	sess := e.Session(t, "alice", "reader")
	parent := chi.NewRouter()
	parent.Use(func(next http.Handler) http.Handler { // a method override by query
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if m := r.URL.Query().Get("_method"); m != "" {
				chi.RouteContext(r.Context()).RouteMethod = m
			}
			next.ServeHTTP(w, r)
		})
	})
	parent.Mount("/", e.Guard)
	serve := func(method, target string, csrf bool) (int, guardtest.Seen) {
		t.Helper()
		r := httptest.NewRequest(method, "https://app.example"+target, nil)
		r.Host = "app.example"
		r.AddCookie(&http.Cookie{Name: guardtest.SessionCookie, Value: sess.Cookie})
		r.Header.Set("Sec-Fetch-Site", "cross-site")
		if csrf {
			r.Header.Set("Sec-Fetch-Site", "same-origin")
			guardtest.CSRFProof(sess)(r)
		}
		w := httptest.NewRecorder()
		parent.ServeHTTP(w, r)
		var seen guardtest.Seen
		_ = json.Unmarshal(w.Body.Bytes(), &seen)
		return w.Code, seen
	}
	if code, _ := serve(http.MethodPost, "/account", false); code != http.StatusForbidden {
		t.Fatalf("POST /account with the cookie and no CSRF token: %d, want 403", code)
	}
	if code, seen := serve(http.MethodGet, "/account?_method=POST", false); code != http.StatusForbidden {
		t.Errorf("a cross-site GET routed as POST /account, session cookie, no CSRF token: %d, op %q as %q; want 403", code, seen.Op, seen.Subject)
	}
	// With the token, the routed operation is served.
	if code, seen := serve(http.MethodGet, "/account?_method=POST", true); code != http.StatusOK || seen.Op != "postAccount" {
		t.Errorf("a same-origin GET routed as POST /account with its CSRF token: %d, op %q; want 200 postAccount", code, seen.Op)
	}
	// A HEAD served as its path's GET stays a HEAD: both are safe.
	if code, _ := serve(http.MethodHead, "/account", false); code != http.StatusOK {
		t.Errorf("HEAD /account with the cookie: %d, want 200", code)
	}
}
