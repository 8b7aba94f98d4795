// Package db keeps the example app's durable data (accounts, posts and API
// keys) in SQLite, the embedded default (modernc.org/sqlite, pure Go, no
// cgo), or in PostgreSQL for fleets (jackc/pgx). Both speak one set of SQL
// through database/sql; the schema is versioned SQL embedded in the binary
// (migrations/, applied with goose under a lock).
//
// Start with ParseURL and Open, then Migrate. Every error that is not "no
// such record" or "already exists" wraps security.ErrUnavailable: the
// caller answers 503 and the request can be retried, never 500.
package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/specguard/specguard/internal/redact"
	"github.com/specguard/specguard/internal/text"
	"github.com/specguard/specguard/security"
)

// Errors. ErrNotFound and ErrUnavailable are security's, so that the
// credential services and the app read the same errors from this package.
var (
	ErrNotFound    = security.ErrNotFound
	ErrExists      = errors.New("already exists")
	ErrUnavailable = security.ErrUnavailable
)

// Kind is the database engine.
type Kind string

const (
	SQLite   Kind = "sqlite"
	Postgres Kind = "postgres"
)

// Source is where the data lives: a parsed SPECGUARD_DATABASE_URL.
type Source struct {
	Kind Kind
	// DSN is the SQLite file's path, or the PostgreSQL URL.
	DSN string
}

// DefaultFile is the SQLite file inside the data directory when
// SPECGUARD_DATABASE_URL is empty.
const DefaultFile = "specguard.db"

// ParseURL reads SPECGUARD_DATABASE_URL. Empty means the SQLite file
// dataDir/specguard.db; "sqlite:PATH" that file; "postgres://..." or
// "postgresql://..." PostgreSQL. Anything else is an error saying so.
func ParseURL(raw, dataDir string) (Source, error) {
	switch {
	case raw == "":
		return Source{Kind: SQLite, DSN: filepath.Join(dataDir, DefaultFile)}, nil
	case strings.HasPrefix(raw, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(raw, "sqlite:"), "//")
		if path == "" {
			return Source{}, errors.New("sqlite: needs a file path, such as sqlite:/var/lib/specguard/specguard.db")
		}
		if strings.ContainsAny(path, "?#") {
			return Source{}, fmt.Errorf("sqlite:%s: a file path must not contain ? or #", path)
		}
		return Source{Kind: SQLite, DSN: path}, nil
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		if _, err := pgconn.ParseConfig(raw); err != nil {
			return Source{}, fmt.Errorf("%s: %v", Redact(raw), text.OneLine(err.Error()))
		}
		return Source{Kind: Postgres, DSN: raw}, nil
	}
	scheme, _, _ := strings.Cut(raw, ":")
	return Source{}, fmt.Errorf("%q is not a database URL: use sqlite:PATH, postgres://... or postgresql://... (empty = %s in the data directory)", scheme+":...", DefaultFile)
}

// Redact returns a PostgreSQL URL without its secrets (the password in
// its userinfo or in ?password=, ?sslpassword=, ...), for messages.
func Redact(raw string) string { return redact.URL(raw) }

// String names the database for logs, without a password.
func (s Source) String() string {
	if s.Kind == SQLite {
		return "sqlite:" + s.DSN
	}
	return Redact(s.DSN)
}

// Option configures Open.
type Option func(*DB)

// WithPoolSize caps the connections to PostgreSQL, and SQLite's readers
// (10 when absent). SQLite has one writer connection whatever the size.
func WithPoolSize(n int) Option { return func(d *DB) { d.pool = n } }

// WithClock sets the clock that stamps created, updated and revoked times
// (time.Now when absent).
func WithClock(now func() time.Time) Option { return func(d *DB) { d.now = now } }

// WithTimeout bounds every query (5s when absent), so a database that
// stops answering fails requests instead of hanging them.
func WithTimeout(d time.Duration) Option { return func(db *DB) { db.timeout = d } }

// DB is the repository: typed queries over one database.
type DB struct {
	src     Source
	w, r    *sql.DB // writer and readers; the same pool on PostgreSQL
	pool    int
	timeout time.Duration
	now     func() time.Time

	mu     sync.RWMutex
	rebind map[string]string // ? placeholders -> $n, for PostgreSQL
	stmts  sync.Map          // SQLite reads: query -> *sql.Stmt
}

// Open connects to src and checks that it answers. It does not migrate:
// call Migrate (serve does; `specguard migrate` does it alone).
func Open(ctx context.Context, src Source, opts ...Option) (*DB, error) {
	d := &DB{src: src, pool: 10, timeout: 5 * time.Second, now: time.Now, rebind: map[string]string{}}
	for _, opt := range opts {
		opt(d)
	}
	if d.pool < 1 {
		return nil, fmt.Errorf("database pool size %d: at least 1", d.pool)
	}
	var err error
	switch src.Kind {
	case SQLite:
		err = d.openSQLite()
	case Postgres:
		err = d.openPostgres()
	default:
		err = fmt.Errorf("unknown database kind %q", src.Kind)
	}
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	if err := d.w.PingContext(pctx); err != nil {
		d.Close()
		return nil, fmt.Errorf("cannot reach the database %s: %s", src, text.OneLine(err.Error()))
	}
	return d, nil
}

