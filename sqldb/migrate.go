package sqldb

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"path"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/specguard/specguard/internal/text"
)

// Migrations are one set of schema migrations: goose SQL files
// (00001_name.sql, with "-- +goose Up" and "-- +goose Down" sections) in
// FS's directory Dir, whose applied versions are recorded in Table. Sets of
// different repositories (the credential operations', an app's own) keep
// their versions apart, so each grows on its own; a set that refers to
// another's tables is migrated after it.
//
// A migration, once applied, must never change: add a new numbered file
// instead. Migrate records the SHA-256 of each file it finds applied and
// refuses a file whose content differs from the one recorded.
type Migrations struct {
	Name string // names the set in messages, such as "credentials"
	// FS holds the files, in its directory Dir (its root when Dir is
	// empty): an embed.FS of migrations/*.sql and Dir "migrations".
	FS    fs.FS
	Dir   string
	Table string // the version table (at most MaxVersionTable bytes); goose's default is "goose_db_version"
	// Go holds migrations written in Go, by version, for what SQL cannot
	// do (a value only Go computes, or what one database needs and the
	// other cannot do: see KindOf). Each runs in a transaction, and no
	// file may have its version. Write its statements with $1, $2 ...
	// placeholders, which both databases read. Once applied, it must not
	// change what it does, as a file must not; it has no checksum.
	Go map[int64]func(ctx context.Context, tx *sql.Tx) error
}

// MaxVersionTable is the longest Table, in bytes: PostgreSQL keeps 63 bytes
// of a name, and Migrate keeps its checksums in Table+"_sums", on SQLite too,
// so that a set moves from one database to the other.
const MaxVersionTable = 63 - len("_sums")

type kindKey struct{}

// KindOf is, in a migration of Migrations.Go, the kind of the database it
// migrates: for what one of them does otherwise (an index PostgreSQL
// needs and SQLite cannot make, say). Empty elsewhere.
func KindOf(ctx context.Context) Kind {
	k, _ := ctx.Value(kindKey{}).(Kind)
	return k
}

// files is the directory of m's files.
func (m Migrations) files() (fs.FS, error) {
	if m.Dir == "" || m.Dir == "." {
		return m.FS, nil
	}
	sub, err := fs.Sub(m.FS, m.Dir)
	if err != nil {
		return nil, fmt.Errorf("migrations of %s: %w", m.Name, err)
	}
	return sub, nil
}

// ErrSchemaTooNew is returned when a set of migrations was applied by a
// newer binary than this one: the schema may have changed under it.
var ErrSchemaTooNew = errors.New("the database schema is newer than this binary")

// ErrMigrationChanged is returned when a migration applied earlier has
// other content now.
var ErrMigrationChanged = errors.New("an applied migration was edited")

// Versions reports the version of set m in the database (0 when it was
// never migrated) and the newest version m holds. It writes nothing (a
// database never migrated stays without m's version table), and takes
// Migrate's lock: it waits for an instance migrating now and reports what
// it left.
func (d *DB) Versions(ctx context.Context, m Migrations) (current, known int64, err error) {
	db, unlock, err := d.lockMigrations(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("reading the schema version of %s in %s: %w", m.Name, d.src, err)
	}
	defer unlock()
	p, err := d.provider(m, db)
	if err != nil {
		return 0, 0, err
	}
	// goose's GetVersions creates the version table when it is missing.
	exists := `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`
	if d.src.Kind == Postgres {
		exists = `SELECT count(*) FROM (SELECT to_regclass($1) AS t) r WHERE t IS NOT NULL`
	}
	var n int
	if err := db.QueryRowContext(ctx, exists, m.Table).Scan(&n); err != nil {
		return 0, 0, d.lockLost(ctx, db, fmt.Errorf("reading the schema version of %s in %s: %w", m.Name, d.src, d.Fail(err)))
	}
	if n == 0 {
		if sources := p.ListSources(); len(sources) > 0 {
			known = sources[len(sources)-1].Version
		}
		return 0, known, nil
	}
	current, known, err = p.GetVersions(ctx)
	if err != nil {
		return 0, 0, d.lockLost(ctx, db, fmt.Errorf("reading the schema version of %s in %s: %w", m.Name, d.src, d.Fail(err)))
	}
	return current, known, nil
}

