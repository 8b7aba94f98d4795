package server_test

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/specguard/specguard/internal/keytest"
	"github.com/specguard/specguard/internal/redistest"
)

// A guarded bearer request on one Redis costs one round trip, as served:
// the credential's check rides in the rate-limit script, through every
// wrapper the server puts around its stores. Redis MONITOR sees each
// command a client sends (and marks those a script runs "lua").
func TestOneRedisRoundTripPerBearerRequest(t *testing.T) {
	srv := redistest.Start(t)
	in := start(t, map[string]string{"SPECGUARD_REDIS_URL": srv.URL, "SPECGUARD_SIGNING_KEY_FILE": keytest.File(t)})
	tok := login(t, in, "user@example.com", "user-password")
	// The first request caches the token's verification and the account.
	if resp, _ := in.do(t, "GET", at(t, "me"), "", "Authorization", "Bearer "+tok); resp.StatusCode != 200 {
		t.Fatalf("GET /me: %d", resp.StatusCode)
	}

	// MONITOR on a raw connection: each command any client sends is one
	// line, and commands a script runs are marked "lua".
	conn, err := net.DialTimeout("tcp", srv.Addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rd := bufio.NewReader(conn)
	if _, err := conn.Write([]byte("MONITOR\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if l, err := rd.ReadString('\n'); err != nil || !strings.HasPrefix(l, "+OK") {
		t.Fatalf("MONITOR: %q %v", l, err)
	}
	var mu sync.Mutex
	var seen []string
	go func() {
		for {
			l, err := rd.ReadString('\n')
			if err != nil {
				return
			}
			mu.Lock()
			seen = append(seen, strings.TrimSpace(l))
			mu.Unlock()
		}
	}()

	const n = 20
	for range n {
		if resp, _ := in.do(t, "GET", at(t, "me"), "", "Authorization", "Bearer "+tok); resp.StatusCode != 200 {
			t.Fatalf("GET /me: %d", resp.StatusCode)
		}
	}
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	var sent []string
	for _, l := range seen {
		// The instance's mark in Redis is refreshed every keepalive,
		// whatever the requests: it is not theirs to count.
		if !strings.Contains(l, " lua]") && !strings.Contains(l, `"set" "sg:instance:`) {
			sent = append(sent, l)
		}
	}
	if len(sent) != n {
		t.Errorf("%d guarded bearer requests sent %d commands to Redis, want %d:\n%s", n, len(sent), n, strings.Join(sent, "\n"))
	}
	for _, l := range sent {
		if !strings.Contains(l, `"evalsha"`) {
			t.Errorf("a command other than the rate-limit script: %s", l)
		}
	}
}
