package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/specguard/specguard/internal/keytest"
	"github.com/specguard/specguard/internal/pgtest"
	"github.com/specguard/specguard/internal/redistest"
	"github.com/specguard/specguard/service"
	"github.com/specguard/specguard/sqldb"
)

// lockID is the instance lock's advisory key ("speg").
const lockID = 0x73706567

// Without Redis the PostgreSQL instance lock held a pooled connection: with
// a pool of one, start-up failed after 5 s with a misleading database
// timeout, and if that connection dropped the lock could be lost
// silently. It has a connection of its own now, checked every keepalive;
// while it is lost (or another instance took it) every request is refused
// 503 and /readyz says so, and the lock is taken again when it can be.
func TestInstanceLockOnItsOwnConnection(t *testing.T) {
	defer service.SetLockKeepalive(100 * time.Millisecond)()
	dbURL := pgtest.New(t)
	env := map[string]string{"SPECGUARD_DATABASE_URL": dbURL, "SPECGUARD_DATABASE_POOL_SIZE": "1",
		"SPECGUARD_SIGNING_KEY_FILE": keytest.File(t), "SPECGUARD_DATA_DIR": t.TempDir(), "SPECGUARD_ADMIN_ADDR": "off"}
	logs := &syncBuffer{}
	srv, err := service.Build(context.Background(), testApp(), nil, func(k string) string { return env[k] }, logs, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	ts := httptest.NewServer(srv.Handler)
	t.Cleanup(ts.Close)
	call := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		resp, err := http.Post(ts.URL+path, "application/json", strings.NewReader(body))
		if method == "GET" {
			resp, err = http.Get(ts.URL + path)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	status := func(path string) int { code, _ := call("GET", path, ""); return code }
	// The pool's one connection serves requests while the lock is held.
	const account = `{"email":"lock@example.com","password":"correct horse battery"}`
	if code, m := call("POST", "/auth/register", account); code != 201 {
		t.Fatalf("register with a pool of one: %d %v", code, m)
	}
	if code, m := call("POST", "/auth/login", account); code != 200 {
		t.Fatalf("login with a pool of one: %d %v", code, m)
	}

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// The lock's connection drops, and another process takes the lock.
	var pid int
	if err := conn.QueryRow(ctx, `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = 0 AND objid = $1
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, lockID).Scan(&pid); err != nil {
		t.Fatalf("the instance holds no advisory lock: %v", err)
	}
	// conn waits for the lock before its holder's session ends, so that it
	// is granted the lock on release: polling for it instead raced the
	// instance's own retake, every keepalive, and lost it on a busy machine.
	taken := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, lockID)
		taken <- err
	}()
	killer, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer killer.Close(ctx)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var waiting bool
		if err := killer.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = 0 AND objid = $1
			AND NOT granted AND pid = $2)`, lockID, conn.PgConn().PID()).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the other session never queued for the lock")
		}
	}
	if _, err := killer.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-taken:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the terminated connection's lock was never released")
	}
	waitFor := func(what string, want int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); status("/.well-known/jwks.json") != want; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: GET /.well-known/jwks.json never answered %d\n%s", what, want, logs.String())
			}
		}
	}
	waitFor("the lock taken by another", 503)
	code, m := call("GET", "/readyz", "")
	if checks, _ := m["checks"].(map[string]any); code != 503 || checks["instance_lock"] != "unavailable" {
		t.Errorf("/readyz while the lock is another's: %d %v", code, m)
	}
	if got := status("/healthz"); got != 200 {
		t.Errorf("/healthz while the lock is another's: %d, want 200 (the process lives)", got)
	}
	if logs := logs.String(); !strings.Contains(logs, "another specguard took the database's instance lock") {
		t.Errorf("the log does not say the lock was taken:\n%s", logs)
	}
	if logs := logs.String(); !strings.Contains(logs, "until this instance is restarted") {
		t.Errorf("the log does not say to restart the instance:\n%s", logs)
	}
	// The other process lets go. The instance does not take the lock
	// again: the other served the same data meanwhile, and what it
	// changed (a logout, an account disabled: kept in memory) this one
	// would not see; it served 200 from that stale memory (helper-178).
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, lockID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * 100 * time.Millisecond) // five keepalives, each a chance to take it again
	var holders int
	if err := killer.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 0 AND objid = $1 AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, lockID).Scan(&holders); err != nil {
		t.Fatal(err)
	}
	if holders != 0 {
		t.Errorf("the lock freed by the other was taken again (%d holders)", holders)
	}
	if got := status("/.well-known/jwks.json"); got != 503 {
		t.Errorf("after another instance held the lock and let go: %d, want 503 until restarted\n%s", got, logs.String())
	}
	if logs := logs.String(); strings.Contains(logs, "holding the database's instance lock again") {
		t.Errorf("the log says the lock is held again:\n%s", logs)
	}
}