// Migrate applies the migrations of m the database lacks, holding a lock
// so that instances starting at once migrate one after the other and apply
// each migration exactly once: PostgreSQL's advisory lock, or a lock file
// beside the SQLite file. The lock covers the whole of Migrate (the version
// and checksum checks too, and the checksum table they create), not only
// the migrations. It returns the version before and after. A database at a
// newer version than m knows is refused with ErrSchemaTooNew, naming both;
// one whose applied migration was edited since with ErrMigrationChanged,
// naming the file.
func (d *DB) Migrate(ctx context.Context, m Migrations, log *slog.Logger) (from, to int64, err error) {
	done, err := d.MigrateAll(ctx, []Migrations{m}, log)
	if len(done) == 1 {
		from, to = done[0].From, done[0].To
	}
	return from, to, err
}

// Migrated is what MigrateAll did to one set: its version before and
// after.
type Migrated struct {
	Name     string
	From, To int64
}

// MigrateAll migrates sets in their order, as Migrate migrates one, under
// one hold of the lock, having first checked every set: a set the
// database holds at a newer version than this binary knows
// (ErrSchemaTooNew), or with an applied migration edited since
// (ErrMigrationChanged), refuses the run before any set is migrated. One
// set migrated past what the binaries serving the database know would
// stop them from starting again, for a run that was refused anyway. It
// returns, set by set, the versions before and after of the sets it
// migrated and, last when err is not nil, of the one that failed (alone,
// at its version, when the checks refused the run).
func (d *DB) MigrateAll(ctx context.Context, sets []Migrations, log *slog.Logger) (done []Migrated, err error) {
	if len(sets) == 0 {
		return nil, nil
	}
	db, unlock, err := d.lockMigrations(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrating %s of the database %s: %w", sets[0].Name, d.src, err)
	}
	defer unlock()
	defer func() {
		if err != nil {
			err = d.lockLost(ctx, db, err)
		}
	}()
	providers := make([]*goose.Provider, len(sets))
	current := make([]int64, len(sets))
	for i, m := range sets {
		if providers[i], err = d.provider(m, db); err != nil {
			return nil, err
		}
		current[i], _, err = d.checkVersions(ctx, m, providers[i])
		if err == nil {
			err = d.checkSums(ctx, db, m, providers[i])
		}
		if err != nil {
			// The set refused, as it stands: nothing was migrated.
			return []Migrated{{Name: m.Name, From: current[i], To: current[i]}}, err
		}
	}
	for i, m := range sets {
		to, err := d.migrate(ctx, db, m, providers[i], current[i], log)
		done = append(done, Migrated{Name: m.Name, From: current[i], To: to})
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// migrate applies what m lacks, with the lock held on db, from version
// from, which MigrateAll's checks read (nothing can change it while the
// lock is held), and returns the version after.
func (d *DB) migrate(ctx context.Context, db *sql.DB, m Migrations, p *goose.Provider, from int64, log *slog.Logger) (to int64, err error) {
	results, upErr := p.Up(ctx)
	var partial *goose.PartialError
	if errors.As(upErr, &partial) {
		results = partial.Applied
	}
	for _, r := range results {
		if log == nil {
			continue
		}
		file := r.Source.Path
		if file == "" {
			file = "(Go)" // a migration of m.Go: no file
		}
		log.Info("migrated", "set", m.Name, "version", r.Source.Version, "file", file, "duration", r.Duration.String())
	}
	if upErr != nil {
		// What this run applied before the failure keeps its checksum:
		// a file edited after a failed deploy is refused like any other.
		to = from
		if len(results) > 0 && d.checkSums(ctx, db, m, p) == nil {
			if cur, _, err := d.checkVersions(ctx, m, p); err == nil {
				to = cur
			}
		}
		return to, fmt.Errorf("migrating %s of the database %s: %w", m.Name, d.src, d.migrationFailed(upErr))
	}
	if err := d.checkSums(ctx, db, m, p); err != nil {
		return from, err
	}
	to, _, err = d.checkVersions(ctx, m, p)
	return to, err
}

// migrationFailed says why a migration failed: a statement the database
// refused (SQL it cannot run: PostgreSQL's errors outside the classes of
// connections, resources, the server's state, transactions rolled back
// and locks not available; SQLite's SQL, constraint, type and range
// errors), or a Go migration's own error (none of the database's, the
// network's or the context's), is the migration's own fault, said as it
// is, not as an outage to wait out; anything else is the database
// unavailable (Fail).
func (d *DB) migrationFailed(err error) error {
	var pe *pgconn.PgError
	var le *sqlite.Error
	var ne net.Error
	var partial *goose.PartialError
	switch {
	case errors.As(err, &pe):
		switch pe.Code[:2] {
		case "08", "40", "53", "57", "58":
			return d.Fail(err)
		}
		if pe.Code == "55P03" {
			return d.Fail(err)
		}
	case errors.As(err, &le):
		switch le.Code() & 0xff {
		case sqlite3.SQLITE_ERROR, sqlite3.SQLITE_CONSTRAINT, sqlite3.SQLITE_MISMATCH, sqlite3.SQLITE_RANGE:
		default:
			return d.Fail(err)
		}
	case errors.As(err, &partial) && partial.Failed != nil && partial.Failed.Source != nil && partial.Failed.Source.Type == goose.TypeGo &&
		!errors.As(err, &ne) && !errors.Is(err, driver.ErrBadConn) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrMigrationLockLost):
	default:
		return d.Fail(err)
	}
	return errors.New(text.OneLine(err.Error()))
}

// migrateLockWait bounds the wait for another instance's migrations.
const migrateLockWait = 5 * time.Minute

// ErrMigrationLockLost: the session holding the migration lock ended (the
// server ended it, or a proxy between dropped it) while Migrate held it.
// On PostgreSQL every statement of a migration runs in that session, so
// none runs once it ended: a migration in a transaction that had not
// committed rolls back, and starting again resumes where it stopped (a
// migration marked NO TRANSACTION keeps the statements that ran before the
// loss and runs in full again, so write it to be run twice). Another
// instance may migrate from then on, never beside this one. A statement
// this instance abandons ends the session too (Migrate's context ending,
// or a statement's bound running out); that is reported as what it is.
var ErrMigrationLockLost = errors.New("lost the migration lock")

// lockMigrations takes the lock Migrate holds, waiting for another
// instance's migrations to end (for at most migrateLockWait), and returns
// the handle the work under the lock must use.
//   - SQLite: an exclusive flock on a file beside the database file; the
//     kernel holds it while the process lives. The handle is the writer.
//   - PostgreSQL: a session advisory lock, goose's own (lock.DefaultLockID,
//     so this binary and one that let goose take it during a rolling
//     upgrade still migrate one at a time). The handle is a pool of that
//     one session, outside the database's pool, that never opens another:
//     the lock is held by the session that migrates, so no statement of
//     this instance's migrations can run once the lock is gone.
//
// unlock releases the lock (ending the session, on PostgreSQL); a process
// that dies releases it too.
func (d *DB) lockMigrations(parent context.Context) (db *sql.DB, unlock func(), err error) {
	wait, cancel := context.WithTimeout(parent, migrateLockWait)
	defer cancel()
	// waitEnded says why the wait for the lock ended without it, when it
	// was the wait that ended it.
	waitEnded := func() error {
		if parent.Err() != nil {
			return fmt.Errorf("waiting for the migration lock: %w", context.Cause(parent))
		}
		if wait.Err() != nil {
			return fmt.Errorf("another instance has held the migration lock for %s: %w", migrateLockWait, wait.Err())
		}
		return nil
	}
	switch d.src.Kind {
	case SQLite:
		path := d.lockPath(".migrate-lock")
		release, err := lockFile(wait, path)
		if err != nil {
			if ended := waitEnded(); ended != nil {
				return nil, nil, ended
			}
			return nil, nil, fmt.Errorf("locking %s: %w", path, err)
		}
		return d.w, func() { _ = release() }, nil
	case Postgres:
		db, err := d.oneSession(parent)
		if err != nil {
			if parent.Err() != nil {
				return nil, nil, waitEnded()
			}
			return nil, nil, fmt.Errorf("taking the migration lock: %w", err)
		}
		// Closing the pool (idempotent) ends the session, which releases
		// its advisory locks.
		unlock := func() { db.Close() }
		if _, err := db.ExecContext(wait, `SELECT pg_advisory_lock($1)`, lock.DefaultLockID); err != nil {
			unlock()
			if ended := waitEnded(); ended != nil {
				return nil, nil, ended
			}
			if errors.Is(err, ErrMigrationLockLost) {
				// The session ended before it took the lock.
				return nil, nil, fmt.Errorf("%w: taking the migration lock: the session ended", ErrUnavailable)
			}
			return nil, nil, fmt.Errorf("%w: taking the migration lock: %s", ErrUnavailable, text.OneLine(err.Error()))
		}
		return db, unlock, nil
	}
	return nil, nil, fmt.Errorf("unknown database kind %q", d.src.Kind)
}

// oneSession opens a pool of one PostgreSQL session, connected within the
// database's timeout, that never opens a second: once the session ended,
// the statement it was running fails with the driver's error, and every
// later use of the pool with ErrMigrationLockLost.
func (d *DB) oneSession(ctx context.Context) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(d.src.DSN)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", d.src, text.OneLine(err.Error()))
	}
	db := sql.OpenDB(&sessionConnector{Connector: stdlib.GetConnector(*cfg)})
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("%w: connecting to %s: %s", ErrUnavailable, d.src, text.OneLine(err.Error()))
	}
	return db, nil
}

