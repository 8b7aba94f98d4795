package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/specguard/specguard/e2e/client"
	"github.com/specguard/specguard/internal/keytest"
	"github.com/specguard/specguard/internal/pgtest"
	"github.com/specguard/specguard/internal/redistest"
)

const storeTimeout = 100 * time.Millisecond

// stuck tells a request bounded by SPECGUARD_STORE_TIMEOUT (it waits on a
// dead store once, for the credential check or the limit) from one that is
// not: go-redis's own dial and read timeouts are 5 s and 3 s. No speed is
// asserted: a loaded machine may take many times the store timeout, and
// what the timeout costs is the load harness's to measure.
const stuck = 3 * time.Second

type sample struct {
	op      string
	status  int
	elapsed time.Duration
	err     error
}

// load sends a bounded mix of requests from workers goroutines until stop
// is closed or each worker has sent max requests.
func load(c *Client, token string, workers, max int, stop <-chan struct{}) []sample {
	var mu sync.Mutex
	var out []sample
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range max {
				select {
				case <-stop:
					return
				default:
				}
				var s sample
				start := time.Now()
				switch (w + i) % 3 {
				case 0: // bearer: the revocation check needs the store
					s.op = "GET /me"
					r, err := c.GetMeWithResponse(ctx, Bearer(token))
					s.err = err
					if err == nil {
						s.status = r.StatusCode()
					}
				case 1: // anonymous, its tier allows on store error (see allowingJWKS)
					s.op = "GET JWKS"
					r, err := c.GetJWKSWithResponse(ctx)
					s.err = err
					if err == nil {
						s.status = r.StatusCode()
					}
				case 2: // unlimited, needs no store
					s.op = "GET /healthz"
					r, err := c.HealthzWithResponse(ctx)
					s.err = err
					if err == nil {
						s.status = r.StatusCode()
					}
				}
				s.elapsed = time.Since(start)
				mu.Lock()
				out = append(out, s)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// allowingJWKS is the example document with a tier on the JWKS (public,
// served without a store) that admits requests when the store is down
// (on-store-error: allow), for SPECGUARD_SPEC_FILE: an operation every
// service keeps, limited as an operator may choose.
func allowingJWKS(t *testing.T) string {
	t.Helper()
	return specFile(t, func(root *yaml.Node) {
		jwks := child(t, child(t, child(t, root, "paths"), credentialOp(t, "jwks").Path), "get")
		set(jwks, "x-rate-limit", parseNode(t, "[{name: jwks, limit: 100000, window: 1m, key: ip, on-store-error: allow}]"))
	})
}

func TestRedisKilledDuringLoad(t *testing.T) {
	srv := redistest.StartOwn(t) // it is killed
	in := Start(t, "SPECGUARD_SPEC_FILE="+allowingJWKS(t), "SPECGUARD_REDIS_URL="+srv.URL, "SPECGUARD_SIGNING_KEY_FILE="+keytest.File(t), "SPECGUARD_STORE_TIMEOUT="+storeTimeout.String())
	c := NewClient(t, in)
	tok := login(t, c, "user@example.com", "user-password")

	// Redis up: everything passes.
	for _, s := range load(c, tok.AccessToken, 4, 15, nil) {
		if s.err != nil || s.status != 200 {
			t.Fatalf("Redis up: %s -> %d %v", s.op, s.status, s.err)
		}
	}

	srv.Stop()
	ready, _ := c.ReadyzWithResponse(ctx)
	want(t, "/readyz with Redis down", ready.StatusCode(), 503, ready.Body)
	down := load(c, tok.AccessToken, 4, 15, nil)
	byOp := map[string]map[int]int{}
	var slowest time.Duration
	for _, s := range down {
		if s.err != nil {
			t.Fatalf("Redis down: %s: transport error %v (did the process crash?)", s.op, s.err)
		}
		if byOp[s.op] == nil {
			byOp[s.op] = map[int]int{}
		}
		byOp[s.op][s.status]++
		slowest = max(slowest, s.elapsed)
	}
	t.Logf("Redis down: %v; slowest request %s", byOp, slowest)
	if n := len(byOp["GET /me"]); n != 1 || byOp["GET /me"][503] == 0 {
		t.Errorf("GET /me with the revocation store down: %v, want only 503 (never a pass)", byOp["GET /me"])
	}
	if n := len(byOp["GET JWKS"]); n != 1 || byOp["GET JWKS"][200] == 0 {
		t.Errorf("the JWKS (on-store-error: allow) with Redis down: %v, want only 200", byOp["GET JWKS"])
	}
	if n := len(byOp["GET /healthz"]); n != 1 || byOp["GET /healthz"][200] == 0 {
		t.Errorf("GET /healthz with Redis down: %v, want only 200", byOp["GET /healthz"])
	}
	if slowest >= stuck {
		t.Errorf("slowest request took %s: it waited on go-redis's own timeouts, not SPECGUARD_STORE_TIMEOUT (%s)", slowest, storeTimeout)
	}
	// Login's tier says deny: 503 with Retry-After.
	lr, _ := c.LoginWithResponse(ctx, client.LoginRequest{Email: "user@example.com", Password: "user-password"})
	want(t, "login with Redis down", lr.StatusCode(), 503, lr.Body)
	if lr.HTTPResponse.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}

	// Redis back (empty: it keeps nothing on disk), specguard not restarted.
	srv.Restart(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, _ := c.ReadyzWithResponse(ctx)
		if r.StatusCode() == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/readyz did not recover")
		}
		time.Sleep(100 * time.Millisecond)
	}
	again := login(t, NewClient(t, in), "user@example.com", "user-password")
	me, _ := c.GetMeWithResponse(ctx, Bearer(again.AccessToken))
	want(t, "GET /me after Redis returned", me.StatusCode(), 200, me.Body)
}

