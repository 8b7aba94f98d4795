package sqldb_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pressly/goose/v3/lock"

	"github.com/specguard/specguard/internal/pgtest"
	"github.com/specguard/specguard/sqldb"
)

var ctx = context.Background()

// backends runs one suite against every database, each test on a fresh
// database of its own.
func backends(t *testing.T, suite func(t *testing.T, src sqldb.Source)) {
	t.Run("sqlite", func(t *testing.T) {
		suite(t, sqldb.Source{Kind: sqldb.SQLite, DSN: filepath.Join(t.TempDir(), "specguard.db")})
	})
	t.Run("postgres", func(t *testing.T) {
		suite(t, sqldb.Source{Kind: sqldb.Postgres, DSN: pgtest.New(t)})
	})
}

// open0 opens src, closed when the test ends, without migrating it.
func open0(t *testing.T, src sqldb.Source, opts ...sqldb.Option) *sqldb.DB {
	t.Helper()
	d, err := sqldb.Open(ctx, src, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// testSet is the migrations of testdata: owners, then things.
func testSet(testing.TB) sqldb.Migrations {
	return sqldb.Migrations{Name: "test", FS: os.DirFS("testdata"), Dir: "migrations", Table: "test_version"}
}

func open(t *testing.T, src sqldb.Source, opts ...sqldb.Option) *sqldb.DB {
	t.Helper()
	d := open0(t, src, opts...)
	if _, _, err := d.Migrate(ctx, testSet(t), nil); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in       string
		kind     sqldb.Kind
		dsn, err string
	}{
		{in: "", kind: sqldb.SQLite, dsn: filepath.Join("data", "specguard.db")},
		{in: "sqlite:/var/lib/sg/app.db", kind: sqldb.SQLite, dsn: "/var/lib/sg/app.db"},
		{in: "sqlite://var/lib/sg/app.db", kind: sqldb.SQLite, dsn: "var/lib/sg/app.db"},
		{in: "sqlite:app.db", kind: sqldb.SQLite, dsn: "app.db"},
		{in: "postgres://u:p@db:5432/sg", kind: sqldb.Postgres, dsn: "postgres://u:p@db:5432/sg"},
		{in: "postgresql://db/sg?sslmode=disable", kind: sqldb.Postgres, dsn: "postgresql://db/sg?sslmode=disable"},
		{in: "sqlite:", err: "sqlite: needs a file path"},
		{in: "sqlite:a.db?mode=ro", err: "must not contain ? or #"},
		{in: "sqlite::memory:", err: "sqlite::memory:: not a file"},
		{in: "sqlite://:memory:", err: "sqlite::memory:: not a file"},
		{in: "mysql://db/sg", err: `"mysql:..." is not a database URL`},
		{in: "/var/lib/sg/app.db", err: "is not a database URL"},
		{in: "postgres://u:secret@db:notaport/sg", err: "postgres://u:xxxxx@db:notaport/sg: invalid port"},
		// pgx's own message masks a lower-case password= only.
		{in: "postgres://u@db/sg?PASSWORD=secret&sslmode=bogus", err: "PASSWORD=xxxxx&sslmode=bogus: failed to configure TLS"},
		// A password with an unencoded / parses as the host u: and a path.
		{in: "postgres://u:/secret@db:5432/sg", err: "postgres://u:xxxxx@db:5432/sg: an @ follows the host: percent-encode"},
		{in: "postgresql://u:2024/secret@db/sg", err: "an @ follows the host"},
		{in: "postgres://u:/se#cret@db/sg", err: "postgres://u:xxxxx@db/sg: an @ follows the host"},
		{in: "postgres://u:/secret?x@db/sg", err: "postgres://u:xxxxx@db/sg: an @ follows the host"},
		{in: "postgres://u:2024/se#cret@db/sg", err: "postgres://u:xxxxx@db/sg: an @ follows the host"},
		// A database's name may hold an @, a query's value too.
		{in: "postgres://db:5432/sg?application_name=a@b", kind: sqldb.Postgres, dsn: "postgres://db:5432/sg?application_name=a@b"},
		{in: "postgres://db/my@db", kind: sqldb.Postgres, dsn: "postgres://db/my@db"},
		// A keyword/value connection string has no scheme: what comes
		// before its first colon, or all of it, held the password.
		{in: "host=db user=app password=secret dbname=app", err: "a keyword/value connection string is not read"},
		{in: "password=secret host=db:5432", err: "a keyword/value connection string is not read"},
		{in: "  user=app password='se cret' host=db", err: "a keyword/value connection string is not read"},
		{in: "sec ret://db/sg", err: "is not a database URL"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			src, err := sqldb.ParseURL(tc.in, "data")
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
	backends(t, func(t *testing.T, src sqldb.Source) {
		d, err := sqldb.Open(ctx, src)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		set := testSet(t)
		current, known, err := d.Versions(ctx, set)
		if err != nil || current != 0 || known != 2 {
			t.Fatalf("Versions of a new database = %d, %d, %v", current, known, err)
		}
		// Reading the versions writes nothing (migrate --status says so).
		if _, err := d.ExecForTest(ctx, `SELECT 1 FROM test_version`); err == nil {
			t.Errorf("Versions created the version table of a database never migrated")
		}
		from, to, err := d.Migrate(ctx, set, nil)
		if err != nil || from != 0 || to != known {
			t.Fatalf("Migrate = %d -> %d, %v; want 0 -> %d", from, to, err, known)
		}
		if from, to, err = d.Migrate(ctx, set, nil); err != nil || from != known || to != known {
			t.Fatalf("Migrate again = %d -> %d, %v; want nothing to do", from, to, err)
		}
		// Another set keeps its versions apart.
		other := sqldb.Migrations{Name: "other", FS: fstest.MapFS{"00001_x.sql": {Data: []byte("-- +goose Up\nCREATE TABLE x (id TEXT);\n-- +goose Down\nDROP TABLE x;\n")}}, Table: "other_version"}
		if from, to, err := d.Migrate(ctx, other, nil); err != nil || from != 0 || to != 1 {
			t.Fatalf("Migrate of a second set = %d -> %d, %v; want 0 -> 1", from, to, err)
		}
		// A newer binary migrated the database: this one refuses it.
		newer := known + 1
		if _, err := d.ExecForTest(ctx, fmt.Sprintf(`INSERT INTO test_version (version_id, is_applied) VALUES (%d, true)`, newer)); err != nil {
			t.Fatal(err)
		}
		_, _, err = d.Migrate(ctx, set, nil)
		if !errors.Is(err, sqldb.ErrSchemaTooNew) {
			t.Fatalf("Migrate of a newer schema = %v, want ErrSchemaTooNew", err)
		}
		for _, v := range []string{fmt.Sprintf("version %d", newer), fmt.Sprintf("up to %d", known)} {
			if !strings.Contains(err.Error(), v) {
				t.Errorf("error %q does not name %q", err, v)
			}
		}
	})
}

// An applied migration must never change: the next migration refuses it,
// naming the file, and an unchanged one passes.
func TestEditedMigrationIsRefused(t *testing.T) {
	backends(t, func(t *testing.T, src sqldb.Source) {
		d := open(t, src)
		edited := fstest.MapFS{}
		for _, name := range []string{"00001_owners.sql", "00002_things.sql"} {
			data, err := os.ReadFile(filepath.Join("testdata", "migrations", name))
			if err != nil {
				t.Fatal(err)
			}
			edited[name] = &fstest.MapFile{Data: data}
		}
		set := sqldb.Migrations{Name: "test", FS: edited, Table: "test_version"}
		if _, _, err := d.Migrate(ctx, set, nil); err != nil {
			t.Fatalf("the same files again: %v", err)
		}
		edited["00002_things.sql"] = &fstest.MapFile{Data: append(edited["00002_things.sql"].Data, "-- a comment is an edit too\n"...)}
		_, _, err := d.Migrate(ctx, set, nil)
		if !errors.Is(err, sqldb.ErrMigrationChanged) || !strings.Contains(err.Error(), "00002_things.sql") {
			t.Fatalf("an edited applied migration: %v, want ErrMigrationChanged naming 00002_things.sql", err)
		}
	})
}

// Instances starting at once all migrate without error: the lock makes
// each migration run once.
func TestConcurrentMigrate(t *testing.T) {
	backends(t, func(t *testing.T, src sqldb.Source) {
		var wg sync.WaitGroup
		errs := make(chan error, 6)
		for range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d, err := sqldb.Open(ctx, src)
				if err != nil {
					errs <- err
					return
				}
				defer d.Close()
				_, _, err = d.Migrate(ctx, testSet(t), nil)
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
		if current, known, err := d.Versions(ctx, testSet(t)); err != nil || current != known {
			t.Errorf("after concurrent Migrate: version %d of %d, %v", current, known, err)
		}
	})
}

// While another instance migrates, Migrate waits for it before it reads or
// creates anything: its version and checksum tables appear only once the
// lock is free. A caller that gives up waiting gets an error and a
// database left as it was.
func TestMigrateWaitsForTheLock(t *testing.T) {
	backends(t, func(t *testing.T, src sqldb.Source) {
		other := open0(t, src)
		unlock, err := other.LockMigrationsForTest(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { unlock() }()
		tables := func() (found []string) {
			t.Helper()
			for _, table := range []string{"test_version", "test_version_sums", "owners"} {
				if _, err := other.ExecForTest(ctx, "SELECT count(*) FROM "+table); err == nil {
					found = append(found, table)
				}
			}
			return found
		}

		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		d := open0(t, src)
		if _, _, err := d.Migrate(short, testSet(t), nil); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting for the migration lock") {
			t.Errorf("Migrate giving up on a held lock: %v, want the caller's deadline, while waiting for the migration lock", err)
		}
		if found := tables(); len(found) > 0 {
			t.Errorf("after Migrate gave up waiting, the database has %v; want nothing created", found)
		}

		short, cancel = context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		if _, _, err := d.Versions(short, testSet(t)); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Versions while another instance held the lock: %v, want the caller's deadline", err)
		}
		if found := tables(); len(found) > 0 {
			t.Errorf("after Versions gave up waiting, the database has %v; want nothing created", found)
		}

		done := make(chan error, 1)
		go func() {
			_, _, err := d.Migrate(ctx, testSet(t), nil)
			done <- err
		}()
		select {
		case err := <-done:
			t.Fatalf("Migrate returned (%v) while another instance held the lock", err)
		case <-time.After(300 * time.Millisecond):
		}
		if found := tables(); len(found) > 0 {
			t.Errorf("while another instance held the lock, Migrate created %v", found)
		}
		unlock()
		unlock = func() {}
		if err := <-done; err != nil {
			t.Fatalf("Migrate once the lock was free: %v", err)
		}
		if found := tables(); len(found) != 3 {
			t.Errorf("after Migrate: tables %v, want test_version, test_version_sums and owners", found)
		}
	})
}

// On PostgreSQL the migration lock is held by the session that migrates.
// When that session ends in the middle of a migration (the server ends it,
// a proxy drops it), another instance may take the lock, so Migrate stops
// with ErrMigrationLockLost: the migration it was running rolls back, or,
// outside a transaction, runs no further; the next Migrate applies it.
func TestMigrationLockLost(t *testing.T) {
	for _, c := range []struct{ name, file string }{
		// In a transaction: what ran before the loss rolls back.
		{"in a transaction", "-- +goose Up\nCREATE TABLE slow (id INT);\nSELECT pg_sleep(4);\n-- +goose Down\nDROP TABLE slow;\n"},
		// Outside one: what comes after the loss never runs.
		{"no transaction", "-- +goose NO TRANSACTION\n-- +goose Up\nSELECT pg_sleep(4);\nCREATE TABLE slow (id INT);\n-- +goose Down\nDROP TABLE slow;\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dsn := pgtest.New(t)
			slow := sqldb.Migrations{Name: "slow", Table: "slow_version", FS: fstest.MapFS{"00001_slow.sql": {Data: []byte(c.file)}}}
			d := open0(t, sqldb.Source{Kind: sqldb.Postgres, DSN: dsn})
			other, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close(ctx)

			done := make(chan error, 1)
			go func() {
				_, _, err := d.Migrate(ctx, slow, nil)
				done <- err
			}()
			// The session holding an advisory lock on this database, once
			// it runs the migration's pg_sleep.
			var pid int32
			for deadline := time.Now().Add(10 * time.Second); pid == 0; {
				if time.Now().After(deadline) {
					t.Fatal("no session holding the migration lock ran the migration within 10s")
				}
				err := other.QueryRow(ctx, `SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
					WHERE l.locktype = 'advisory' AND l.granted AND a.state = 'active' AND a.query LIKE '%pg_sleep%'
					AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&pid)
				if err != nil && !errors.Is(err, pgx.ErrNoRows) {
					t.Fatal(err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if _, err := other.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
				t.Fatal(err)
			}
			err = <-done
			if !errors.Is(err, sqldb.ErrMigrationLockLost) || !strings.Contains(err.Error(), "migrating slow of the database") {
				t.Fatalf("Migrate after its lock's session ended: %v, want ErrMigrationLockLost, naming the set and the database", err)
			}
			var exists bool
			if err := other.QueryRow(ctx, `SELECT to_regclass('slow') IS NOT NULL`).Scan(&exists); err != nil {
				t.Fatal(err)
			}
			if exists {
				t.Error("the migration running when the lock was lost went on; want it stopped, and rolled back")
			}
			if from, to, err := d.Migrate(ctx, slow, nil); err != nil || from != 0 || to != 1 {
				t.Fatalf("Migrate again: from %d to %d, %v; want from 0 to 1", from, to, err)
			}
		})
	}
}

// A caller that gives up in the middle of a migration is told so, not that
// the lock was lost (pgx ends the session of a statement it abandons,
// which releases the lock too), and the migration rolls back.
func TestMigrateCancelled(t *testing.T) {
	dsn := pgtest.New(t)
	slow := sqldb.Migrations{Name: "slow", Table: "slow_version", FS: fstest.MapFS{
		"00001_slow.sql": {Data: []byte("-- +goose Up\nCREATE TABLE slow (id INT);\nSELECT pg_sleep(10);\n")},
	}}
	d := open0(t, sqldb.Source{Kind: sqldb.Postgres, DSN: dsn})
	c, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, _, err := d.Migrate(c, slow, nil)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, sqldb.ErrMigrationLockLost) || !strings.Contains(err.Error(), "migrating slow of the database") {
		t.Fatalf("Migrate past its deadline: %v; want DeadlineExceeded, not ErrMigrationLockLost, naming the set and the database", err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('slow') IS NOT NULL`).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Error("the migration abandoned by its caller was committed")
	}
}

// Every statement of a migration on PostgreSQL runs in the session that
// holds the migration lock: none can run once another instance may hold
// it.
func TestMigrationRunsInTheLockSession(t *testing.T) {
	dsn := pgtest.New(t)
	d := open0(t, sqldb.Source{Kind: sqldb.Postgres, DSN: dsn})
	// goose's lock id, a bigint kept as its high 32 bits (classid) and
	// low ones (objid).
	held := fmt.Sprintf("SELECT pg_backend_pid(), count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted AND classid = %d AND objid = %d AND objsubid = 1",
		uint32(uint64(lock.DefaultLockID)>>32), uint32(lock.DefaultLockID))
	set := sqldb.Migrations{Name: "held", Table: "held_version", FS: fstest.MapFS{
		"00001_tx.sql":   {Data: []byte("-- +goose Up\nCREATE TABLE held AS SELECT 'tx' AS name, h.* FROM (" + held + ") AS h(pid, locks);\n")},
		"00002_notx.sql": {Data: []byte("-- +goose NO TRANSACTION\n-- +goose Up\nINSERT INTO held SELECT 'notx', h.* FROM (" + held + ") AS h(pid, locks);\n")},
	}}
	if _, to, err := d.Migrate(ctx, set, nil); err != nil || to != 2 {
		t.Fatalf("Migrate: to %d, %v", to, err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT name, pid, locks FROM held ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	pids := map[int32]bool{}
	n := 0
	for rows.Next() {
		var name string
		var pid int32
		var locks int
		if err := rows.Scan(&name, &pid, &locks); err != nil {
			t.Fatal(err)
		}
		n++
		pids[pid] = true
		if locks != 1 {
			t.Errorf("migration %s ran in a session that does not hold the migration lock", name)
		}
	}
	if err := rows.Err(); err != nil || n != 2 || len(pids) != 1 {
		t.Fatalf("the 2 migrations ran %d times in sessions %v (%v), want once each in one", n, pids, err)
	}
}

// A constraint the database refuses is no outage: ErrExists for a unique
// key, a *ConstraintError naming its kind (and name, where the database
// says it) for the others, never ErrUnavailable.
func TestConstraintErrors(t *testing.T) {
	backends(t, func(t *testing.T, src sqldb.Source) {
		d := open(t, src)
		if _, err := d.Exec(ctx, `INSERT INTO owners (id, name) VALUES (?, ?)`, "o1", "ann"); err != nil {
			t.Fatal(err)
		}
		_, err := d.Exec(ctx, `INSERT INTO owners (id, name) VALUES (?, ?)`, "o2", "ann")
		if !errors.Is(err, sqldb.ErrExists) {
			t.Errorf("a taken unique name: %v, want ErrExists", err)
		}
		for _, c := range []struct {
			name, kind, constraint string
			query                  string
			args                   []any
			postgres               bool // only PostgreSQL refuses it
		}{
			{"unknown owner", "foreign key", "things_owner", `INSERT INTO things (id, owner_id, size) VALUES (?, ?, ?)`, []any{"t1", "nobody", 1}, false},
			{"bad size", "check", "things_size", `INSERT INTO things (id, owner_id, size) VALUES (?, ?, ?)`, []any{"t2", "o1", 0}, false},
			{"owner still named", "foreign key", "things_owner", `DELETE FROM owners WHERE id = ?`, []any{"o1"}, false},
			// PostgreSQL's text holds no NUL: a data exception, the
			// request's fault, which sending again does not mend.
			{"a NUL in text", "value", "", `INSERT INTO owners (id, name) VALUES (?, ?)`, []any{"o3", "a\x00b"}, true},
			{"a NUL in a lookup", "value", "", `SELECT id FROM owners WHERE name = ?`, []any{"a\x00b"}, true},
		} {
			if c.postgres && src.Kind != sqldb.Postgres {
				continue
			}
			if c.name == "owner still named" {
				if _, err := d.Exec(ctx, `INSERT INTO things (id, owner_id, size) VALUES (?, ?, ?)`, "t3", "o1", 1); err != nil {
					t.Fatal(err)
				}
			}
			_, err := d.Exec(ctx, c.query, c.args...)
			var ce *sqldb.ConstraintError
			if !errors.As(err, &ce) || errors.Is(err, sqldb.ErrUnavailable) || ce.Kind != c.kind {
				t.Errorf("%s: %v, want a %s ConstraintError", c.name, err, c.kind)
				continue
			}
			if src.Kind == sqldb.Postgres && ce.Name != c.constraint {
				t.Errorf("%s: constraint %q, want %q", c.name, ce.Name, c.constraint)
			}
		}
	})
}

// The SQLite file holds password hashes: only its owner may read it.
func TestSQLiteFileIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "specguard.db")
	open(t, sqldb.Source{Kind: sqldb.SQLite, DSN: path})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("mode %o, want 600", mode)
	}
	// One made otherwise that others may read (copied, restored) is
	// refused, naming it, and so is its -wal: SQLite served it as it was.
	for _, name := range []string{"specguard.db", "specguard.db-wal"} {
		dir := t.TempDir()
		db := filepath.Join(dir, "specguard.db")
		for _, p := range []string{db, filepath.Join(dir, name)} {
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(filepath.Join(dir, name), 0o644); err != nil {
			t.Fatal(err)
		}
		d, err := sqldb.Open(context.Background(), sqldb.Source{Kind: sqldb.SQLite, DSN: db})
		if err == nil {
			d.Close()
		}
		if want := "sqlite:" + filepath.Join(dir, name) + ": mode 0644 lets other users read the accounts' password hashes; chmod 600 it"; err == nil || err.Error() != want {
			t.Errorf("%s of mode 0644: %v, want %q", name, err, want)
		}
	}
	// One owned by another user, who may read it whatever its mode, is
	// refused too (giving a file away needs root, as CI runs).
	if os.Geteuid() == 0 {
		dir := t.TempDir()
		db := filepath.Join(dir, "specguard.db")
		if err := os.WriteFile(db, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(db, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		d, err := sqldb.Open(context.Background(), sqldb.Source{Kind: sqldb.SQLite, DSN: db})
		if err == nil {
			d.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "sqlite:"+db+": owned by uid 65534") {
			t.Errorf("a file owned by uid 65534: %v, want it refused", err)
		}
	}
	// Through a link, the -wal beside the file it leads to, which SQLite
	// writes, is the one checked.
	dir := t.TempDir()
	real := filepath.Join(dir, "real.db")
	for _, p := range []string{real, real + "-wal"} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(real+"-wal", 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "link.db")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	d, err := sqldb.Open(context.Background(), sqldb.Source{Kind: sqldb.SQLite, DSN: link})
	if err == nil {
		d.Close()
	}
	if err == nil || !strings.Contains(err.Error(), real+"-wal: mode 0644") {
		t.Errorf("a link to a file whose -wal others may read: %v, want it refused", err)
	}
}

// A path holding what a file: URI decodes ("%41" is A) is the file named:
// SQLite wrote to dataA.db, with the umask's mode, beside an empty
// data%41.db of mode 0600.
func TestSQLitePathIsTaken(t *testing.T) {
	dir := t.TempDir()
	// A path of two leading slashes is a path on Linux, not a URI's host.
	slashes := "/" + filepath.Join(t.TempDir(), "slashes.db")
	if _, err := open0(t, sqldb.Source{Kind: sqldb.SQLite, DSN: slashes}).Exec(context.Background(), "CREATE TABLE t (x INTEGER)"); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(slashes); err != nil || fi.Size() == 0 {
		t.Errorf("%s: %v, %v; want the database", slashes, fi, err)
	}
	src, err := sqldb.ParseURL("sqlite:"+filepath.Join(dir, "data%41 %25.db"), "")
	if err != nil {
		t.Fatal(err)
	}
	d := open(t, src)
	if _, err := d.Exec(context.Background(), "CREATE TABLE t (x INTEGER)"); err != nil {
		t.Fatal(err)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, n := range names {
		if base := filepath.Base(n); !strings.HasPrefix(base, "data%41 %25.db") {
			t.Errorf("made %s", base)
		}
	}
	fi, err := os.Stat(src.DSN)
	if err != nil || fi.Size() == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("the file named: %v, %v; want the database, mode 600", fi, err)
	}
}

type owner struct{ id, name string }

func scanOwner(row sqldb.Scanner) (*owner, error) {
	var o owner
	return &o, row.Scan(&o.id, &o.name)
}

// A database that stops answering gives errors wrapping ErrUnavailable, and
// the same *DB works again once it is back, without reopening.
func TestPostgresDownAndBack(t *testing.T) {
	srv := pgtest.Start(t)
	d := open(t, sqldb.Source{Kind: sqldb.Postgres, DSN: srv.New(t)}, sqldb.WithTimeout(2*time.Second))
	if _, err := d.Exec(ctx, `INSERT INTO owners (id, name) VALUES (?, ?)`, "o1", "ann"); err != nil {
		t.Fatal(err)
	}
	get := func() (*owner, error) {
		return sqldb.Get(ctx, d, scanOwner, `SELECT id, name FROM owners WHERE id = ?`, "o1")
	}
	srv.Stop()
	if _, err := get(); !errors.Is(err, sqldb.ErrUnavailable) {
		t.Fatalf("a read with the database down = %v, want ErrUnavailable", err)
	}
	if _, err := d.Exec(ctx, `INSERT INTO owners (id, name) VALUES (?, ?)`, "o2", "bob"); !errors.Is(err, sqldb.ErrUnavailable) {
		t.Fatalf("a write with the database down = %v, want ErrUnavailable", err)
	}
	if err := d.Ping(ctx); !errors.Is(err, sqldb.ErrUnavailable) {
		t.Fatalf("Ping with the database down = %v", err)
	}
	srv.Restart(t)
	if got, err := get(); err != nil || got.name != "ann" {
		t.Fatalf("a read after the restart = %+v, %v", got, err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	src, err := sqldb.ParseURL("postgres://postgres:hunter2@127.0.0.1:1/none?connect_timeout=2", "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = sqldb.Open(ctx, src)
	if err == nil || !strings.Contains(err.Error(), "cannot reach the database postgres://postgres:xxxxx@127.0.0.1:1/none") ||
		strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Open(unreachable) = %v; want one line naming the database without its password", err)
	}
}

// Instances with Redis hold the instance lock shared, together; one
// without holds it alone. On PostgreSQL a shared holder whose connection
// drops serves on (Held) while it takes the lock again; once another took
// it exclusive meanwhile it stops (ErrInUse), and a lost connection after
// that does not make it count as held again.
func TestSharedInstanceLock(t *testing.T) {
	backends(t, func(t *testing.T, src sqldb.Source) {
		a, b, c := open0(t, src), open0(t, src), open0(t, src)
		s1, err := a.ShareInstance(ctx, 50*time.Millisecond, func(error) {})
		if err != nil {
			t.Fatal(err)
		}
		defer s1.Release()
		s2, err := b.ShareInstance(ctx, 50*time.Millisecond, func(error) {})
		if err != nil {
			t.Fatalf("a second shared holder: %v", err)
		}
		if _, err := c.LockInstance(ctx, 50*time.Millisecond, func(error) {}); !errors.Is(err, sqldb.ErrInUse) {
			t.Fatalf("exclusive beside shared holders: %v, want ErrInUse", err)
		}
		s2.Release()
		if src.Kind != sqldb.Postgres {
			s1.Release()
			x, err := c.LockInstance(ctx, time.Second, func(error) {})
			if err != nil {
				t.Fatalf("exclusive once the shared holders are gone: %v", err)
			}
			defer x.Release()
			if _, err := a.ShareInstance(ctx, time.Second, func(error) {}); !errors.Is(err, sqldb.ErrInUse) {
				t.Fatalf("shared beside an exclusive holder: %v, want ErrInUse", err)
			}
			return
		}
		admin, err := pgx.Connect(ctx, src.DSN)
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close(ctx)
		kill := func() {
			t.Helper()
			// This database's holders only: the server is shared with the
			// other packages' tests, whose instances hold the same lock
			// in databases of their own.
			if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'
				AND objid = $1 AND pid <> pg_backend_pid()
				AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, 0x73706567); err != nil {
				t.Fatal(err)
			}
		}
		// Its connection dropped: it serves on, and takes the lock again.
		kill()
		for range 6 {
			if !s1.Held() {
				t.Fatal("a shared holder whose connection dropped stopped serving at once")
			}
			time.Sleep(20 * time.Millisecond)
		}
		// Dropped again, and an instance without Redis takes the lock first.
		var x *sqldb.InstanceLock
		for deadline := time.Now().Add(5 * time.Second); x == nil; {
			kill()
			if x, err = c.LockInstance(ctx, time.Hour, func(error) {}); err != nil && time.Now().After(deadline) {
				t.Fatalf("could not take the lock exclusive between two checks: %v", err)
			}
		}
		defer x.Release()
		for deadline := time.Now().Add(5 * time.Second); s1.Held(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("a shared holder kept serving beside an exclusive one")
			}
		}
		// Its connections now fail for another reason (the database takes
		// none, the exclusive holder keeps its own): it must not count as
		// held again.
		var name string
		if err := admin.QueryRow(ctx, `SELECT current_database()`).Scan(&name); err != nil {
			t.Fatal(err)
		}
		cfg, err := pgx.ParseConfig(src.DSN)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Database = "postgres" // a database cannot refuse connections from its own
		root, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer root.Close(ctx)
		if _, err := root.Exec(ctx, `ALTER DATABASE `+pgx.Identifier{name}.Sanitize()+` ALLOW_CONNECTIONS false`); err != nil {
			t.Fatal(err)
		}
		defer root.Exec(ctx, `ALTER DATABASE `+pgx.Identifier{name}.Sanitize()+` ALLOW_CONNECTIONS true`)
		for range 10 {
			if s1.Held() {
				t.Fatal("a shared holder counted as held again while another holds the lock exclusive")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// Instances that share the lock each have an ID, and each lists the
// others' (and only while they hold it): what lets an instance find one
// beside it that keeps its state in another Redis.
func TestSharersListEachOther(t *testing.T) {
	backends(t, func(t *testing.T, src sqldb.Source) {
		a, b, c := open0(t, src), open0(t, src), open0(t, src)
		others := func(l *sqldb.InstanceLock) []string {
			t.Helper()
			ids, err := l.Others(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return ids
		}
		s1, err := a.ShareInstance(ctx, 50*time.Millisecond, func(error) {})
		if err != nil {
			t.Fatal(err)
		}
		defer s1.Release()
		if got := others(s1); len(got) != 0 {
			t.Fatalf("alone, the sharer lists %v", got)
		}
		s2, err := b.ShareInstance(ctx, 50*time.Millisecond, func(error) {})
		if err != nil {
			t.Fatal(err)
		}
		if s1.ID() == "" || s2.ID() == "" || s1.ID() == s2.ID() {
			t.Fatalf("sharers' IDs %q and %q, want two different ones", s1.ID(), s2.ID())
		}
		if got := others(s1); len(got) != 1 || got[0] != s2.ID() {
			t.Fatalf("the first sharer lists %v, want [%s]", got, s2.ID())
		}
		if got := others(s2); len(got) != 1 || got[0] != s1.ID() {
			t.Fatalf("the second sharer lists %v, want [%s]", got, s1.ID())
		}
		if src.Kind == sqldb.Postgres {
			// The first one's connection drops: it takes the lock again
			// under the same ID.
			admin, err := pgx.Connect(ctx, src.DSN)
			if err != nil {
				t.Fatal(err)
			}
			defer admin.Close(ctx)
			var id int64
			fmt.Sscanf(s1.ID(), "%x", &id)
			holder := func() (pid int) {
				_ = admin.QueryRow(ctx, `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = $1
					AND objid = $2 AND objsubid = 2 AND granted
					AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, 0x73706573, id).Scan(&pid)
				return pid
			}
			was := holder()
			if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend($1)`, was); err != nil {
				t.Fatal(err)
			}
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				if now := holder(); now != 0 && now != was {
					break
				} else if time.Now().After(deadline) {
					t.Fatalf("after its connection dropped, the first sharer did not take its ID %s again (held by %d, was %d)", s1.ID(), now, was)
				}
			}
			if got := others(s2); len(got) != 1 || got[0] != s1.ID() {
				t.Fatalf("after its connection dropped, the first sharer is listed as %v, want [%s]", got, s1.ID())
			}
		}
		s2.Release()
		if got := others(s1); len(got) != 0 {
			t.Fatalf("a sharer gone is still listed: %v", got)
		}
		if src.Kind == sqldb.SQLite {
			// A sharer's file that no process holds is a dead one's:
			// not listed, and removed.
			dead := src.DSN + ".sharer-0badc0de"
			if err := os.WriteFile(dead, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if got := others(s1); len(got) != 0 {
				t.Fatalf("a dead sharer is listed: %v", got)
			}
			if _, err := os.Stat(dead); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a dead sharer's file is left: %v", err)
			}
			s1.Release()
			left, _ := filepath.Glob(src.DSN + ".sharer-*")
			if len(left) != 0 {
				t.Fatalf("released sharers left %v", left)
			}
		} else {
			s1.Release()
		}
		x, err := c.LockInstance(ctx, time.Hour, func(error) {})
		if err != nil {
			t.Fatal(err)
		}
		defer x.Release()
		if x.ID() != "" || len(others(x)) != 0 {
			t.Fatalf("an exclusive holder has the ID %q and lists %v", x.ID(), others(x))
		}
	})
}

// A PostgreSQL session the server has not seen end holds what its
// instance held: a dead host's (until the server's TCP keepalive gives
// up, hours by default), or this instance's own old one after a
// half-open connection. The dead one was listed, its mark gone from Redis,
// and the host's replacement refused; the instance could not take its own
// ID again beside its old session, and lost its lock (503 on every
// request). A holder idle for three keepalives is not listed, and an ID is
// held shared.
func TestSessionsLeftBehindHoldNothingUp(t *testing.T) {
	src := sqldb.Source{Kind: sqldb.Postgres, DSN: pgtest.New(t)}
	a := open0(t, src)
	var lost atomic.Int32
	s1, err := a.ShareInstance(ctx, 50*time.Millisecond, func(err error) {
		if err != nil {
			lost.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Release()
	connect := func() *pgx.Conn {
		t.Helper()
		c, err := pgx.Connect(ctx, src.DSN)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(ctx) })
		return c
	}
	const dead = 12345 // a dead host's ID, "00003039"
	left := connect()
	if _, err := left.Exec(ctx, `SELECT pg_advisory_lock_shared($1::bigint), pg_advisory_lock_shared($2::int4, $3::int4)`, int64(0x73706567), 0x73706573, dead); err != nil {
		t.Fatal(err)
	}
	listed := func(want bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			ids, err := s1.Others(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if slices.Contains(ids, "00003039") == want {
				return
			} else if time.Now().After(deadline) {
				t.Fatalf("the session left behind: listed %v, want listed %v", ids, want)
			}
		}
	}
	listed(false) // idle three keepalives
	if _, err := left.Exec(ctx, `SELECT 1`); err != nil {
		t.Fatal(err)
	}
	listed(true) // at work: an instance, whatever its Redis

	// This instance's own session outlives its connection: another
	// session takes what it held, as the server would keep the old one.
	var id int64
	fmt.Sscanf(s1.ID(), "%x", &id)
	admin := connect()
	var pid int
	if err := admin.QueryRow(ctx, `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = $1 AND objid = $2 AND objsubid = 2
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, 0x73706573, id).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	old := connect()
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Exec(ctx, `SELECT pg_advisory_lock_shared($1::bigint), pg_advisory_lock_shared($2::int4, $3::int4)`, int64(0x73706567), 0x73706573, int32(id)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var holders int
		if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = $1 AND objid = $2 AND objsubid = 2 AND granted
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, 0x73706573, id).Scan(&holders); err != nil {
			t.Fatal(err)
		}
		if holders == 2 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("beside its old session, the instance did not take its ID again (%d holders; lock held: %v)", holders, s1.Held())
		}
	}
	time.Sleep(300 * time.Millisecond) // sharedGrace keepalives and more
	if !s1.Held() || lost.Load() > 1 {
		t.Errorf("beside its old session: held %v, %d losses reported", s1.Held(), lost.Load())
	}
	if ids, err := s1.Others(ctx); err != nil || slices.Contains(ids, s1.ID()) {
		t.Errorf("the instance lists its own ID beside its old session: %v, %v", ids, err)
	}
}

// A sharer listing the others holds each file a moment to see whether it
// is held: one made at that moment by a starting sharer made its start
// fail ("locked by another process").
func TestSharersStartWhileOthersList(t *testing.T) {
	src := sqldb.Source{Kind: sqldb.SQLite, DSN: filepath.Join(t.TempDir(), "specguard.db")}
	a, b := open0(t, src), open0(t, src)
	s1, err := a.ShareInstance(ctx, time.Hour, func(error) {})
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Release()
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for !stop.Load() {
			_, _ = s1.Others(ctx)
		}
	})
	defer func() { stop.Store(true); wg.Wait() }()
	for range 1000 {
		s2, err := b.ShareInstance(ctx, time.Hour, func(error) {})
		if err != nil {
			t.Fatalf("a sharer starting while another lists: %v", err)
		}
		s2.Release()
	}
}

// A migration written in Go runs once, in its version's turn, with $n
// placeholders on both databases, and has no checksum to hold it.
func TestGoMigration(t *testing.T) {
	backends(t, func(t *testing.T, src sqldb.Source) {
		d := open0(t, src)
		runs := 0
		set := sqldb.Migrations{Name: "go", Table: "go_version",
			FS: fstest.MapFS{"00001_x.sql": {Data: []byte("-- +goose Up\nCREATE TABLE x (id TEXT, n INTEGER);\n-- +goose Down\nDROP TABLE x;\n")}},
			Go: map[int64]func(context.Context, *sql.Tx) error{2: func(ctx context.Context, tx *sql.Tx) error {
				runs++
				_, err := tx.ExecContext(ctx, `INSERT INTO x (id, n) VALUES ($1, $2)`, "a", 7)
				return err
			}},
		}
		for range 2 {
			if _, to, err := d.Migrate(ctx, set, nil); err != nil || to != 2 {
				t.Fatalf("Migrate = %d, %v; want version 2", to, err)
			}
		}
		n, err := sqldb.Get(ctx, d, func(row sqldb.Scanner) (*int, error) { var n int; return &n, row.Scan(&n) }, `SELECT n FROM x WHERE id = ?`, "a")
		if err != nil || *n != 7 || runs != 1 {
			t.Errorf("after migrating twice: n = %v (%v), %d runs; want 7 and 1", n, err, runs)
		}
	})
}

// One SQLite database reached through a symbolic link has one instance
// lock and one migration lock: a second instance on the link is refused
// beside one on the file itself.
func TestInstanceLockThroughASymlink(t *testing.T) {
	file := filepath.Join(t.TempDir(), "specguard.db")
	link := filepath.Join(t.TempDir(), "app.db")
	direct := open0(t, sqldb.Source{Kind: sqldb.SQLite, DSN: file})
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	linked := open0(t, sqldb.Source{Kind: sqldb.SQLite, DSN: link})
	l, err := direct.LockInstance(ctx, time.Second, func(error) {})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if _, err := linked.LockInstance(ctx, time.Second, func(error) {}); !errors.Is(err, sqldb.ErrInUse) {
		t.Errorf("the instance lock through a link to a locked file: %v, want ErrInUse", err)
	}
}

// On PostgreSQL the instance lock is the database's, whatever the schema
// (search_path), as every version took it: an instance of a version
// before this one holds off one of this version in any schema (a rolling
// update), and instances in two schemas hold each other off.
func TestInstanceLockIsTheDatabases(t *testing.T) {
	url := pgtest.New(t)
	admin := open0(t, sqldb.Source{Kind: sqldb.Postgres, DSN: url})
	if _, err := admin.Exec(ctx, "CREATE SCHEMA tenant_a"); err != nil {
		t.Fatal(err)
	}
	in := func(schema string) *sqldb.DB {
		return open0(t, sqldb.Source{Kind: sqldb.Postgres, DSN: url + "&search_path=" + schema})
	}
	// The lock as versions before this one took it, on a session of its own.
	old, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close(ctx)
	if _, err := old.Exec(ctx, `SELECT pg_advisory_lock(1936745831)`); err != nil { // 0x73706567
		t.Fatal(err)
	}
	if _, err := in("tenant_a").LockInstance(ctx, time.Second, func(error) {}); !errors.Is(err, sqldb.ErrInUse) {
		t.Errorf("beside an instance of an earlier version, in schema tenant_a: %v, want ErrInUse", err)
	}
	if _, err := in("tenant_a").ShareInstance(ctx, time.Second, func(error) {}); !errors.Is(err, sqldb.ErrInUse) {
		t.Errorf("shared, beside an instance of an earlier version, in schema tenant_a: %v, want ErrInUse", err)
	}
	if _, err := old.Exec(ctx, `SELECT pg_advisory_unlock_all()`); err != nil {
		t.Fatal(err)
	}
	l, err := in("public").LockInstance(ctx, 50*time.Millisecond, func(error) {})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	time.Sleep(200 * time.Millisecond) // keepalives find it still held
	if !l.Held() {
		t.Error("the lock is no longer held after keepalives")
	}
	if _, err := in("tenant_a").LockInstance(ctx, time.Second, func(error) {}); !errors.Is(err, sqldb.ErrInUse) {
		t.Errorf("in schema tenant_a beside one in public: %v, want ErrInUse", err)
	}
}

// A pooled connection whose session the server ended (an administrator,
// a proxy, a restart) is replaced when a statement finds it so: the
// statement runs on another, and the caller sees no outage, for a read,
// a write and a transaction alike.
func TestEndedSessionsAreReplaced(t *testing.T) {
	url := pgtest.New(t)
	d := open(t, sqldb.Source{Kind: sqldb.Postgres, DSN: url}, sqldb.WithPoolSize(1))
	admin := open0(t, sqldb.Source{Kind: sqldb.Postgres, DSN: url})
	end := func() {
		t.Helper()
		// Every session of the database but admin's own.
		if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // the FATAL reaches the pooled connection
	}
	count := func() (int64, error) { return d.Count(ctx, `SELECT count(*) FROM owners`) }
	for _, c := range []struct {
		name string
		run  func() error
	}{
		{"a read", func() error { _, err := count(); return err }},
		{"a list", func() error {
			_, err := sqldb.List(ctx, d, func(r sqldb.Scanner) (*string, error) { var s string; return &s, r.Scan(&s) }, `SELECT id FROM owners`)
			return err
		}},
		{"a write", func() error {
			_, err := d.Exec(ctx, `INSERT INTO owners (id, name) VALUES (?, ?)`, "w1", "w1")
			return err
		}},
		{"a transaction", func() error {
			return d.Tx(ctx, func(tx *sqldb.Tx) error {
				_, err := tx.Exec(`INSERT INTO owners (id, name) VALUES (?, ?)`, "t1", "t1")
				return err
			})
		}},
	} {
		if _, err := count(); err != nil { // the pool's one connection, warm
			t.Fatal(err)
		}
		end()
		if err := c.run(); err != nil {
			t.Errorf("%s on a connection whose session ended: %v", c.name, err)
		}
	}
	if n, err := count(); err != nil || n != 2 {
		t.Errorf("owners: %d, %v; want the write and the transaction's, once each", n, err)
	}
}

// A restart ends every pooled connection at once: a statement goes on to
// the next one until one is new, so no request fails while the database
// serves on.
func TestEveryPooledSessionEnded(t *testing.T) {
	url := pgtest.New(t)
	d := open(t, sqldb.Source{Kind: sqldb.Postgres, DSN: url}, sqldb.WithPoolSize(4))
	admin := open0(t, sqldb.Source{Kind: sqldb.Postgres, DSN: url})
	for range 2 { // four connections, each used twice, at once
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if _, err := d.Count(ctx, `SELECT count(*) FROM (SELECT pg_sleep(0.1)) s`); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	for i := range 4 {
		if _, err := d.Count(ctx, `SELECT count(*) FROM owners`); err != nil {
			t.Errorf("request %d after every session ended: %v", i, err)
		}
	}
}

// A ? in a string constant, a quoted identifier or a comment is no
// placeholder: on PostgreSQL 'who?' was stored as 'who$1', and a ? in a
// comment shifted the numbers after it, which SQLite, parsing the SQL
// itself, never did.
func TestQuestionMarksOutsidePlaceholders(t *testing.T) {
	backends(t, func(t *testing.T, src sqldb.Source) {
		d := open(t, src)
		if _, err := d.Exec(ctx, `INSERT INTO owners (id, name) -- who? which?
			VALUES (?, 'who?' || /* why? */ ?)`, "o1", " and why?"); err != nil {
			t.Fatal(err)
		}
		type row struct{ name string }
		got, err := sqldb.Get(ctx, d, func(s sqldb.Scanner) (*row, error) { var r row; return &r, s.Scan(&r.name) },
			`SELECT name FROM owners WHERE id = ? AND name <> 'it''s?'`, "o1")
		if err != nil || got.name != "who? and why?" {
			t.Errorf("stored %+v (%v), want who? and why?", got, err)
		}
	})
	for in, want := range map[string]string{
		`SELECT ? , ?`:                        `SELECT $1 , $2`,
		`SELECT 'a?' , ?`:                     `SELECT 'a?' , $1`,
		`SELECT 'it''s?' , ?`:                 `SELECT 'it''s?' , $1`,
		`SELECT E'it\'s?' , ?`:                `SELECT E'it\'s?' , $1`,
		`SELECT name'?' , ?`:                  `SELECT name'?' , $1`, // no E: '...' without escapes
		`SELECT "odd?col" , ?`:                `SELECT "odd?col" , $1`,
		`SELECT $$a?$$ , $x$b?$$c?$x$ , ?`:    `SELECT $$a?$$ , $x$b?$$c?$x$ , $1`,
		"SELECT ? -- ?\n, ?":                  "SELECT $1 -- ?\n, $2",
		`SELECT ? /* ? /* ? */ ? */ , ?`:      `SELECT $1 /* ? /* ? */ ? */ , $2`,
		`SELECT a$b$ , ?`:                     `SELECT a$b$ , $1`, // an identifier with $, no tag
		`SELECT 'unclosed ?`:                  `SELECT 'unclosed ?`,
		`SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?`: `SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10`,
	} {
		if got := sqldb.Numbered(in); got != want {
			t.Errorf("numbered(%q) = %q, want %q", in, got, want)
		}
	}
}

// A run whose second migration fails: the first stays applied and keeps
// its checksum (an edit of it after the failed deploy is refused), the
// second is not applied at all, the versions returned are the database's,
// and the error is the migration's own, not an outage to wait out.
func TestFailedMigrationRun(t *testing.T) {
	backends(t, func(t *testing.T, src sqldb.Source) {
		d := open0(t, src)
		set := func(one, two string) sqldb.Migrations {
			return sqldb.Migrations{Name: "failing", Table: "failing_version", FS: fstest.MapFS{
				"00001_a.sql": {Data: []byte(one)}, "00002_b.sql": {Data: []byte(two)}}}
		}
		one := "-- +goose Up\nCREATE TABLE a (id TEXT PRIMARY KEY);\n-- +goose Down\nDROP TABLE a;\n"
		bad := "-- +goose Up\nCREATE TABLE b (id TEXT PRIMARY KEY);\nINSERT INTO nope VALUES (1);\n-- +goose Down\nDROP TABLE b;\n"
		from, to, err := d.Migrate(ctx, set(one, bad), nil)
		if err == nil || !strings.Contains(err.Error(), "nope") || !strings.Contains(err.Error(), "version:2") {
			t.Fatalf("a failing migration: %v, want its error naming the table and version 2", err)
		}
		if errors.Is(err, sqldb.ErrUnavailable) {
			t.Errorf("a migration's own SQL error is reported as the database unavailable: %v", err)
		}
		if from != 0 || to != 1 {
			t.Errorf("Migrate returned %d -> %d, want 0 -> 1 (the first migration applied)", from, to)
		}
		if _, err := d.ExecForTest(ctx, "INSERT INTO b VALUES ('x')"); err == nil {
			t.Error("the failed migration's table exists: it was half applied")
		}
		edited := "-- +goose Up\nCREATE TABLE a (id TEXT PRIMARY KEY, extra TEXT);\n-- +goose Down\nDROP TABLE a;\n"
		good := "-- +goose Up\nCREATE TABLE b (id TEXT PRIMARY KEY);\n-- +goose Down\nDROP TABLE b;\n"
		if _, _, err := d.Migrate(ctx, set(edited, good), nil); !errors.Is(err, sqldb.ErrMigrationChanged) || !strings.Contains(err.Error(), "00001_a.sql") {
			t.Errorf("migration 1, applied by the failed run, then edited: %v, want ErrMigrationChanged naming 00001_a.sql", err)
		}
		if from, to, err := d.Migrate(ctx, set(one, good), nil); err != nil || from != 1 || to != 2 {
			t.Errorf("the fixed run: %d -> %d, %v; want 1 -> 2", from, to, err)
		}
	})
}

// The log line of a migration of Go code names no empty file.
func TestMigratedLogNamesGoMigrations(t *testing.T) {
	d := open0(t, sqldb.Source{Kind: sqldb.SQLite, DSN: filepath.Join(t.TempDir(), "specguard.db")})
	var logs bytes.Buffer
	set := sqldb.Migrations{Name: "logged", Table: "logged_version",
		FS: fstest.MapFS{"00001_a.sql": {Data: []byte("-- +goose Up\nCREATE TABLE a (id TEXT PRIMARY KEY);\n-- +goose Down\nDROP TABLE a;\n")}},
		Go: map[int64]func(context.Context, *sql.Tx) error{2: func(context.Context, *sql.Tx) error { return nil }}}
	if _, _, err := d.Migrate(ctx, set, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "file=00001_a.sql") || !strings.Contains(logs.String(), "version=2 file=(Go)") || strings.Contains(logs.String(), `file=""`) {
		t.Errorf("the migrations' log:\n%s", logs.String())
	}
}

// A Go migration's own error is the migration's fault, not the database
// being unavailable.
func TestGoMigrationErrorIsItsOwn(t *testing.T) {
	backends(t, func(t *testing.T, src sqldb.Source) {
		d := open0(t, src)
		set := sqldb.Migrations{Name: "gofail", Table: "gofail_version", FS: fstest.MapFS{},
			Go: map[int64]func(context.Context, *sql.Tx) error{1: func(context.Context, *sql.Tx) error { return errors.New("row 7 cannot be moved") }}}
		_, _, err := d.Migrate(ctx, set, nil)
		if err == nil || !strings.Contains(err.Error(), "row 7 cannot be moved") || errors.Is(err, sqldb.ErrUnavailable) {
			t.Errorf("a Go migration failing: %v, want its error, not ErrUnavailable", err)
		}
	})
}

// PostgreSQL keeps 63 bytes of a name: a version table of 55 bytes and its
// checksum table (Table+"_sums") were cut to one name, and the second
// Migrate failed ("column sha256 does not exist"). The longest table
// migrates again and again; a longer one is refused, on SQLite too.
func TestVersionTableLength(t *testing.T) {
	backends(t, func(t *testing.T, src sqldb.Source) {
		d := open0(t, src)
		set := testSet(t)
		set.Table = strings.Repeat("v", sqldb.MaxVersionTable)
		for i := range 2 {
			if _, to, err := d.Migrate(ctx, set, nil); err != nil || to != 2 {
				t.Fatalf("Migrate %d with a version table of %d bytes: version %d, %v", i+1, len(set.Table), to, err)
			}
		}
		set.Table += "v"
		want := fmt.Sprintf("migrations of test: the version table %q is %d bytes, at most %d", set.Table, len(set.Table), sqldb.MaxVersionTable)
		if _, _, err := d.Migrate(ctx, set, nil); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Migrate with a version table of %d bytes: %v, want %q", len(set.Table), err, want)
		}
		if _, _, err := d.Versions(ctx, set); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Versions with a version table of %d bytes: %v, want %q", len(set.Table), err, want)
		}
	})
}

// A PostgreSQL database whose encoding is not UTF-8 is refused at open:
// in EUC_JP a post titled with an emoji the document allows was refused
// by the database, a 422 the document does not declare; in LATIN1 it was
// stored as Latin-1 letters every other reader saw garbled.
func TestPostgresEncodingIsUTF8(t *testing.T) {
	for _, enc := range []string{"EUC_JP", "LATIN1", "SQL_ASCII"} {
		dsn := pgtest.NewIn(t, "TEMPLATE template0 ENCODING '"+enc+"' LC_COLLATE 'C' LC_CTYPE 'C'")
		d, err := sqldb.Open(context.Background(), sqldb.Source{Kind: sqldb.Postgres, DSN: dsn})
		if err == nil {
			d.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "encoding "+enc) || strings.Contains(err.Error(), "\n") {
			t.Errorf("a database in %s: %v, want refused naming its encoding, on one line", enc, err)
		}
	}
	// UTF8, with a client_encoding of another asked in the DSN.
	dsn := pgtest.New(t)
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	d, err := sqldb.Open(context.Background(), sqldb.Source{Kind: sqldb.Postgres, DSN: dsn + sep + "client_encoding=LATIN1"})
	if err == nil {
		d.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "client LATIN1") {
		t.Errorf("client_encoding=LATIN1: %v, want refused", err)
	}
}

// MigrateAll checks every set before it migrates any: a later set edited
// since it was applied, or newer than this binary, refuses the run with
// the earlier sets untouched. Migrated one by one, the first set was
// migrated before the second was refused.
func TestMigrateAllChecksEverySetFirst(t *testing.T) {
	backends(t, func(t *testing.T, src sqldb.Source) {
		d := open0(t, src)
		set := func(name string, files ...string) sqldb.Migrations {
			fsys := fstest.MapFS{}
			for i, f := range files {
				fsys[fmt.Sprintf("%05d_%s.sql", i+1, name)] = &fstest.MapFile{Data: []byte(f)}
			}
			return sqldb.Migrations{Name: name, Table: name + "_version", FS: fsys}
		}
		first := func(table string) string {
			return "-- +goose Up\nCREATE TABLE " + table + " (id TEXT PRIMARY KEY);\n-- +goose Down\nDROP TABLE " + table + ";\n"
		}
		if _, err := d.MigrateAll(ctx, []sqldb.Migrations{set("one", first("one_a")), set("two", first("two_a"), first("two_b"))}, nil); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name string
			two  sqldb.Migrations
			want error
		}{
			{"edited", set("two", first("two_a")+"-- edited\n", first("two_b")), sqldb.ErrMigrationChanged},
			{"newer", set("two", first("two_a")), sqldb.ErrSchemaTooNew},
		} {
			done, err := d.MigrateAll(ctx, []sqldb.Migrations{set("one", first("one_a"), first("one_b")), c.two}, nil)
			if !errors.Is(err, c.want) || len(done) != 1 || done[0] != (sqldb.Migrated{Name: "two", From: 2, To: 2}) {
				t.Errorf("%s second set: %v, %+v; want %v and the second set alone, at version 2", c.name, err, done, c.want)
			}
			if from, to, err := d.Migrate(ctx, c.two, nil); !errors.Is(err, c.want) || from != 2 || to != 2 {
				t.Errorf("Migrate of the %s second set = %d -> %d, %v; want 2 -> 2, %v", c.name, from, to, err, c.want)
			}
			if current, _, err := d.Versions(ctx, set("one", first("one_a"), first("one_b"))); err != nil || current != 1 {
				t.Errorf("%s second set: the first set is at version %d (%v), want 1: migrated by a refused run", c.name, current, err)
			}
		}
		done, err := d.MigrateAll(ctx, []sqldb.Migrations{set("one", first("one_a"), first("one_b")), set("two", first("two_a"), first("two_b"))}, nil)
		if err != nil || len(done) != 2 || done[0] != (sqldb.Migrated{Name: "one", From: 1, To: 2}) || done[1] != (sqldb.Migrated{Name: "two", From: 2, To: 2}) {
			t.Errorf("MigrateAll = %+v, %v; want one 1 -> 2, two 2 -> 2", done, err)
		}
	})
}

// A timeout of 0 or less failed every query at once, and Open blamed the
// database ("cannot reach the database ... context deadline exceeded"),
// as a pool size of 0 is refused by name (helper-178).
func TestTimeoutOfZeroRefused(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Second} {
		db, err := sqldb.Open(ctx, sqldb.Source{Kind: sqldb.SQLite, DSN: filepath.Join(t.TempDir(), "x.db")}, sqldb.WithTimeout(d))
		if err == nil {
			db.Close()
			t.Errorf("WithTimeout(%v): opened", d)
		} else if want := fmt.Sprintf("database timeout %v: above 0", d); err.Error() != want {
			t.Errorf("WithTimeout(%v): %v, want %q", d, err, want)
		}
	}
	if _, err := sqldb.Open(ctx, sqldb.Source{Kind: sqldb.SQLite, DSN: filepath.Join(t.TempDir(), "x.db")}, sqldb.WithPoolSize(0)); err == nil || err.Error() != "database pool size 0: at least 1" {
		t.Errorf("WithPoolSize(0): %v", err)
	}
}
