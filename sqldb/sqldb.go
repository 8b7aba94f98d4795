// Package sqldb opens the database a specguard service keeps its durable
// records in: SQLite, the embedded default (modernc.org/sqlite, pure Go, no
// cgo), or PostgreSQL for fleets (jackc/pgx). Repositories (the credential
// operations' accounts and API keys, an app's own records) write one set
// of SQL with ? placeholders through database/sql; sqldb numbers them for
// PostgreSQL (a ? in a string constant, a quoted identifier or a comment
// is left as it is; PostgreSQL's operators that hold a ?, such as jsonb's,
// are written as their functions, jsonb_exists), keeps SQLite's one writer apart from its readers, bounds
// every query, and maps driver errors to a few sentinels.
//
// Start with ParseURL and Open, then Migrate each set of migrations (an
// embedded directory of goose SQL files with a version table of its own).
// Every error that is not "no such record", "already exists" or a
// constraint refused wraps security.ErrUnavailable: the caller answers 503
// and the request can be retried, never 500.
package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"go.opentelemetry.io/otel/trace"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/specguard/specguard/internal/clientspan"
	"github.com/specguard/specguard/internal/fileowner"
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

// ConstraintError is a write the database refused because it breaks a
// constraint other than uniqueness (ErrExists): a foreign key (a record it
// names does not exist, or records still name it), a check or a NOT NULL;
// or a value the database cannot hold at all (PostgreSQL's data
// exceptions: a NUL character in text, a number out of its column's range).
// It says nothing about the database's health: answer 409 or 422, never 503.
type ConstraintError struct {
	Kind string // "foreign key", "check", "not null" or "value"
	// Name is the constraint's name when the database says it
	// (PostgreSQL does; SQLite does not).
	Name string
}

func (e *ConstraintError) Error() string {
	if e.Kind == "value" {
		return "database: refused a value it cannot hold"
	}
	if e.Name != "" {
		return fmt.Sprintf("database: %s constraint %s refused the write", e.Kind, e.Name)
	}
	return fmt.Sprintf("database: a %s constraint refused the write", e.Kind)
}

// Kind is the database engine.
type Kind string

const (
	SQLite   Kind = "sqlite"
	Postgres Kind = "postgres"
)

// Source is where the data lives: a parsed database URL.
type Source struct {
	Kind Kind
	// DSN is the SQLite file's path, or the PostgreSQL URL.
	DSN string
}

// DefaultFile is the SQLite file inside the data directory when the
// database URL is empty.
const DefaultFile = "specguard.db"

// ParseURL reads a database URL. Empty means the SQLite file
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
		if strings.HasPrefix(path, ":") {
			// SQLite's :memory: is a database of each connection's own,
			// gone with it: nothing would be shared, nor kept.
			return Source{}, fmt.Errorf("sqlite:%s: not a file: the data must outlive the process; give a file path, such as sqlite:./specguard.db", path)
		}
		return Source{Kind: SQLite, DSN: path}, nil
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		if redact.Misread(raw) {
			return Source{}, fmt.Errorf("%s: an @ follows the host: percent-encode a password's / ? # and @ (%%2F %%3F %%23 %%40)", Redact(raw))
		}
		if _, err := pgconn.ParseConfig(raw); err != nil {
			// pgx quotes the URL with only a lower-case password= masked:
			// its reason alone follows the URL redacted here.
			msg := err.Error()
			if i := strings.LastIndex(msg, "`: "); strings.HasPrefix(msg, "cannot parse `") && i >= 0 {
				msg = msg[i+len("`: "):]
			}
			return Source{}, fmt.Errorf("%s: %v", Redact(raw), text.OneLine(msg))
		}
		return Source{Kind: Postgres, DSN: raw}, nil
	}
	if strings.Contains(raw, "=") && !strings.Contains(raw, "://") {
		// libpq's host=... password=... form: nothing of it is said, it
		// holds the password.
		return Source{}, errors.New("a keyword/value connection string is not read: write it as postgres://user:password@host:5432/dbname")
	}
	if scheme, _, ok := strings.Cut(raw, ":"); ok && urlScheme.MatchString(scheme) {
		return Source{}, fmt.Errorf("%q is not a database URL: use sqlite:PATH, postgres://... or postgresql://... (empty = %s in the data directory)", scheme+":...", DefaultFile)
	}
	return Source{}, fmt.Errorf("it is not a database URL: use sqlite:PATH, postgres://... or postgresql://... (empty = %s in the data directory)", DefaultFile)
}

