package db_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/specguard/specguard/internal/pgtest"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/server/db"
)

// backends runs one contract suite against every database, each test on a
// fresh database of its own.
func backends(t *testing.T, suite func(t *testing.T, src db.Source)) {
	t.Run("sqlite", func(t *testing.T) {
		suite(t, db.Source{Kind: db.SQLite, DSN: filepath.Join(t.TempDir(), "specguard.db")})
	})
	t.Run("postgres", func(t *testing.T) {
		suite(t, db.Source{Kind: db.Postgres, DSN: pgtest.New(t)})
	})
}

// open opens and migrates src, closed when the test ends.
func open(t *testing.T, src db.Source, opts ...db.Option) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), src, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if _, _, err := d.Migrate(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	return d
}

var ctx = context.Background()

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in       string
		kind     db.Kind
		dsn, err string
	}{
		{in: "", kind: db.SQLite, dsn: filepath.Join("data", "specguard.db")},
		{in: "sqlite:/var/lib/sg/app.db", kind: db.SQLite, dsn: "/var/lib/sg/app.db"},
		{in: "sqlite://var/lib/sg/app.db", kind: db.SQLite, dsn: "var/lib/sg/app.db"},
		{in: "sqlite:app.db", kind: db.SQLite, dsn: "app.db"},
		{in: "postgres://u:p@db:5432/sg", kind: db.Postgres, dsn: "postgres://u:p@db:5432/sg"},
		{in: "postgresql://db/sg?sslmode=disable", kind: db.Postgres, dsn: "postgresql://db/sg?sslmode=disable"},
		{in: "sqlite:", err: "sqlite: needs a file path"},
		{in: "sqlite:a.db?mode=ro", err: "must not contain ? or #"},
		{in: "mysql://db/sg", err: `"mysql:..." is not a database URL`},
		{in: "/var/lib/sg/app.db", err: "is not a database URL"},
		{in: "postgres://u:secret@db:notaport/sg", err: "postgres://u:xxxxx@db:notaport/sg"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			src, err := db.ParseURL(tc.in, "data")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseURL(%q) = %v, want an error with %q", tc.in, err, tc.err)
				}
				if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "\n") {
					t.Errorf("error %q shows the password or spans lines", err)
				}
				return
			}
			if err != nil || src.Kind != tc.kind || src.DSN != tc.dsn {
				t.Fatalf("ParseURL(%q) = %+v, %v; want %s %s", tc.in, src, err, tc.kind, tc.dsn)
			}
		})
	}
}

func TestMigrate(t *testing.T) {
	backends(t, func(t *testing.T, src db.Source) {
		d, err := db.Open(ctx, src)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		current, known, err := d.Versions(ctx)
		if err != nil || current != 0 || known < 1 {
			t.Fatalf("Versions of a new database = %d, %d, %v", current, known, err)
		}
		from, to, err := d.Migrate(ctx, nil)
		if err != nil || from != 0 || to != known {
			t.Fatalf("Migrate = %d -> %d, %v; want 0 -> %d", from, to, err, known)
		}
		if from, to, err = d.Migrate(ctx, nil); err != nil || from != known || to != known {
			t.Fatalf("Migrate again = %d -> %d, %v; want nothing to do", from, to, err)
		}
		// A newer specguard migrated the database: this one refuses it.
		newer := known + 1
		if _, err := d.ExecForTest(ctx, fmt.Sprintf(`INSERT INTO goose_db_version (version_id, is_applied) VALUES (%d, true)`, newer)); err != nil {
			t.Fatal(err)
		}
		_, _, err = d.Migrate(ctx, nil)
		if !errors.Is(err, db.ErrSchemaTooNew) {
			t.Fatalf("Migrate of a newer schema = %v, want ErrSchemaTooNew", err)
		}
		for _, v := range []string{fmt.Sprintf("version %d", newer), fmt.Sprintf("up to %d", known)} {
			if !strings.Contains(err.Error(), v) {
				t.Errorf("error %q does not name %q", err, v)
			}
		}
	})
}