// SIGTERM during load: requests in flight complete, new connections are
// refused, and the process exits 0 (Stop, run by Cleanup, checks it).
func TestSIGTERMDuringLoad(t *testing.T) {
	in := Start(t)
	c := NewClient(t, in)
	tok := login(t, c, "user@example.com", "user-password")
	stop := make(chan struct{})
	var samples []sample
	done := make(chan struct{})
	go func() {
		samples = load(c, tok.AccessToken, 8, 400, stop)
		close(done)
	}()
	time.Sleep(300 * time.Millisecond)
	if err := in.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	<-done
	<-in.exited
	if !in.cmd.ProcessState.Success() {
		t.Fatalf("exit after SIGTERM: %v\n%s", in.cmd.ProcessState, in.logs.String())
	}
	// Every request either got a whole response (200, or 429 once the
	// load exhausts its limits) or was refused a connection.
	ok, refused := 0, 0
	for _, s := range samples {
		switch {
		case s.err == nil && (s.status == 200 || s.status == 429):
			ok++
		case s.err != nil && isRefused(s.err):
			refused++
		default:
			t.Errorf("%s during shutdown: status %d, error %v; want a response or connection refused", s.op, s.status, s.err)
		}
	}
	t.Logf("%d completed, %d refused after SIGTERM", ok, refused)
	if ok == 0 || refused == 0 {
		t.Errorf("completed %d, refused %d: want both (load before and after the signal)", ok, refused)
	}
	if _, err := http.Get(in.Base + "/healthz"); err == nil {
		t.Error("a request after exit was answered")
	}
}

// A second signal while the requests in flight drain ends the process at
// once: it stayed up, ignoring SIGINT and SIGTERM, until the shutdown
// timeout had passed.
func TestSecondSignalEndsTheDrain(t *testing.T) {
	in := Start(t, "SPECGUARD_SHUTDOWN_TIMEOUT=2m")
	// A request held in flight: its body never comes whole.
	conn, err := net.Dial("tcp", strings.TrimPrefix(in.Base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"email\""); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if err := in.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(in.logs.String(), "shutting down"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no graceful stop began on SIGTERM:\n%s", in.logs.String())
		}
	}
	select {
	case <-in.exited:
		t.Fatalf("exited while a request was in flight, before the second signal: %v", in.cmd.ProcessState)
	case <-time.After(300 * time.Millisecond):
	}
	if err := in.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-in.exited:
		if in.cmd.ProcessState.Success() {
			t.Errorf("ended by the second signal with status 0: %v", in.cmd.ProcessState)
		}
		in.cmd = nil // Stop, at cleanup, would ask for status 0
	case <-time.After(30 * time.Second):
		t.Errorf("still running 30 s after a second signal, with the shutdown timeout at 2m")
	}
}

func isRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "connection refused") ||
		errors.Is(err, syscall.ECONNRESET) || strings.Contains(err.Error(), "EOF")
}

// A freshly started instance on a healthy Redis answers a burst without a
// single 503: its scripts are loaded and its connections open before it
// listens.
func TestFreshInstanceBurst(t *testing.T) {
	// At the default store timeout: a first call that loads a script or
	// opens a connection would overrun it.
	in := Start(t, append(Shared(Redis(t), Postgres(t), keytest.File(t)), "SPECGUARD_STORE_TIMEOUT=100ms")...)
	var wg sync.WaitGroup
	statuses := make(chan int, 20)
	for i := range 20 {
		c := NewClient(t, in) // an address and an account each: failures are limited per both
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.LoginWithResponse(ctx, client.LoginRequest{Email: fmt.Sprintf("burst%d@example.com", i), Password: "wrong-password"})
			if err != nil {
				t.Error(err)
				return
			}
			statuses <- r.StatusCode()
		}()
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != 401 {
			t.Errorf("a burst on a fresh instance got %d, want 401", s)
		}
	}
}

// The admin listener's default was Prometheus's own port (9090), and it
// served /debug/pprof/cmdline, flags and their passwords included, to
// anyone who reached it. Now it listens on the API's port + 1000, pprof is
// served only when asked, and its command line hides URL passwords.
func TestAdminListenerDefaults(t *testing.T) {
	port := redistest.FreePort(t)
	for port+1000 > 65535 {
		port = redistest.FreePort(t)
	}
	url := strings.Replace(pgtest.New(t), "postgres@", "postgres:hunter2@", 1) // trust auth ignores it
	in := StartWith(t, []string{"--database-url", url},
		fmt.Sprintf("SPECGUARD_ADDR=127.0.0.1:%d", port), "SPECGUARD_ADMIN_ADDR=auto",
		"SPECGUARD_SIGNING_KEY_FILE="+keytest.File(t))
	admin := fmt.Sprintf("http://127.0.0.1:%d", port+1000)
	get := func(path string) (int, string) {
		resp, err := http.Get(admin + path)
		if err != nil {
			t.Fatalf("admin listener at %s: %v", admin, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/metrics"); code != 200 {
		t.Errorf("/metrics on the API's port + 1000: %d", code)
	}
	if code, _ := get("/debug/pprof/cmdline"); code != 404 {
		t.Errorf("/debug/pprof/cmdline unasked: %d, want 404", code)
	}
	in.Stop(t)

	// A password may also travel as a query parameter (pgx reads
	// ?password= and ?sslpassword=): hidden too, in the command line and in
	// the start-up log line that names the database.
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	url += sep + "password=hunter3&sslpassword=hunter4"
	in = StartWith(t, []string{"--database-url", url}, fmt.Sprintf("SPECGUARD_ADDR=127.0.0.1:%d", port),
		"SPECGUARD_ADMIN_ADDR=auto", "SPECGUARD_ADMIN_PPROF=true", "SPECGUARD_SIGNING_KEY_FILE="+keytest.File(t))
	code, cmdline := get("/debug/pprof/cmdline")
	if code != 200 || !strings.Contains(cmdline, "postgres:xxxxx@") || !strings.Contains(cmdline, "password=xxxxx") {
		t.Errorf("/debug/pprof/cmdline asked for: %d %q; want the URL with its passwords hidden", code, cmdline)
	}
	logs := in.logs.String()
	if !strings.Contains(logs, `"database":"postgres://postgres:xxxxx@`) {
		t.Errorf("the start-up line names no database:\n%s", logs)
	}
	for _, secret := range []string{"hunter2", "hunter3", "hunter4"} {
		if strings.Contains(cmdline, secret) || strings.Contains(logs, secret) {
			t.Errorf("%s leaked: cmdline %q, logs:\n%s", secret, cmdline, logs)
		}
	}
}