// sqliteParams make every acknowledged write durable: WAL with
// synchronous=FULL syncs the log at every commit, so a commit that
// returned survives kill -9 and power loss alike. Write transactions take
// the lock when they begin (immediate), so two never deadlock upgrading.
const sqliteParams = "_txlock=immediate&_busy_timeout=5000&_journal_mode=WAL&_synchronous=FULL&_foreign_keys=1"

func (d *DB) openSQLite() error {
	path := d.src.DSN
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("sqlite:%s: %v", path, err)
	}
	// Create the file ourselves so it is private: it holds password hashes.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("sqlite:%s: %v", path, err)
	}
	f.Close()
	dsn := "file:" + path + "?" + sqliteParams
	if d.w, err = sql.Open("sqlite", dsn); err != nil {
		return fmt.Errorf("sqlite:%s: %v", path, err)
	}
	// One writer: SQLite serialises writes anyway, and a single connection
	// queues them in Go instead of spinning on SQLITE_BUSY.
	d.w.SetMaxOpenConns(1)
	if d.r, err = sql.Open("sqlite", dsn+"&_query_only=1"); err != nil {
		d.w.Close()
		return fmt.Errorf("sqlite:%s: %v", path, err)
	}
	d.r.SetMaxOpenConns(d.pool)
	d.r.SetMaxIdleConns(d.pool)
	return nil
}

func (d *DB) openPostgres() error {
	db, err := sql.Open("pgx", d.src.DSN)
	if err != nil {
		return fmt.Errorf("%s: %v", d.src, err)
	}
	db.SetMaxOpenConns(d.pool)
	db.SetMaxIdleConns(d.pool)
	db.SetConnMaxIdleTime(5 * time.Minute)
	d.w, d.r = db, db
	return nil
}

// Kind is the engine in use.
func (d *DB) Kind() Kind { return d.src.Kind }

// Source is where the data lives.
func (d *DB) Source() Source { return d.src }

// Close closes every connection.
func (d *DB) Close() error {
	d.stmts.Range(func(_, st any) bool { st.(*sql.Stmt).Close(); return true })
	err := d.w.Close()
	if d.r != d.w {
		err = errors.Join(err, d.r.Close())
	}
	return err
}

// Ping reports whether the database answers, for /readyz.
func (d *DB) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	return d.fail(d.w.PingContext(ctx))
}

// q returns query for this engine: PostgreSQL numbers its placeholders.
func (d *DB) q(query string) string {
	if d.src.Kind != Postgres {
		return query
	}
	d.mu.RLock()
	out, ok := d.rebind[query]
	d.mu.RUnlock()
	if ok {
		return out
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	out = b.String()
	d.mu.Lock()
	d.rebind[query] = out
	d.mu.Unlock()
	return out
}

// queryRow runs a one-row read on the readers. On SQLite its statement is
// prepared once (per connection, by database/sql) and kept: parsing the
// SQL costs about as much as running it. pgx keeps PostgreSQL's prepared
// statements itself.
func (d *DB) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if d.src.Kind != SQLite {
		return d.r.QueryRowContext(ctx, d.q(query), args...)
	}
	st, ok := d.stmts.Load(query)
	if !ok {
		prepared, err := d.r.PrepareContext(ctx, query)
		if err != nil {
			return d.r.QueryRowContext(ctx, query, args...) // carries the error
		}
		var loaded bool
		if st, loaded = d.stmts.LoadOrStore(query, prepared); loaded {
			prepared.Close()
		}
	}
	return st.(*sql.Stmt).QueryRowContext(ctx, args...)
}

// queryAll runs a read on the readers and scans every row with scan.
func queryAll[T any](ctx context.Context, d *DB, scan func(interface{ Scan(...any) error }) (*T, error), query string, args ...any) ([]T, error) {
	ctx, cancel := d.ctx(ctx)
	defer cancel()
	rows, err := d.r.QueryContext(ctx, d.q(query), args...)
	if err != nil {
		return nil, d.fail(err)
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, d.fail(err)
		}
		out = append(out, *v)
	}
	return out, d.fail(rows.Err())
}

func (d *DB) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d.timeout)
}

func (d *DB) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx, cancel := d.ctx(ctx)
	defer cancel()
	res, err := d.w.ExecContext(ctx, d.q(query), args...)
	return res, d.fail(err)
}

// affected turns "no row changed" into ErrNotFound.
func affected(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("%w: database: %v", ErrUnavailable, err)
	} else if n == 0 {
		return ErrNotFound
	}
	return nil
}

// fail maps a driver error to this package's: no rows, a unique key
// taken, or (anything else) the database being unavailable.
func (d *DB) fail(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return ErrNotFound
	case isUniqueViolation(err):
		return ErrExists
	}
	return fmt.Errorf("%w: database: %s", ErrUnavailable, text.OneLine(err.Error()))
}

func isUniqueViolation(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "23505"
	}
	var lite *sqlite.Error
	if errors.As(err, &lite) {
		return lite.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || lite.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

func usec(t time.Time) int64 { return t.UnixMicro() }

func fromUsec(n int64) time.Time { return time.UnixMicro(n).UTC() }

func nullUsec(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return fromUsec(n.Int64)
}