// urlScheme is what a URL's scheme may be (RFC 3986), and so may be quoted
// in a message: no part of a password.
var urlScheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]{0,31}$`)

// Redact returns a PostgreSQL URL without its secrets (the password in
// its userinfo or in ?password=, ?sslpassword=, ...), for messages.
func Redact(raw string) string { return redact.URL(raw) }

// String names the database for logs, without a secret.
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

// WithClock sets the clock that repositories stamp times with (Now;
// time.Now when absent or nil).
func WithClock(now func() time.Time) Option {
	return func(d *DB) {
		if now != nil {
			d.now = now
		}
	}
}

// WithTimeout bounds every query (5s when absent), so a database that
// stops answering fails requests instead of hanging them. Open refuses 0
// or less.
func WithTimeout(d time.Duration) Option { return func(db *DB) { db.timeout = d } }

// DB is one database: a writer and readers, and the helpers repositories
// query it with.
type DB struct {
	src     Source
	w, r    *sql.DB // writer and readers; the same pool on PostgreSQL
	pool    int
	timeout time.Duration
	now     func() time.Time
	tracer  trace.Tracer // nil: no tracing

	mu     sync.RWMutex
	rebind map[string]string // ? placeholders -> $n, for PostgreSQL
	stmts  sync.Map          // SQLite reads: query -> *sql.Stmt
}

// Open connects to src and checks that it answers. It does not migrate:
// call Migrate for each set of migrations.
func Open(ctx context.Context, src Source, opts ...Option) (*DB, error) {
	d := &DB{src: src, pool: 10, timeout: 5 * time.Second, now: time.Now, rebind: map[string]string{}}
	for _, opt := range opts {
		opt(d)
	}
	if d.pool < 1 {
		return nil, fmt.Errorf("database pool size %d: at least 1", d.pool)
	}
	if d.timeout <= 0 {
		return nil, fmt.Errorf("database timeout %v: above 0", d.timeout)
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
	if err := d.ping(pctx); err != nil {
		d.Close()
		return nil, fmt.Errorf("cannot reach the database %s: %s", src, text.OneLine(err.Error()))
	}
	if src.Kind == Postgres {
		if err := d.checkEncoding(pctx); err != nil {
			d.Close()
			return nil, err
		}
	}
	return d, nil
}

// checkEncoding refuses a PostgreSQL database, or connection, whose
// encoding is not UTF-8: a text the document allows (an emoji in EUC_JP)
// would be refused by the database as a constraint the document does not
// declare, or stored as bytes of another encoding (LATIN1, SQL_ASCII)
// that every other reader sees garbled.
func (d *DB) checkEncoding(ctx context.Context) error {
	var server, client string
	if err := d.w.QueryRowContext(ctx, `SELECT current_setting('server_encoding'), current_setting('client_encoding')`).Scan(&server, &client); err != nil {
		return fmt.Errorf("database %s: reading its encoding: %s", d.src, text.OneLine(err.Error()))
	}
	if server != "UTF8" || client != "UTF8" {
		return fmt.Errorf("database %s: encoding %s (client %s), want UTF8: it could not hold every text a request may carry; create it with ENCODING 'UTF8' (and no client_encoding setting)", d.src, server, client)
	}
	return nil
}

// ping opens the first connection. On SQLite it tries again while the
// file is busy: an instance that starts beside others (the first to open a
// new file turns it to WAL) can be answered SQLITE_BUSY at once, without
// the busy timeout, as SQLite avoids a deadlock.
func (d *DB) ping(ctx context.Context) error {
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		err := d.w.PingContext(ctx)
		var lite *sqlite.Error
		if err == nil || d.src.Kind != SQLite || !errors.As(err, &lite) || lite.Code()&0xff != sqlite3.SQLITE_BUSY {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// sqliteParams make every acknowledged write durable: WAL with
// synchronous=FULL syncs the log at every commit, so a commit that
// returned survives kill -9 and power loss alike. Write transactions take
// the lock when they begin (immediate), so two never deadlock upgrading.
const sqliteParams = "_txlock=immediate&_busy_timeout=5000&_journal_mode=WAL&_synchronous=FULL&_foreign_keys=1"

// uriPath escapes what a file: URI would read otherwise in a path.
var uriPath = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")

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
	// One made otherwise (copied, restored from a backup) may be readable
	// by others, and so would its -wal and -shm be, which SQLite makes
	// with its mode: refused, as a key file is.
	// SQLite names them after the file a link leads to.
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("sqlite:%s: %v", path, err)
	}
	for _, p := range []string{real, real + "-wal", real + "-shm"} {
		fi, err := os.Stat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return fmt.Errorf("sqlite:%s: %v", path, err)
		case runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0:
			return fmt.Errorf("sqlite:%s: mode %04o lets other users read the accounts' password hashes; chmod 600 it", p, fi.Mode().Perm())
		default:
			if err := fileowner.Check("sqlite:"+p, fi, "read the accounts' password hashes"); err != nil {
				return err
			}
		}
	}
	// SQLite decodes %XX in a file: URI: escaped, "data%41.db" is that
	// file, not dataA.db made with the umask's mode beside the empty 0600
	// one.
	dsn := "file:" + uriPath.Replace(path) + "?" + sqliteParams
	if strings.HasPrefix(path, "/") {
		// An empty authority: "//tmp/x.db" would read as host tmp.
		dsn = "file://" + uriPath.Replace(path) + "?" + sqliteParams
	}
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

// Now is the clock repositories stamp times with (WithClock).
func (d *DB) Now() time.Time { return d.now() }

// Close closes every connection.
func (d *DB) Close() error {
	d.stmts.Range(func(_, st any) bool { st.(*sql.Stmt).Close(); return true })
	err := d.w.Close()
	if d.r != d.w {
		err = errors.Join(err, d.r.Close())
	}
	return err
}

// Ping reports whether the database answers, for a readiness check.
func (d *DB) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	return d.Fail(d.w.PingContext(ctx))
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
	out = numbered(query)
	d.mu.Lock()
	d.rebind[query] = out
	d.mu.Unlock()
	return out
}

// numbered returns query with its ? placeholders numbered $1, $2, ... as
// PostgreSQL has them. A ? in a string constant ('...', E'...' with its
// backslash escapes, $tag$...$tag$), a quoted identifier or a comment (--
// to the end of the line, /* */, which nest) is no placeholder and stays
// as it is: numbering it changed the text stored ('who?' became 'who$1')
// and shifted the numbers of the placeholders after it.
func numbered(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 8)
	n := 0
	for i := 0; i < len(query); {
		c := query[i]
		end := i + 1
		switch {
		case c == '?':
			n++
			b.WriteString("$" + strconv.Itoa(n))
			i++
			continue
		case c == '\'' || c == '"':
			backslash := c == '\'' && i > 0 && (query[i-1] == 'E' || query[i-1] == 'e') && (i < 2 || !identByte(query[i-2]))
			end = closeQuote(query, i, c, backslash)
		case c == '-' && strings.HasPrefix(query[i:], "--"):
			if j := strings.IndexByte(query[i:], '\n'); j >= 0 {
				end = i + j
			} else {
				end = len(query)
			}
		case c == '/' && strings.HasPrefix(query[i:], "/*"):
			end = closeComment(query, i)
		case c == '$' && (i == 0 || !identByte(query[i-1])):
			if tag := dollarTag(query[i:]); tag != "" {
				if j := strings.Index(query[i+len(tag):], tag); j >= 0 {
					end = i + len(tag) + j + len(tag)
				} else {
					end = len(query)
				}
			}
		}
		b.WriteString(query[i:end])
		i = end
	}
	return b.String()
}

// closeQuote returns the index past the quote closing the one at i
// (doubled, a quote stands for itself; with backslash, a backslash
// escapes the next byte), or len(s) when it is not closed.
func closeQuote(s string, i int, quote byte, backslash bool) int {
	for j := i + 1; j < len(s); j++ {
		switch {
		case backslash && s[j] == '\\':
			j++
		case s[j] == quote && j+1 < len(s) && s[j+1] == quote:
			j++
		case s[j] == quote:
			return j + 1
		}
	}
	return len(s)
}

// closeComment returns the index past the end of the block comment at i,
// which may hold others, or len(s).
func closeComment(s string, i int) int {
	depth := 0
	for j := i; j+1 < len(s); j++ {
		switch {
		case s[j] == '/' && s[j+1] == '*':
			depth++
			j++
		case s[j] == '*' && s[j+1] == '/':
			depth--
			j++
			if depth == 0 {
				return j + 1
			}
		}
	}
	return len(s)
}

// dollarTag returns the tag ("$$", "$body$") that opens a dollar-quoted
// string at the start of s, or "" ($1 is a parameter, not a tag).
func dollarTag(s string) string {
	for j := 1; j < len(s); j++ {
		switch c := s[j]; {
		case c == '$':
			return s[:j+1]
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80 || j > 1 && c >= '0' && c <= '9':
		default:
			return ""
		}
	}
	return ""
}

// identByte reports whether c may be part of an identifier (or a
// keyword): before a quote, an E that is such a part is no escape-string
// prefix; before a $, a tag.
func identByte(c byte) bool {
	return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// ForUpdate is the suffix of a SELECT that locks its rows until the
// transaction ends: " FOR UPDATE" on PostgreSQL; nothing on SQLite, whose
// write transactions hold the whole database.
func (d *DB) ForUpdate() string {
	if d.src.Kind == Postgres {
		return " FOR UPDATE"
	}
	return ""
}

// Bytewise is the collation of an ORDER BY term of text that orders it by
// its bytes, as SQLite and Go's strings.Compare do: ` COLLATE "C"` on
// PostgreSQL, whose default order follows the database's locale (é after
// e there, after z in SQLite); nothing on SQLite. Write
// "ORDER BY email" + d.Bytewise() so that both databases list alike.
func (d *DB) Bytewise() string {
	if d.src.Kind == Postgres {
		return ` COLLATE "C"`
	}
	return ""
}

// Scanner is a row to scan: *sql.Row and *sql.Rows are.
type Scanner interface{ Scan(dest ...any) error }

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

// Get runs a one-row read (? placeholders) on the readers and scans the
// row with scan: ErrNotFound when there is none.
func Get[T any](ctx context.Context, d *DB, scan func(Scanner) (*T, error), query string, args ...any) (*T, error) {
	ctx, span := d.span(ctx, query)
	ctx, cancel := d.ctx(ctx)
	defer cancel()
	v, err := scan(d.queryRow(ctx, query, args...))
	for tries := d.pool; ended(err) && tries > 0; tries-- {
		v, err = scan(d.queryRow(ctx, query, args...))
	}
	err = d.Fail(err)
	endSpan(span, err)
	return v, err
}

// List runs a read (? placeholders) on the readers and scans every row
// with scan; an empty list, not nil, when there is none.
func List[T any](ctx context.Context, d *DB, scan func(Scanner) (*T, error), query string, args ...any) (_ []T, err error) {
	ctx, span := d.span(ctx, query)
	defer func() { endSpan(span, err) }()
	ctx, cancel := d.ctx(ctx)
	defer cancel()
	rows, err := d.r.QueryContext(ctx, d.q(query), args...)
	for tries := d.pool; ended(err) && tries > 0; tries-- {
		rows, err = d.r.QueryContext(ctx, d.q(query), args...)
	}
	if err != nil {
		return nil, d.Fail(err)
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, d.Fail(err)
		}
		out = append(out, *v)
	}
	return out, d.Fail(rows.Err())
}

// Count runs a read (? placeholders) whose one row is one integer.
func (d *DB) Count(ctx context.Context, query string, args ...any) (int64, error) {
	ctx, span := d.span(ctx, query)
	ctx, cancel := d.ctx(ctx)
	defer cancel()
	var n int64
	err := d.r.QueryRowContext(ctx, d.q(query), args...).Scan(&n)
	for tries := d.pool; ended(err) && tries > 0; tries-- {
		err = d.r.QueryRowContext(ctx, d.q(query), args...).Scan(&n)
	}
	err = d.Fail(err)
	endSpan(span, err)
	return n, err
}

// WithTracerProvider traces every query (and transaction) as a client
// span under the caller's, named by its first word (SELECT, INSERT, ...).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(d *DB) {
		if tp != nil {
			d.tracer = tp.Tracer("github.com/specguard/specguard/sqldb")
		}
	}
}

// span starts the client span of a query when tracing; nil otherwise.
func (d *DB) span(ctx context.Context, query string) (context.Context, trace.Span) {
	if d.tracer == nil {
		return ctx, nil
	}
	op, _, _ := strings.Cut(strings.TrimSpace(query), " ")
	op = strings.ToUpper(op)
	system := "sqlite"
	if d.src.Kind == Postgres {
		system = "postgresql"
	}
	return clientspan.Start(ctx, d.tracer, op+" "+system, system, op)
}

// endSpan ends a query's span: a missing row is no failure, and a failure
// says its SQLSTATE, never the error's text (it may quote a value).
func endSpan(span trace.Span, err error) {
	if span == nil {
		return
	}
	class := "query failed"
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		class = "SQLSTATE " + pe.Code
	}
	clientspan.End(span, err != nil && !errors.Is(err, ErrNotFound), class)
}

func (d *DB) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d.timeout)
}

// Exec runs a write (? placeholders) on the writer.
func (d *DB) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx, span := d.span(ctx, query)
	ctx, cancel := d.ctx(ctx)
	defer cancel()
	res, err := d.w.ExecContext(ctx, d.q(query), args...)
	for tries := d.pool; ended(err) && tries > 0; tries-- {
		res, err = d.w.ExecContext(ctx, d.q(query), args...)
	}
	err = d.Fail(err)
	endSpan(span, err)
	return res, err
}

// Tx is a write transaction (see DB.Tx).
type Tx struct {
	ctx context.Context
	tx  *sql.Tx
	d   *DB
}

// Exec runs a write (? placeholders) in the transaction.
func (t *Tx) Exec(query string, args ...any) (sql.Result, error) {
	res, err := t.tx.ExecContext(t.ctx, t.d.q(query), args...)
	return res, t.d.Fail(err)
}

// QueryRow runs a one-row read (? placeholders) in the transaction; scan
// it, then pass the error through Fail.
func (t *Tx) QueryRow(query string, args ...any) Scanner {
	return t.tx.QueryRowContext(t.ctx, t.d.q(query), args...)
}

// Tx runs f in a write transaction, bounded like every query: committed
// when f returns nil, rolled back when it returns an error (which Tx
// returns as it is). On PostgreSQL it runs at READ COMMITTED whatever the
// server's or the role's default_transaction_isolation, so that a row
// locked with SELECT ... FOR UPDATE orders concurrent transactions and
// each statement after the lock sees what the one before committed (a
// count then an insert, for example); SQLite runs one write transaction
// at a time.
func (d *DB) Tx(ctx context.Context, f func(tx *Tx) error) (err error) {
	ctx, span := d.span(ctx, "TRANSACTION")
	defer func() { endSpan(span, err) }()
	ctx, cancel := d.ctx(ctx)
	defer cancel()
	var opts *sql.TxOptions
	if d.src.Kind == Postgres {
		opts = &sql.TxOptions{Isolation: sql.LevelReadCommitted}
	}
	tx, err := d.w.BeginTx(ctx, opts)
	for tries := d.pool; ended(err) && tries > 0; tries-- {
		tx, err = d.w.BeginTx(ctx, opts)
	}
	if err != nil {
		return d.Fail(err)
	}
	defer tx.Rollback()
	if err := f(&Tx{ctx: ctx, tx: tx, d: d}); err != nil {
		return err
	}
	return d.Fail(tx.Commit())
}

// ended reports whether err says a pooled connection's session was ended
// before the statement ran: the server ended it (an administrator, a
// proxy, a restart: SQLSTATE 57P01 or 57P02, in which case no statement of
// it commits), or pgx is sure nothing was sent. The pool's check before
// reuse (a ping, past a second idle) does not see it sooner, and a
// database that serves on is no outage: the statement runs again on
// another connection, as many times as the pool has connections (a
// restart ended them all), within the statement's deadline.
func ended(err error) bool {
	if err == nil {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "57P01" || pe.Code == "57P02"
	}
	return pgconn.SafeToRetry(err)
}

// Affected turns "no row changed" into ErrNotFound.
func Affected(res sql.Result, err error) error {
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

// Fail maps a driver error to this package's: no rows (ErrNotFound), a
// unique key taken (ErrExists), another constraint (*ConstraintError), or
// anything else: the database being unavailable. An error that is already
// one of these is returned as it is.
func (d *DB) Fail(err error) error {
	var ce *ConstraintError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows), errors.Is(err, ErrNotFound):
		return ErrNotFound
	case errors.Is(err, ErrExists), errors.Is(err, ErrUnavailable), errors.As(err, &ce):
		return err
	}
	if c := constraint(err); c != nil {
		if c.Kind == "unique" {
			return ErrExists
		}
		return c
	}
	f := &failure{msg: ErrUnavailable.Error() + ": database: " + text.OneLine(err.Error())}
	for _, cause := range []error{context.Canceled, context.DeadlineExceeded, ErrMigrationLockLost} {
		if errors.Is(err, cause) {
			f.cause = cause
			break
		}
	}
	return f
}

// failure is the database unavailable (ErrUnavailable), said in one line,
// and, when it was one, the caller's context ending or the migration
// lock's loss, so that errors.Is tells them from an outage.
type failure struct {
	msg   string
	cause error // nil, context.Canceled, context.DeadlineExceeded or ErrMigrationLockLost
}

func (f *failure) Error() string { return f.msg }

func (f *failure) Unwrap() []error {
	if f.cause == nil {
		return []error{ErrUnavailable}
	}
	return []error{ErrUnavailable, f.cause}
}

// constraint reads the constraint a driver error says was broken, or nil.
func constraint(err error) *ConstraintError {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		kind := map[string]string{"23505": "unique", "23503": "foreign key", "23514": "check", "23502": "not null"}[pg.Code]
		if strings.HasPrefix(pg.Code, "22") {
			// Class 22, data exception: the request's value, not the
			// database, is at fault; sending it again fails again.
			kind = "value"
		}
		if kind == "" {
			return nil
		}
		return &ConstraintError{Kind: kind, Name: pg.ConstraintName}
	}
	var lite *sqlite.Error
	if errors.As(err, &lite) {
		switch lite.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return &ConstraintError{Kind: "unique"}
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return &ConstraintError{Kind: "foreign key"}
		case sqlite3.SQLITE_CONSTRAINT_CHECK:
			return &ConstraintError{Kind: "check"}
		case sqlite3.SQLITE_CONSTRAINT_NOTNULL:
			return &ConstraintError{Kind: "not null"}
		}
	}
	return nil
}

// Micros is t as the schema keeps times: microseconds since the Unix
// epoch, which SQLite and PostgreSQL store and compare alike.
func Micros(t time.Time) int64 { return t.UnixMicro() }

// FromMicros reads a time Micros wrote, in UTC.
func FromMicros(n int64) time.Time { return time.UnixMicro(n).UTC() }

// NullMicros reads a time Micros wrote that may be NULL (the zero time).
func NullMicros(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return FromMicros(n.Int64)
}
