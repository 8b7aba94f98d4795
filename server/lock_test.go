package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/specguard/specguard/internal/keytest"
	"github.com/specguard/specguard/internal/pgtest"
	"github.com/specguard/specguard/server"
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
	defer server.SetLockKeepalive(100 * time.Millisecond)()
	dbURL := pgtest.New(t)
	in := start(t, map[string]string{"SPECGUARD_DATABASE_URL": dbURL, "SPECGUARD_DATABASE_POOL_SIZE": "1",
		"SPECGUARD_SIGNING_KEY_FILE": keytest.File(t)})
	status := func(path string) int {
		resp, _ := in.do(t, "GET", path, "")
		return resp.StatusCode
	}
	if got := status("/posts"); got != 200 {
		t.Fatalf("GET /posts with a pool of one: %d", got)
	}
	login(t, in, "user@example.com", "user-password") // the pool's one connection serves requests

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
	if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	var got bool
	for deadline := time.Now().Add(5 * time.Second); !got; time.Sleep(10 * time.Millisecond) {
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, lockID).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the terminated connection's lock was never released")
		}
	}
	waitFor := func(what string, want int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); status("/posts") != want; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: GET /posts never answered %d\n%s", what, want, in.logs.String())
			}
		}
	}
	waitFor("the lock taken by another", 503)
	resp, m := in.do(t, "GET", "/readyz", "")
	if checks, _ := m["checks"].(map[string]any); resp.StatusCode != 503 || checks["instance_lock"] != "unavailable" {
		t.Errorf("/readyz while the lock is another's: %d %v", resp.StatusCode, m)
	}
	if got := status("/healthz"); got != 200 {
		t.Errorf("/healthz while the lock is another's: %d, want 200 (the process lives)", got)
	}
	if logs := in.logs.String(); !strings.Contains(logs, "another specguard took the database's instance lock") {
		t.Errorf("the log does not say the lock was taken:\n%s", logs)
	}
	// The other process lets go: the instance takes the lock again.
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, lockID); err != nil {
		t.Fatal(err)
	}
	waitFor("the lock free again", 200)
	if logs := in.logs.String(); !strings.Contains(logs, "holding the database's instance lock again") {
		t.Errorf("the log does not say the lock is held again:\n%s", logs)
	}
}
