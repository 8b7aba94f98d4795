package guard_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/policy"
)

// chi's GetHead (a parent router's stock middleware) routes a HEAD request
// as GET through RouteMethod. The guard now rewrites such a request's
// Method to GET, so the handler is told a HEAD is a GET: it cannot skip
// the body's work, and behaves unlike the guard's own HEAD-as-GET path,
// which keeps HEAD.
// chi's GetHead on a parent router routes a HEAD as GET: the handler is
// still told HEAD, as when the guard serves a HEAD as its path's GET.
// Rewriting the method of a request a parent routed as another told it GET.
func TestGetHeadParentKeepsHEAD(t *testing.T) {
	table, err := policy.Compile("edges.yaml", []byte(edgeSpec))
	if err != nil {
		t.Fatal(err)
	}
	inner := chi.NewRouter()
	var seen string
	for _, op := range table.Operations() {
		inner.Method(op.Method, op.Pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = r.Method }))
	}
	g, err := guard.New(table, inner, guard.WithLimiter(limits.New(limits.NewMemoryStore(nil))),
		guard.WithAuthenticator(policy.SchemeBearer, people), guard.WithAuthenticator(policy.SchemeOAuth2, people),
		guard.WithAuthenticator(policy.SchemeAPIKeyHeader, people), guard.WithAuthenticator(policy.SchemeAPIKeyCookie, people))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		handle http.Handler
	}{{"guard alone", g}, {"under a chi router with GetHead", func() http.Handler {
		outer := chi.NewRouter()
		outer.Use(middleware.GetHead)
		outer.Get("/*", g.ServeHTTP)
		return outer
	}()}} {
		seen = ""
		req := httptest.NewRequest(http.MethodHead, "/bearer", nil)
		req.RemoteAddr = "192.0.2.1:1234"
		req.Header.Set("Authorization", "Bearer alice")
		w := httptest.NewRecorder()
		c.handle.ServeHTTP(w, req)
		if w.Code != 200 || seen != http.MethodHead {
			t.Errorf("%s: HEAD /bearer: %d, the handler saw method %q; want 200 and HEAD", c.name, w.Code, seen)
		}
	}
}
