package server_test

// The example's own tests: the blog's posts. Delete this file with the
// domain; the other tests of this package test the product through the
// example app.

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/api"
	"github.com/specguard/specguard/api/gen"
	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/credentials/sqlstore"
	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/internal/keytest"
	"github.com/specguard/specguard/internal/pgtest"
	"github.com/specguard/specguard/internal/spectest"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/server"
	"github.com/specguard/specguard/server/db"
	"github.com/specguard/specguard/service"
	"github.com/specguard/specguard/sqldb"
)

// BenchmarkHandler is one GET /posts/{id} with a cached bearer token through
// the whole served handler, next to the bare generated handlers, in process
// (no network): what the load harness measures, minus the HTTP server. The
// served handler runs as configured by default (answers checked in report
// mode), with every answer checked (enforce), with none checked (off), and
// traced: the OTEL_* variables naming a local OTLP/HTTP receiver that
// takes and drops what it is sent.
func BenchmarkHandler(b *testing.B) {
	spec := strings.Replace(string(api.Spec), "        - {}\n        - oauth2: [posts:read]\n        - apiKeyAuth: [posts:read]\n        - cookieAuth: []\n", "        - oauth2: [posts:read]\n", 1)
	if spec == string(api.Spec) {
		b.Fatal("listPosts' security is not written as this benchmark rewrites it (anonymous, oauth2, apiKeyAuth or cookieAuth): it would measure another setup")
	}
	raised := spectest.WithDefaultTier(b, []byte(spec), "principal", map[string]any{"limit": 10000000, "window": "1m", "burst": 10000000})
	specFile := filepath.Join(b.TempDir(), "bench.yaml")
	if err := os.WriteFile(specFile, raised, 0o644); err != nil {
		b.Fatal(err)
	}
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
	b.Cleanup(receiver.Close)
	ctx := context.Background()
	// build serves a post to a user's token, with env on top of the
	// benchmark's own.
	build := func(env map[string]string) (d *service.Deps, guarded http.Handler, path, token string) {
		for k, v := range map[string]string{"SPECGUARD_DATA_DIR": b.TempDir(), "SPECGUARD_LOG_REQUESTS": "false", "SPECGUARD_ADMIN_ADDR": "off", "SPECGUARD_SPEC_FILE": specFile} {
			env[k] = v
		}
		srv, err := service.Build(ctx, server.Service(), nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(srv.Close)
		d = srv.Deps
		user, err := d.Accounts.AccountByEmail(ctx, "user@example.com")
		if err != nil {
			b.Fatal(err)
		}
		pair, err := d.Credentials.Tokens().Login(ctx, user.ID, user.Role, srv.Table.RoleScopes(user.Role), "bench")
		if err != nil {
			b.Fatal(err)
		}
		post := &db.Post{ID: security.NewID(), AuthorID: user.ID, Title: "Benchmark post", Body: "body", Status: string(gen.Published)}
		if err := db.New(d.DB).CreatePost(ctx, post); err != nil {
			b.Fatal(err)
		}
		return d, srv.Handler, "/posts/" + post.ID, pair.Access
	}
	d, guarded, path, token := build(map[string]string{})
	bare := gen.HandlerWithOptions(gen.NewStrictHandler(server.NewApp(db.New(d.DB), d.Ready, d.Log), nil), gen.ChiServerOptions{BaseRouter: chi.NewRouter()})
	with := func(mode guard.ResponseMode) http.Handler {
		d.ValidateResponses = mode
		h, err := service.NewHandler(d)
		if err != nil {
			b.Fatal(err)
		}
		return h
	}
	enforced, unchecked := with(guard.ResponsesEnforce), with(guard.ResponsesOff)
	_, traced, tracedPath, tracedToken := build(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.URL})
	for _, bc := range []struct {
		name        string
		h           http.Handler
		path, token string
	}{
		{"bare", bare, path, token},
		{"specguard", guarded, path, token},
		{"specguard,answers-enforced", enforced, path, token},
		{"specguard,answers-unchecked", unchecked, path, token},
		{"specguard,traced", traced, tracedPath, tracedToken},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", bc.path, nil)
			req.Host = "localhost" // the development setup answers loopback hosts only
			req.Header.Set("Authorization", "Bearer "+bc.token)
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

// The app's records survive a restart of `make run` as accounts do: a
// draft, read by its author's token and API key.
func TestPostsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	a := start(t, map[string]string{"SPECGUARD_DATA_DIR": dir})
	tok := login(t, a, "user@example.com", "user-password")
	resp, post := a.do(t, "POST", "/posts", `{"title":"kept","body":"across restarts","status":"draft"}`, "Authorization", "Bearer "+tok)
	if resp.StatusCode != 201 {
		t.Fatalf("create post: %d %v", resp.StatusCode, post)
	}
	resp, key := a.do(t, "POST", at(t, "create-api-key"), `{"name":"ci","scopes":["posts:read"]}`, "Authorization", "Bearer "+tok)
	if resp.StatusCode != 201 {
		t.Fatalf("create key: %d %v", resp.StatusCode, key)
	}
	a.stop(t)

	b := start(t, map[string]string{"SPECGUARD_DATA_DIR": dir})
	tok = login(t, b, "user@example.com", "user-password")
	resp, m := b.do(t, "GET", "/posts/"+post["id"].(string), "", "Authorization", "Bearer "+tok)
	if resp.StatusCode != 200 || m["title"] != "kept" {
		t.Fatalf("the draft after a restart: %d %v", resp.StatusCode, m)
	}
	resp, m = b.do(t, "GET", "/posts/"+post["id"].(string), "", "X-API-Key", key["key"].(string))
	if resp.StatusCode != 200 || m["title"] != "kept" {
		t.Fatalf("the draft by API key after a restart: %d %v", resp.StatusCode, m)
	}
}

// The posts' operations in the document: anyone may list and read, a
// writer writes, and every write counts into one bucket.
func TestPostsInTheDocument(t *testing.T) {
	table := docTable(t)
	op := func(id string) *policy.Operation {
		t.Helper()
		op := table.Operation(id)
		if op == nil {
			t.Fatalf("the document has no operation %s, which the blog serves", id)
		}
		return op
	}
	if p := op("listPosts").Security; !p.Anonymous {
		t.Error("listPosts admits anonymous callers")
	}
	for _, id := range []string{"createPost", "updatePost", "deletePost"} {
		if o := op(id); !slices.ContainsFunc(o.Limits, func(l policy.Tier) bool { return l.Bucket == "shared:post-writes" }) {
			t.Errorf("%s does not count into post-writes: %+v", id, o.Limits)
		}
	}
}

// readTogether is the posts of a database whose reads of a post wait for
// each other: two requests that both read before either writes.
type readTogether struct {
	server.Repository
	reads sync.WaitGroup
}

func (r *readTogether) Post(ctx context.Context, id string) (*server.Post, error) {
	p, err := r.Repository.Post(ctx, id)
	r.reads.Done()
	r.reads.Wait()
	return p, err
}

// Two PATCHes of one post, of different fields, both answered 200, both
// hold: a handler that wrote back the post it read undid the other's edit
// (an admin's edit of the title published again a post its author had just
// made a draft).
func TestConcurrentPatchesBothHold(t *testing.T) {
	ctx := context.Background()
	d, err := sqldb.Open(ctx, sqldb.Source{Kind: sqldb.SQLite, DSN: filepath.Join(t.TempDir(), "specguard.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	for _, set := range []sqldb.Migrations{sqlstore.Migrations, db.Migrations} {
		if _, _, err := d.Migrate(ctx, set, nil); err != nil {
			t.Fatal(err)
		}
	}
	author := &credentials.Account{ID: security.NewID(), Email: "author@example.com", Role: "user", PasswordHash: "x"}
	if err := sqlstore.New(d).CreateAccount(ctx, author); err != nil {
		t.Fatal(err)
	}
	posts := db.New(d)
	if err := posts.CreatePost(ctx, &server.Post{ID: "p1", AuthorID: author.ID, Title: "title", Body: "body", Status: "published"}); err != nil {
		t.Fatal(err)
	}
	repo := &readTogether{Repository: posts}
	repo.reads.Add(2)
	app := server.NewApp(repo, nil, nil)
	// As the guard serves it: the operation in the context, whose x-owner
	// names the scopes that act on anyone's post.
	update := docTable(t).Operation("updatePost")
	if update.Owner == nil || len(update.Owner.Override) == 0 {
		t.Fatal("updatePost names no override scope in x-owner")
	}
	opCtx := policy.NewContext(ctx, update)
	asAuthor := security.NewContext(opCtx, &security.Principal{Subject: author.ID})
	asAdmin := security.NewContext(opCtx, &security.Principal{Subject: security.NewID(), Scopes: update.Owner.Override})
	draft, title := gen.PostStatus("draft"), "edited by an admin"
	var wg sync.WaitGroup
	var byAuthor, byAdmin gen.UpdatePostResponseObject
	var errAuthor, errAdmin error
	wg.Add(2)
	go func() {
		defer wg.Done()
		byAuthor, errAuthor = app.UpdatePost(asAuthor, gen.UpdatePostRequestObject{Id: "p1", Body: &gen.PostPatch{Status: &draft}})
	}()
	go func() {
		defer wg.Done()
		byAdmin, errAdmin = app.UpdatePost(asAdmin, gen.UpdatePostRequestObject{Id: "p1", Body: &gen.PostPatch{Title: &title}})
	}()
	wg.Wait()
	for _, r := range []struct {
		who string
		res gen.UpdatePostResponseObject
		err error
	}{{"author", byAuthor, errAuthor}, {"admin", byAdmin, errAdmin}} {
		if _, ok := r.res.(gen.UpdatePost200JSONResponse); !ok || r.err != nil {
			t.Fatalf("the %s's PATCH: %T, %v; want 200", r.who, r.res, r.err)
		}
	}
	got, err := posts.Post(ctx, "p1")
	if err != nil || got.Status != string(draft) || got.Title != title || got.Body != "body" {
		t.Errorf("after both PATCHes: %+v, %v; want a draft titled %q", got, err, title)
	}
}

// The handlers take the scopes that act on anyone's post from the
// document's x-owner, as the guard serves it: an operator who names
// another override in SPECGUARD_SPEC_FILE changes who may edit, where the
// handler's own list used to win.
func TestPostOwnersOverrideIsTheDocuments(t *testing.T) {
	const admins, moderators = "x-owner: {override: [users:admin]}", "x-owner: {override: [posts:delete]}"
	edited := strings.Replace(string(api.Spec), admins, moderators, 1)
	if edited == string(api.Spec) || !slices.Contains(docTable(t).RoleScopes("moderator"), "posts:delete") {
		t.Fatalf("the document no longer has %q, or moderators no longer hold posts:delete", admins)
	}
	specFile := filepath.Join(t.TempDir(), "openapi.yaml")
	if err := os.WriteFile(specFile, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		env  map[string]string
		want int
	}{
		{"as built", nil, http.StatusForbidden},
		{"the override made the moderators'", map[string]string{"SPECGUARD_SPEC_FILE": specFile}, http.StatusOK},
	} {
		in := start(t, c.env)
		user, mod := login(t, in, "user@example.com", "user-password"), login(t, in, "moderator@example.com", "moderator-password")
		resp, post := in.do(t, "POST", "/posts", `{"title":"mine","body":"b"}`, "Authorization", "Bearer "+user)
		if resp.StatusCode != 201 {
			t.Fatalf("%s: create: %d %v", c.name, resp.StatusCode, post)
		}
		if resp, m := in.do(t, "PATCH", "/posts/"+post["id"].(string), `{"title":"moderated"}`, "Authorization", "Bearer "+mod); resp.StatusCode != c.want {
			t.Errorf("%s: a moderator's PATCH of a user's post: %d %v, want %d", c.name, resp.StatusCode, m, c.want)
		}
	}
}

// U+0000 in a post's title or body is refused 400, naming the field, on
// both databases: SQLite kept it, PostgreSQL cannot, and answered 422, a
// status the operations do not declare.
func TestNulInAPostRefusedOnBothDatabases(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			env := map[string]string{}
			if kind == "postgres" {
				env["SPECGUARD_DATABASE_URL"] = pgtest.New(t)
				env["SPECGUARD_SIGNING_KEY_FILE"] = keytest.File(t)
			}
			in := start(t, env)
			tok := login(t, in, "user@example.com", "user-password")
			field := func(m map[string]any) string {
				errs, _ := m["errors"].([]any)
				if len(errs) != 1 {
					return ""
				}
				f, _ := errs[0].(map[string]any)["field"].(string)
				return f
			}
			if resp, m := in.do(t, "POST", "/posts", `{"title":"a\u0000b","body":"x"}`, "Authorization", "Bearer "+tok); resp.StatusCode != 400 || field(m) != "body.title" {
				t.Errorf("POST /posts with U+0000 in the title: %d %v, want 400 naming body.title", resp.StatusCode, m)
			}
			resp, post := in.do(t, "POST", "/posts", `{"title":"plain","body":"x"}`, "Authorization", "Bearer "+tok)
			if resp.StatusCode != 201 {
				t.Fatalf("POST /posts: %d %v", resp.StatusCode, post)
			}
			if resp, m := in.do(t, "PATCH", "/posts/"+post["id"].(string), `{"body":"\u0000"}`, "Authorization", "Bearer "+tok); resp.StatusCode != 400 || field(m) != "body.body" {
				t.Errorf("PATCH with U+0000 in the body: %d %v, want 400 naming body.body", resp.StatusCode, m)
			}
			if resp, m := in.do(t, "GET", "/posts/"+post["id"].(string), "", "Authorization", "Bearer "+tok); resp.StatusCode != 200 || m["body"] != "x" {
				t.Errorf("the post after the refused PATCH: %d %v", resp.StatusCode, m)
			}
		})
	}
}
