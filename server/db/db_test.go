package db_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/credentials/sqlstore"
	"github.com/specguard/specguard/internal/pgtest"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/server/db"
	"github.com/specguard/specguard/sqldb"
)

var ctx = context.Background()

// backends runs one suite against every database, each test on a fresh
// database of its own, migrated as the app migrates it: the credential
// operations' set, then the posts'.
func backends(t *testing.T, suite func(t *testing.T, d *sqldb.DB)) {
	for _, kind := range []sqldb.Kind{sqldb.SQLite, sqldb.Postgres} {
		t.Run(string(kind), func(t *testing.T) {
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			var mu sync.Mutex
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); now = now.Add(time.Second); return now }
			suite(t, migrated(t, kind, "", clock))
		})
	}
}

// migrated opens a fresh database of kind (a PostgreSQL one made with
// options, see pgtest.NewIn) on clock and migrates it as the app does.
func migrated(t *testing.T, kind sqldb.Kind, options string, clock func() time.Time) *sqldb.DB {
	t.Helper()
	src := sqldb.Source{Kind: kind, DSN: filepath.Join(t.TempDir(), "specguard.db")}
	if kind == sqldb.Postgres {
		src.DSN = pgtest.NewIn(t, options)
	}
	d, err := sqldb.Open(ctx, src, sqldb.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	for _, set := range []sqldb.Migrations{sqlstore.Migrations, db.Migrations} {
		if _, _, err := d.Migrate(ctx, set, nil); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func account(t *testing.T, d *sqldb.DB, email string) *credentials.Account {
	t.Helper()
	a := &credentials.Account{ID: security.NewID(), Email: email, Role: "user", PasswordHash: "$2a$10$hash"}
	if err := sqlstore.New(d).CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestPosts(t *testing.T) {
	backends(t, func(t *testing.T, sd *sqldb.DB) {
		d := db.New(sd)
		alice, bob := account(t, sd, "alice@example.com"), account(t, sd, "bob@example.com")
		post := func(author *credentials.Account, title, status string) *db.Post {
			p := &db.Post{ID: security.NewID(), AuthorID: author.ID, Title: title, Body: "body of " + title, Status: status}
			if err := d.CreatePost(ctx, p); err != nil {
				t.Fatal(err)
			}
			return p
		}
		p1 := post(alice, "one", "published")
		post(alice, "draft", "draft")
		post(bob, "two", "published")
		// A post by a caller an outside identity provider verified
		// ("<scheme>:<sub>": no account here) is kept; 00001's foreign
		// key to users refused it (helper-188).
		if err := d.CreatePost(ctx, &db.Post{ID: security.NewID(), AuthorID: "keycloak:5f0c2a", Title: "outside", Body: "b", Status: "draft"}); err != nil {
			t.Errorf("a post by an outside provider's caller: %v", err)
		}
		// A status the table does not take breaks a constraint: no
		// outage (503).
		err := d.CreatePost(ctx, &db.Post{ID: security.NewID(), AuthorID: alice.ID, Title: "x", Status: "pending"})
		var ce *sqldb.ConstraintError
		if !errors.As(err, &ce) || ce.Kind != "check" || errors.Is(err, sqldb.ErrUnavailable) {
			t.Errorf("a post of an unknown status: %v, want a check ConstraintError", err)
		}
		titles := func(viewer string, limit, offset int) string {
			t.Helper()
			ps, err := d.Posts(ctx, viewer, limit, offset)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, p := range ps {
				out = append(out, p.Title)
			}
			return strings.Join(out, ",")
		}
		for _, tc := range []struct {
			viewer        string
			limit, offset int
			want          string
		}{
			{"", 10, 0, "two,one"},
			{alice.ID, 10, 0, "two,draft,one"},
			{bob.ID, 10, 0, "two,one"},
			{alice.ID, 2, 1, "draft,one"},
			{alice.ID, 10, 5, ""},
		} {
			if got := titles(tc.viewer, tc.limit, tc.offset); got != tc.want {
				t.Errorf("Posts(%s, %d, %d) = %q, want %q", tc.viewer, tc.limit, tc.offset, got, tc.want)
			}
		}
		got, err := d.Post(ctx, p1.ID)
		if err != nil || *got != *p1 {
			t.Fatalf("Post = %+v, %v; want %+v", got, err, p1)
		}
		title, draft := "one, edited", "draft"
		updated, err := d.UpdatePost(ctx, p1.ID, db.PostPatch{Title: &title, Status: &draft})
		if err != nil {
			t.Fatal(err)
		}
		again, _ := d.Post(ctx, p1.ID)
		if again.Title != title || again.Status != draft || again.Body != p1.Body || !again.Updated.After(again.Created) || *again != *updated {
			t.Errorf("after UpdatePost: %+v (returned %+v)", again, updated)
		}
		if err := d.DeletePost(ctx, p1.ID); err != nil {
			t.Fatal(err)
		}
		for name, err := range map[string]error{
			"Post":       func() error { _, err := d.Post(ctx, p1.ID); return err }(),
			"UpdatePost": func() error { _, err := d.UpdatePost(ctx, p1.ID, db.PostPatch{Status: &draft}); return err }(),
			"DeletePost": d.DeletePost(ctx, p1.ID),
		} {
			if !errors.Is(err, sqldb.ErrNotFound) {
				t.Errorf("%s of a deleted post = %v, want ErrNotFound", name, err)
			}
		}
	})
}

// Posts of one microsecond (two instances writing at once) are listed by
// id in the order of its bytes on both databases: PostgreSQL ordered the
// ids by its locale (en-US here), SQLite by their bytes, so one set of
// posts was listed, and split into pages, otherwise on each.
func TestPostsOfOneMomentListAlikeOnBothDatabases(t *testing.T) {
	ids := []string{"a-x", "A_x", "Ab", "a_b", "B-", "b_", "_z", "-z", "Zz", "zZ"}
	want := slices.Sorted(slices.Values(ids))
	frozen := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, kind := range []sqldb.Kind{sqldb.SQLite, sqldb.Postgres} {
		d := migrated(t, kind, "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'", func() time.Time { return frozen })
		posts, author := db.New(d), account(t, d, "author@example.com")
		for _, id := range ids {
			if err := posts.CreatePost(ctx, &db.Post{ID: id, AuthorID: author.ID, Title: id, Status: "published"}); err != nil {
				t.Fatal(err)
			}
		}
		var got []string
		for offset := 0; offset < len(ids); offset += 3 {
			page, err := posts.Posts(ctx, "", 3, offset)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range page {
				got = append(got, p.ID)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: %v, want the ids' byte order %v", kind, got, want)
		}
	}
}

// The migration that drops the author's foreign key makes the table
// again: the posts written before it are all there after it, on both
// databases.
func TestPostsKeptThroughTheAuthorMigration(t *testing.T) {
	first, err := os.ReadFile("migrations/00001_posts.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []sqldb.Kind{sqldb.SQLite, sqldb.Postgres} {
		t.Run(string(kind), func(t *testing.T) {
			src := sqldb.Source{Kind: kind, DSN: filepath.Join(t.TempDir(), "specguard.db")}
			if kind == sqldb.Postgres {
				src.DSN = pgtest.NewIn(t, "")
			}
			sd, err := sqldb.Open(ctx, src)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sd.Close() })
			before := db.Migrations
			before.FS, before.Dir = fstest.MapFS{"m/00001_posts.sql": {Data: first}}, "m"
			for _, set := range []sqldb.Migrations{sqlstore.Migrations, before} {
				if _, _, err := sd.Migrate(ctx, set, nil); err != nil {
					t.Fatal(err)
				}
			}
			alice := account(t, sd, "alice@example.com")
			d := db.New(sd)
			var written []*db.Post
			for i, status := range []string{"published", "draft"} {
				p := &db.Post{ID: security.NewID(), AuthorID: alice.ID, Title: fmt.Sprint("post ", i), Body: "b", Status: status}
				if err := d.CreatePost(ctx, p); err != nil {
					t.Fatal(err)
				}
				written = append(written, p)
			}
			if _, _, err := sd.Migrate(ctx, db.Migrations, nil); err != nil {
				t.Fatal(err)
			}
			for _, p := range written {
				if got, err := d.Post(ctx, p.ID); err != nil || *got != *p {
					t.Errorf("after the migration: %+v, %v; want %+v", got, err, p)
				}
			}
			if ps, err := d.Posts(ctx, alice.ID, 10, 0); err != nil || len(ps) != len(written) {
				t.Errorf("Posts after the migration: %d, %v; want %d", len(ps), err, len(written))
			}
		})
	}
}