// Instances starting at once all migrate without error: the lock makes
// each migration run once.
func TestConcurrentMigrate(t *testing.T) {
	backends(t, func(t *testing.T, src db.Source) {
		var wg sync.WaitGroup
		errs := make(chan error, 6)
		for range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d, err := db.Open(ctx, src)
				if err != nil {
					errs <- err
					return
				}
				defer d.Close()
				_, _, err = d.Migrate(ctx, nil)
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("concurrent Migrate: %v", err)
			}
		}
		d := open(t, src)
		if current, known, err := d.Versions(ctx); err != nil || current != known {
			t.Errorf("after concurrent Migrate: version %d of %d, %v", current, known, err)
		}
	})
}

func newUser(email string) *db.User {
	return &db.User{ID: security.NewID(), Email: email, Role: "user", PasswordHash: "$2a$10$hash"}
}

func TestUsers(t *testing.T) {
	backends(t, func(t *testing.T, src db.Source) {
		d := open(t, src)
		u := newUser("Alice@Example.com")
		if err := d.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		if u.Version != 1 || u.Created.IsZero() {
			t.Errorf("CreateUser set version %d, created %v", u.Version, u.Created)
		}
		if err := d.CreateUser(ctx, newUser(" alice@example.COM ")); !errors.Is(err, db.ErrExists) {
			t.Errorf("same address in another case: %v, want ErrExists", err)
		}
		got, err := d.UserByEmail(ctx, "ALICE@example.com")
		if err != nil || got.ID != u.ID || got.Email != "Alice@Example.com" || got.PasswordHash != u.PasswordHash || !got.Created.Equal(u.Created) {
			t.Fatalf("UserByEmail = %+v, %v; want %+v", got, err, u)
		}
		if _, err := d.User(ctx, "nobody"); !errors.Is(err, db.ErrNotFound) {
			t.Errorf("User(nobody) = %v, want ErrNotFound", err)
		}
		created, err := d.EnsureUser(ctx, &db.User{ID: u.ID, Email: "other@example.com", Role: "admin", PasswordHash: "x"})
		if err != nil || created {
			t.Errorf("EnsureUser of a taken id = %v, %v; want false", created, err)
		}
		created, err = d.EnsureUser(ctx, newUser("bob@example.com"))
		if err != nil || !created {
			t.Errorf("EnsureUser of a new account = %v, %v; want true", created, err)
		}
		users, err := d.Users(ctx)
		if err != nil || len(users) != 2 || users[0].Email != "Alice@Example.com" || users[1].Email != "bob@example.com" {
			t.Errorf("Users = %+v, %v", users, err)
		}

		var published []db.User
		after, err := d.UpdateUser(ctx, u.ID, func(u *db.User) error { u.Role = "moderator"; return nil },
			func(u *db.User) error { published = append(published, *u); return nil })
		if err != nil || after.Version != 2 || after.Role != "moderator" || len(published) != 1 || published[0].Version != 2 {
			t.Fatalf("UpdateUser = %+v, %v, published %+v", after, err, published)
		}
		// A publish that fails leaves the database as it was.
		_, err = d.UpdateUser(ctx, u.ID, func(u *db.User) error { u.Disabled = true; return nil },
			func(*db.User) error { return errors.New("store down") })
		if err == nil || err.Error() != "store down" {
			t.Fatalf("UpdateUser with a failing publish = %v", err)
		}
		if got, _ := d.User(ctx, u.ID); got.Disabled || got.Version != 2 {
			t.Errorf("after a failed publish: %+v, want version 2, enabled", got)
		}
		if _, err := d.UpdateUser(ctx, "nobody", func(*db.User) error { return nil }, func(*db.User) error { return nil }); !errors.Is(err, db.ErrNotFound) {
			t.Errorf("UpdateUser(nobody) = %v, want ErrNotFound", err)
		}
	})
}

// Concurrent updates of one account serialise: every one bumps the version
// once, and each publishes the version it commits.
func TestConcurrentUpdateUser(t *testing.T) {
	backends(t, func(t *testing.T, src db.Source) {
		d := open(t, src)
		u := newUser("alice@example.com")
		if err := d.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		seen := map[int64]bool{}
		var wg sync.WaitGroup
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := d.UpdateUser(ctx, u.ID, func(u *db.User) error { u.NotBefore = u.Version + 1; return nil },
					func(u *db.User) error { mu.Lock(); defer mu.Unlock(); seen[u.Version] = true; return nil })
				if err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		got, _ := d.User(ctx, u.ID)
		if got.Version != 11 || got.NotBefore != 11 || len(seen) != 10 {
			t.Errorf("after 10 updates: version %d, not before %d, %d versions published; want 11, 11, 10", got.Version, got.NotBefore, len(seen))
		}
	})
}

