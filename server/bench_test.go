package server_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/api"
	"github.com/specguard/specguard/api/gen"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/server"
)

// BenchmarkHandler is one GET /posts/{id} with a cached bearer token through
// the whole served handler, next to the bare generated handlers, in process
// (no network): what the load harness measures, minus the HTTP server.
func BenchmarkHandler(b *testing.B) {
	spec := strings.Replace(string(api.Spec), "        - {}\n        - oauth2: [posts:read]\n        - apiKeyAuth: [posts:read]\n        - cookieAuth: []\n", "        - oauth2: [posts:read]\n", 1)
	spec = strings.Replace(spec, "    limit: 600\n    window: 1m\n    burst: 100\n", "    limit: 10000000\n    window: 1m\n    burst: 10000000\n", 1)
	table, err := policy.Compile("bench.yaml", []byte(spec))
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := server.LoadConfig(nil, func(k string) string {
		if k == "SPECGUARD_DATA_DIR" {
			return b.TempDir()
		}
		return ""
	}, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	deps, err := server.BuildDeps(ctx, cfg, table, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer deps.Close()
	deps.LogRequests = false // as the load harness runs it
	guarded, err := server.NewHandler(deps)
	if err != nil {
		b.Fatal(err)
	}
	app, err := server.NewApp(deps)
	if err != nil {
		b.Fatal(err)
	}
	bare := gen.HandlerWithOptions(gen.NewStrictHandler(app, nil), gen.ChiServerOptions{BaseRouter: chi.NewRouter()})

	user, err := deps.Repo.UserByEmail(ctx, "user@example.com")
	if err != nil {
		b.Fatal(err)
	}
	pair, err := deps.Tokens.Login(ctx, user.ID, user.Role, table.RoleScopes(user.Role), "bench")
	if err != nil {
		b.Fatal(err)
	}
	post := &server.Post{ID: security.NewID(), AuthorID: user.ID, Title: "Benchmark post", Body: "body", Status: string(gen.Published)}
	if err := deps.Repo.CreatePost(ctx, post); err != nil {
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
	_ = os.Stdout
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