// sessionConnector connects once: a second connection would be a session
// without the migration lock.
type sessionConnector struct {
	driver.Connector
	used atomic.Bool
}

func (c *sessionConnector) Connect(ctx context.Context) (driver.Conn, error) {
	if c.used.Swap(true) {
		return nil, fmt.Errorf("%w: its session ended", ErrMigrationLockLost)
	}
	return c.Connector.Connect(ctx)
}

// lockLost returns, for an error of work done under the migration lock on
// db, that error with the lock's loss when the lock's session has ended,
// and err otherwise. A statement this instance ended itself (its caller
// gave up, or a statement's bound ran out) ends the session too, pgx
// closing a connection whose statement it abandons: that is said as what
// it is, not as a loss.
func (d *DB) lockLost(ctx context.Context, db *sql.DB, err error) error {
	switch {
	case d.src.Kind != Postgres, errors.Is(err, ErrMigrationLockLost):
		return err
	case ctx.Err() != nil:
		if errors.Is(err, ctx.Err()) {
			return err
		}
		return fmt.Errorf("%w: %w", err, context.Cause(ctx))
	case errors.Is(err, context.DeadlineExceeded):
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.timeout)
	defer cancel()
	if perr := db.PingContext(ctx); errors.Is(perr, ErrMigrationLockLost) {
		return fmt.Errorf("%w: %w", err, perr)
	}
	return err
}