// Of 20 concurrent registrations of one address exactly one succeeds.
func TestConcurrentCreateUser(t *testing.T) {
	backends(t, func(t *testing.T, src db.Source) {
		d := open(t, src)
		var created, exists atomic.Int64
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				switch err := d.CreateUser(ctx, newUser(fmt.Sprintf("%sCarol@example.com", strings.Repeat(" ", i%3)))); {
				case err == nil:
					created.Add(1)
				case errors.Is(err, db.ErrExists):
					exists.Add(1)
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if created.Load() != 1 || exists.Load() != 19 {
			t.Errorf("created %d, exists %d; want 1 and 19", created.Load(), exists.Load())
		}
	})
}

func TestPosts(t *testing.T) {
	backends(t, func(t *testing.T, src db.Source) {
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		var mu sync.Mutex
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); now = now.Add(time.Second); return now }
		d := open(t, src, db.WithClock(clock))
		alice, bob := newUser("alice@example.com"), newUser("bob@example.com")
		for _, u := range []*db.User{alice, bob} {
			if err := d.CreateUser(ctx, u); err != nil {
				t.Fatal(err)
			}
		}
		post := func(author *db.User, title, status string) *db.Post {
			p := &db.Post{ID: security.NewID(), AuthorID: author.ID, Title: title, Body: "body of " + title, Status: status}
			if err := d.CreatePost(ctx, p); err != nil {
				t.Fatal(err)
			}
			return p
		}
		p1 := post(alice, "one", "published")
		post(alice, "draft", "draft")
		post(bob, "two", "published")
		if err := d.CreatePost(ctx, &db.Post{ID: security.NewID(), AuthorID: "nobody", Title: "x", Status: "published"}); err == nil {
			t.Errorf("a post by an unknown author was stored")
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
		got.Title, got.Status = "one, edited", "draft"
		if err := d.UpdatePost(ctx, got); err != nil {
			t.Fatal(err)
		}
		again, _ := d.Post(ctx, p1.ID)
		if again.Title != "one, edited" || again.Status != "draft" || !again.Updated.After(again.Created) {
			t.Errorf("after UpdatePost: %+v", again)
		}
		if err := d.DeletePost(ctx, p1.ID); err != nil {
			t.Fatal(err)
		}
		for name, err := range map[string]error{
			"Post":       func() error { _, err := d.Post(ctx, p1.ID); return err }(),
			"UpdatePost": d.UpdatePost(ctx, &db.Post{ID: p1.ID, Status: "draft"}),
			"DeletePost": d.DeletePost(ctx, p1.ID),
		} {
			if !errors.Is(err, db.ErrNotFound) {
				t.Errorf("%s of a deleted post = %v, want ErrNotFound", name, err)
			}
		}
	})
}

