package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/api"
	"github.com/specguard/specguard/api/gen"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
)

// BenchmarkHandler is one GET /posts/{id} with a cached bearer token through
// the whole served handler, next to the bare generated handlers, in process
// (no network): what the load harness measures, minus the HTTP server.
func BenchmarkHandler(b *testing.B) {
	spec := strings.Replace(string(api.Spec), "        - {}\n        - oauth2: [posts:read]\n        - apiKeyAuth: [posts:read]\n        - cookieAuth: []\n", "        - oauth2: [posts:read]\n", 1)
	spec = strings.Replace(spec, "    limit: 600\n    window: 1m\n    burst: 100\n", "    limit: 10000000\n    window: 1m\n    burst: 10000000\n", 1)
	d := testDeps(b, map[string]string{"SPECGUARD_DATA_DIR": b.TempDir(), "SPECGUARD_LOG_REQUESTS": "false"})
	table, err := policy.Compile("bench.yaml", []byte(spec))
	if err != nil {
		b.Fatal(err)
	}
	d.Table = table
	guarded, err := NewHandler(d)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	bare := gen.HandlerWithOptions(gen.NewStrictHandler(NewApp(d.Repo, d.Ready, d.Log), nil), gen.ChiServerOptions{BaseRouter: chi.NewRouter()})
	user, err := d.Accounts.AccountByEmail(ctx, "user@example.com")
	if err != nil {
		b.Fatal(err)
	}
	pair, err := d.Credentials.Tokens().Login(ctx, user.ID, user.Role, table.RoleScopes(user.Role), "bench")
	if err != nil {
		b.Fatal(err)
	}
	post := &Post{ID: security.NewID(), AuthorID: user.ID, Title: "Benchmark post", Body: "body", Status: string(gen.Published)}
	if err := d.Repo.CreatePost(ctx, post); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{{"bare", bare}, {"specguard", guarded}} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/posts/"+post.ID, nil)
			req.Header.Set("Authorization", "Bearer "+pair.Access)
			b.ReportAllocs()
			for b.Loop() {
				w := &discardWriter{h: http.Header{}}
				bc.h.ServeHTTP(w, req)
				if w.code != 200 {
					b.Fatalf("status %d", w.code)
				}
			}
		})
	}
}

type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = 200
	}
	return len(p), nil
}
func (w *discardWriter) WriteHeader(code int) { w.code = code }