func (d *DB) checkVersions(ctx context.Context, m Migrations, p *goose.Provider) (current, known int64, err error) {
	current, known, err = p.GetVersions(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("reading the schema version of %s in %s: %w", m.Name, d.src, d.Fail(err))
	}
	if current > known {
		return current, known, fmt.Errorf("%w: %s of %s is at schema version %d, this binary knows versions up to %d; run one at least as new as the one that migrated it", ErrSchemaTooNew, m.Name, d.src, current, known)
	}
	return current, known, nil
}

// checkSums compares every applied migration of m with the checksum
// recorded when it was first seen applied, and records the missing ones.
func (d *DB) checkSums(ctx context.Context, db *sql.DB, m Migrations, p *goose.Provider) error {
	statuses, err := p.Status(ctx)
	if err != nil {
		return fmt.Errorf("reading the migrations of %s in %s: %w", m.Name, d.src, d.Fail(err))
	}
	table := m.Table + "_sums"
	create := `CREATE TABLE IF NOT EXISTS ` + table + ` (version BIGINT PRIMARY KEY, sha256 TEXT NOT NULL)`
	// Within the database's timeout, keeping PostgreSQL's error code.
	exec := func() error {
		ctx, cancel := d.ctx(ctx)
		defer cancel()
		_, err := db.ExecContext(ctx, create)
		return err
	}
	err = exec()
	if createClashed(err) {
		// A release before this one creates the table outside the lock,
		// so during a rolling upgrade both can create it at once, and IF
		// NOT EXISTS does not serialise on PostgreSQL. It exists now.
		err = exec()
	}
	if err != nil {
		return fmt.Errorf("checking the migrations of %s in %s: %w", m.Name, d.src, d.Fail(err))
	}
	for _, st := range statuses {
		if st.State != goose.StateApplied || st.Source.Type == goose.TypeGo {
			continue
		}
		files, err := m.files()
		if err != nil {
			return err
		}
		data, err := fs.ReadFile(files, path.Base(st.Source.Path))
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		want := hex.EncodeToString(sum[:])
		var got string
		err = db.QueryRowContext(ctx, d.q(`SELECT sha256 FROM `+table+` WHERE version = ?`), st.Source.Version).Scan(&got)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			// Applied before sums were kept, or just now: this content is
			// the one applied from here on.
			ctx, cancel := d.ctx(ctx)
			_, err := db.ExecContext(ctx, d.q(`INSERT INTO `+table+` (version, sha256) VALUES (?, ?) ON CONFLICT DO NOTHING`), st.Source.Version, want)
			cancel()
			if err != nil {
				return fmt.Errorf("recording the checksum of %s (version %d of %s) in %s: %w", path.Base(st.Source.Path), st.Source.Version, m.Name, d.src, d.Fail(err))
			}
		case err != nil:
			return fmt.Errorf("reading the checksum of %s (version %d of %s) in %s: %w", path.Base(st.Source.Path), st.Source.Version, m.Name, d.src, d.Fail(err))
		case got != want:
			return fmt.Errorf("%w: %s (version %d of %s) was applied to %s with other content (SHA-256 %.12s, now %.12s); never edit an applied migration: undo the edit, and add a new numbered file for the change",
				ErrMigrationChanged, path.Base(st.Source.Path), st.Source.Version, m.Name, d.src, got, want)
		}
	}
	return nil
}