func TestAPIKeys(t *testing.T) {
	backends(t, func(t *testing.T, src db.Source) {
		d := open(t, src)
		alice := newUser("alice@example.com")
		if err := d.CreateUser(ctx, alice); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC().Truncate(time.Microsecond)
		key := func(id string, created time.Time, ttl time.Duration) *security.APIKey {
			k := &security.APIKey{ID: id, Subject: alice.ID, Name: "ci " + id, Prefix: "sg_" + id, Scopes: []string{"posts:read", "posts:write"},
				SecretHash: []byte{0, 1, 2, 0xfe, 0xff}, AccountVersion: 3, Created: created, Expires: created.Add(ttl)}
			if err := d.CreateAPIKey(ctx, k, 0); err != nil {
				t.Fatal(err)
			}
			return k
		}
		k1 := key("k1", now.Add(-time.Minute), time.Hour)
		key("k2", now, time.Hour)
		key("gone", now.Add(-2*time.Hour), time.Hour) // expired
		got, err := d.APIKey(ctx, "k1")
		if err != nil || got.Subject != alice.ID || got.Name != "ci k1" || got.Prefix != "sg_k1" || strings.Join(got.Scopes, " ") != "posts:read posts:write" ||
			string(got.SecretHash) != string(k1.SecretHash) || got.AccountVersion != 3 || !got.Created.Equal(k1.Created) || !got.Expires.Equal(k1.Expires) ||
			!got.LastUsed.IsZero() || !got.Revoked.IsZero() {
			t.Fatalf("APIKey = %+v, %v; want %+v", got, err, k1)
		}
		ids := func() string {
			t.Helper()
			ks, err := d.APIKeys(ctx, alice.ID)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, k := range ks {
				out = append(out, k.ID)
			}
			return strings.Join(out, ",")
		}
		if got := ids(); got != "k2,k1" {
			t.Errorf("APIKeys = %s, want k2,k1 (live, newest first)", got)
		}
		if n, err := d.CountAPIKeys(ctx, alice.ID); err != nil || n != 2 {
			t.Errorf("CountAPIKeys = %d, %v; want 2", n, err)
		}
		used := now.Add(time.Second)
		if err := d.TouchAPIKey(ctx, "k1", used); err != nil {
			t.Fatal(err)
		}
		_ = d.TouchAPIKey(ctx, "k1", used.Add(-time.Hour)) // never moves back
		if got, _ := d.APIKey(ctx, "k1"); !got.LastUsed.Equal(used) {
			t.Errorf("LastUsed = %v, want %v", got.LastUsed, used)
		}
		if err := d.RevokeAPIKey(ctx, "someone-else", "k1"); !errors.Is(err, db.ErrNotFound) {
			t.Errorf("RevokeAPIKey by another subject = %v, want ErrNotFound", err)
		}
		if err := d.RevokeAPIKey(ctx, alice.ID, "k1"); err != nil {
			t.Fatal(err)
		}
		if err := d.RevokeAPIKey(ctx, alice.ID, "k1"); !errors.Is(err, db.ErrNotFound) {
			t.Errorf("RevokeAPIKey twice = %v, want ErrNotFound", err)
		}
		if got, _ := d.APIKey(ctx, "k1"); got.Revoked.IsZero() {
			t.Errorf("a revoked key has no revocation time")
		}
		if got := ids(); got != "k2" {
			t.Errorf("APIKeys after a revocation = %s, want k2", got)
		}
		if err := d.RevokeAPIKeys(ctx, alice.ID); err != nil {
			t.Fatal(err)
		}
		if got := ids(); got != "" {
			t.Errorf("APIKeys after RevokeAPIKeys = %s, want none", got)
		}
		if _, err := d.APIKey(ctx, "nope"); !errors.Is(err, db.ErrNotFound) {
			t.Errorf("APIKey(nope) = %v, want ErrNotFound", err)
		}
	})
}

// The SQLite file holds password hashes: only its owner may read it.
func TestSQLiteFileIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "specguard.db")
	open(t, db.Source{Kind: db.SQLite, DSN: path})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("mode %o, want 600", mode)
	}
}

// A database that stops answering gives errors wrapping ErrUnavailable, and
// the same *DB works again once it is back, without reopening.
func TestPostgresDownAndBack(t *testing.T) {
	srv := pgtest.Start(t)
	d := open(t, db.Source{Kind: db.Postgres, DSN: srv.New(t)}, db.WithTimeout(2*time.Second))
	u := newUser("alice@example.com")
	if err := d.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if _, err := d.User(ctx, u.ID); !errors.Is(err, db.ErrUnavailable) {
		t.Fatalf("User with the database down = %v, want ErrUnavailable", err)
	}
	if err := d.CreateUser(ctx, newUser("bob@example.com")); !errors.Is(err, db.ErrUnavailable) {
		t.Fatalf("CreateUser with the database down = %v, want ErrUnavailable", err)
	}
	if err := d.Ping(ctx); !errors.Is(err, db.ErrUnavailable) {
		t.Fatalf("Ping with the database down = %v", err)
	}
	srv.Restart(t)
	if got, err := d.User(ctx, u.ID); err != nil || got.Email != u.Email {
		t.Fatalf("User after the restart = %+v, %v", got, err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	src, err := db.ParseURL("postgres://postgres:hunter2@127.0.0.1:1/none?connect_timeout=2", "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Open(ctx, src)
	if err == nil || !strings.Contains(err.Error(), "cannot reach the database postgres://postgres:xxxxx@127.0.0.1:1/none") ||
		strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Open(unreachable) = %v; want one line naming the database without its password", err)
	}
}
