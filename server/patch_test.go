package server_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/specguard/specguard/api/gen"
	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/credentials/sqlstore"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/server"
	"github.com/specguard/specguard/server/db"
	"github.com/specguard/specguard/sqldb"
)

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
	asAuthor := security.NewContext(ctx, &security.Principal{Subject: author.ID})
	asAdmin := security.NewContext(ctx, &security.Principal{Subject: security.NewID(), Scopes: []string{"users:admin"}})
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