// createClashed says whether err is PostgreSQL's answer to two sessions
// creating one table at once: a duplicate row type (unique violation in
// pg_type, or duplicate_object) or a duplicate table.
func createClashed(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && (pg.Code == "23505" || pg.Code == "42710" || pg.Code == "42P07")
}

// provider is goose's for m on db, the handle lockMigrations returned.
func (d *DB) provider(m Migrations, db *sql.DB) (*goose.Provider, error) {
	if len(m.Table) > MaxVersionTable {
		return nil, fmt.Errorf("migrations of %s: the version table %q is %d bytes, at most %d: PostgreSQL cuts a name to 63 bytes, and the checksum table beside it (%s_sums) would be cut to another's name",
			m.Name, m.Table, len(m.Table), MaxVersionTable, m.Table)
	}
	dialect := goose.DialectSQLite3
	if d.src.Kind == Postgres {
		dialect = goose.DialectPostgres
	}
	// No goose locker: Migrate holds its own lock, around more than Up.
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true), goose.WithLogger(goose.NopLogger()), goose.WithTableName(m.Table)}
	for _, v := range slices.Sorted(maps.Keys(m.Go)) {
		run := m.Go[v]
		opts = append(opts, goose.WithGoMigrations(goose.NewGoMigration(v, &goose.GoFunc{RunTx: func(ctx context.Context, tx *sql.Tx) error {
			return run(context.WithValue(ctx, kindKey{}, d.src.Kind), tx)
		}}, nil)))
	}
	files, err := m.files()
	if err != nil {
		return nil, err
	}
	return goose.NewProvider(dialect, db, files, opts...)
}