// syncBuffer is a log the server writes while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.buf.String() }

// A start refused for the instance lock (another instance serves the
// database without Redis) must leave the schema as it found it: a newer
// binary started beside an older one migrated the database past the older
// one's, which then refused to start again.
func TestRefusedStartLeavesTheSchema(t *testing.T) {
	v1 := fstest.MapFS{"00001_items.sql": {Data: []byte("-- +goose Up\nCREATE TABLE items (id TEXT PRIMARY KEY);\n-- +goose Down\nDROP TABLE items;\n")}}
	v2 := fstest.MapFS{"00001_items.sql": v1["00001_items.sql"],
		"00002_items_name.sql": {Data: []byte("-- +goose Up\nALTER TABLE items ADD COLUMN name TEXT;\n-- +goose Down\nALTER TABLE items DROP COLUMN name;\n")}}
	version := func(fs fstest.MapFS) service.App {
		a := testApp()
		a.Migrations = []sqldb.Migrations{{Name: "items", FS: fs, Table: "items_version"}}
		return a
	}
	url := pgtest.New(t)
	env := map[string]string{"SPECGUARD_DATABASE_URL": url, "SPECGUARD_SIGNING_KEY_FILE": keytest.File(t),
		"SPECGUARD_DATA_DIR": t.TempDir(), "SPECGUARD_ADMIN_ADDR": "off"}
	getenv := func(k string) string { return env[k] }
	ctx := context.Background()

	old, err := service.Build(ctx, version(v1), nil, getenv, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := service.Build(ctx, version(v2), nil, getenv, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "another specguard serves") {
		t.Fatalf("a newer version beside a running one without Redis: %v, want refused for the instance lock", err)
	}
	db, err := sqldb.Open(ctx, sqldb.Source{Kind: sqldb.Postgres, DSN: url})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if current, _, err := db.Versions(ctx, sqldb.Migrations{Name: "items", FS: v2, Table: "items_version"}); err != nil || current != 1 {
		t.Errorf("after the refused start the items schema is at version %d (%v), want 1", current, err)
	}
	old.Close()
	again, err := service.Build(ctx, version(v1), nil, getenv, io.Discard, io.Discard)
	if err != nil {
		t.Fatalf("restarting the running version after the refused start: %v", err)
	}
	again.Close()
}

// Instances that shared a database but were given two Redis (or two
// databases of one) started: a logout, a revocation or a rate limit on one
// did not hold on the other. Each instance marks in its Redis that it
// serves, and one that cannot find the others' marks in its own refuses to
// start. A Redis that lost its keys gets the marks back within a keepalive.
func TestInstancesOnOneDatabaseShareOneRedis(t *testing.T) {
	defer service.SetLockKeepalive(100 * time.Millisecond)()
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			red, other := redistest.StartOwn(t), redistest.StartOwn(t)
			env := map[string]string{"SPECGUARD_SIGNING_KEY_FILE": keytest.File(t), "SPECGUARD_DATA_DIR": t.TempDir(),
				"SPECGUARD_ADMIN_ADDR": "off"}
			if db == "postgres" {
				env["SPECGUARD_DATABASE_URL"] = pgtest.New(t)
			}
			start := func(redisURL string) (*service.Server, error) {
				e := maps.Clone(env)
				e["SPECGUARD_REDIS_URL"] = redisURL
				return service.Build(context.Background(), testApp(), nil, func(k string) string { return e[k] }, io.Discard, io.Discard)
			}
			marks := func(s *redistest.Server) int {
				t.Helper()
				rdb := redis.NewClient(&redis.Options{Addr: s.Addr})
				defer rdb.Close()
				keys, err := rdb.Keys(context.Background(), "sg:instance:*").Result()
				if err != nil {
					t.Fatal(err)
				}
				return len(keys)
			}
			first, err := start(red.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer first.Close()
			for _, url := range []string{other.URL, strings.TrimSuffix(red.URL, "/0") + "/1"} {
				if s, err := start(url); err == nil {
					s.Close()
					t.Fatalf("an instance on %s started beside one on %s, on one database", url, red.URL)
				} else if !strings.Contains(err.Error(), "SPECGUARD_REDIS_URL: 1 of the 1 other specguard instances serving") {
					t.Fatalf("an instance on %s beside one on %s: %v", url, red.URL, err)
				}
			}
			if n := marks(other); n != 0 {
				t.Errorf("the refused instances left %d marks in their Redis", n)
			}
			second, err := start(red.URL)
			if err != nil {
				t.Fatalf("a second instance on the same Redis: %v", err)
			}
			defer second.Close()
			if n := marks(red); n != 2 {
				t.Fatalf("two instances serving, %d marks in Redis", n)
			}
			// Redis restarted empty: the instances mark again, and a third
			// one starts.
			rdb := redis.NewClient(&redis.Options{Addr: red.Addr})
			defer rdb.Close()
			if err := rdb.FlushAll(context.Background()).Err(); err != nil {
				t.Fatal(err)
			}
			third, err := start(red.URL)
			if err != nil {
				t.Fatalf("an instance started as its Redis had lost its keys: %v", err)
			}
			third.Close()
			second.Close()
			first.Close()
			if n := marks(red); n != 0 {
				t.Errorf("the stopped instances left %d marks in Redis", n)
			}
			// Alone on the database, an instance starts on another Redis.
			moved, err := start(other.URL)
			if err != nil {
				t.Fatalf("the only instance, moved to another Redis: %v", err)
			}
			moved.Close()
		})
	}
}

// A host that died leaves its PostgreSQL session (until the server's TCP
// keepalive gives up, hours by default) holding the instance lock and its
// ID, while its mark in Redis expires: its replacement, on the same Redis,
// was refused as though the dead one kept its state in another Redis.
func TestDeadHostsSessionDoesNotHoldOffItsReplacement(t *testing.T) {
	defer service.SetLockKeepalive(100 * time.Millisecond)()
	dsn := pgtest.New(t)
	red := redistest.StartOwn(t)
	ctx := context.Background()
	dead, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close(ctx)
	if _, err := dead.Exec(ctx, `SELECT pg_advisory_lock_shared($1::bigint), pg_advisory_lock_shared($2::int4, $3::int4)`, int64(lockID), 0x73706573, 12345); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SPECGUARD_SIGNING_KEY_FILE": keytest.File(t), "SPECGUARD_DATA_DIR": t.TempDir(),
		"SPECGUARD_ADMIN_ADDR": "off", "SPECGUARD_DATABASE_URL": dsn, "SPECGUARD_REDIS_URL": red.URL}
	srv, err := service.Build(ctx, testApp(), nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err != nil {
		t.Fatalf("the replacement of an instance whose host died: %v", err)
	}
	srv.Close()
}
