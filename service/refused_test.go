package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/credentials/sqlstore"
	"github.com/specguard/specguard/internal/keytest"
	"github.com/specguard/specguard/internal/pgtest"
	"github.com/specguard/specguard/internal/redistest"
	"github.com/specguard/specguard/service"
	"github.com/specguard/specguard/sqldb"
)

// A start refused for its settings (a key file, the users file, an
// address in use) has written nothing: no database created or migrated
// (instances of an older version refuse a database migrated past
// theirs), no development key, no lock file.
func TestRefusedStartWritesNothing(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	// The app's document with its session cookie not named __Host-.
	noPrefix := filepath.Join(t.TempDir(), "openapi.yaml")
	if err := os.WriteFile(noPrefix, []byte(strings.Replace(string(testApp().Spec), "name: __Host-session", "name: session", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	users := filepath.Join(t.TempDir(), "users.yaml")
	if err := os.WriteFile(users, []byte("- {email: a@example.com, password: pw-pw-pw-pw, role: admin}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, env := range map[string]map[string]string{
		"missing signing key file":          {"SPECGUARD_SIGNING_KEY_FILE": filepath.Join(t.TempDir(), "no-such-key.pem")},
		"users file others read":            {"SPECGUARD_USERS_FILE": users},
		"address in use":                    {"SPECGUARD_ADDR": taken.Addr().String()},
		"admin address in use":              {"SPECGUARD_ADMIN_ADDR": taken.Addr().String()},
		"a document the credentials refuse": {"SPECGUARD_SPEC_FILE": noPrefix},
	} {
		env["SPECGUARD_DATA_DIR"] = t.TempDir()
		if env["SPECGUARD_ADDR"] == "" {
			env["SPECGUARD_ADDR"] = "127.0.0.1:0"
		}
		if env["SPECGUARD_ADMIN_ADDR"] == "" {
			env["SPECGUARD_ADMIN_ADDR"] = "off"
		}
		refusedWritesNothing(t, name, env, "")
	}
	// One the guard refuses: a tier that counts by a claim no credential
	// carries.
	claim := filepath.Join(t.TempDir(), "openapi.yaml")
	if err := os.WriteFile(claim, []byte(strings.Replace(string(testApp().Spec), "key: principal", "key: claim:tenant", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	refusedWritesNothing(t, "a document the guard refuses", map[string]string{"SPECGUARD_SPEC_FILE": claim, "SPECGUARD_DATA_DIR": t.TempDir(), "SPECGUARD_ADDR": "127.0.0.1:0", "SPECGUARD_ADMIN_ADDR": "off"},
		"SPECGUARD_SPEC_FILE: guard: "+claim+": x-rate-limit (document default): key claim:tenant: no credential of any operation carries it")
	// A shared PostgreSQL database is not migrated by a start refused for
	// its key.
	url := pgtest.New(t)
	env := map[string]string{"SPECGUARD_DATABASE_URL": url, "SPECGUARD_ADDR": "127.0.0.1:0", "SPECGUARD_ADMIN_ADDR": "off", "SPECGUARD_DATA_DIR": t.TempDir()}
	if _, err := service.Build(context.Background(), testApp(), nil, func(k string) string { return env[k] }, io.Discard, io.Discard); err == nil {
		t.Fatal("PostgreSQL without a signing key: Build succeeded")
	}
	db, err := sqldb.Open(context.Background(), sqldb.Source{Kind: sqldb.Postgres, DSN: url})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if current, _, err := db.Versions(context.Background(), sqlstore.Migrations); err != nil || current != 0 {
		t.Errorf("the database after a refused start: version %d (%v), want 0", current, err)
	}
}

// refusedWritesNothing runs the service with env (its data directory
// SPECGUARD_DATA_DIR), which must refuse to start with an error holding
// want, and leave nothing in the directory.
func refusedWritesNothing(t *testing.T, name string, env map[string]string, want string) {
	t.Helper()
	// A start that is not refused serves until the context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err := service.Run(ctx, testApp(), nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
	cancel()
	if err == nil {
		t.Fatalf("%s: Run started", name)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("%s: %v, want %q", name, err, want)
	}
	entries, _ := os.ReadDir(env["SPECGUARD_DATA_DIR"])
	for _, e := range entries {
		t.Errorf("%s: left behind: %s", name, e.Name())
	}
}

// A Redis Cluster node (one shard, say) named by a redis:// URL would
// refuse every request with two keys (CROSSSLOT): the start is refused,
// naming it, with nothing written.
func TestClusterNodeAsOneRedisRefused(t *testing.T) {
	node := redistest.StartCluster(t).Nodes[0].Addr
	env := map[string]string{"SPECGUARD_REDIS_URL": "redis://" + node, "SPECGUARD_SIGNING_KEY_FILE": keytest.File(t),
		"SPECGUARD_DATA_DIR": t.TempDir(), "SPECGUARD_ADDR": "127.0.0.1:0", "SPECGUARD_ADMIN_ADDR": "off"}
	refusedWritesNothing(t, "a Cluster node as one Redis", env, "SPECGUARD_REDIS_URL: the server is a Redis Cluster node (cluster_enabled:1)")
}

// In the development setup with demo accounts (published passwords), the
// API answers loopback hosts only, and no request a proxy forwarded: a page
// that re-points its own name to 127.0.0.1 (DNS rebinding) is the API's
// origin to the browser, and must not log in with them.
func TestDemoAccountsAnswerLoopbackHostsOnly(t *testing.T) {
	app := testApp()
	app.DemoUsers = []credentials.SeedAccount{{Email: "admin@example.com", Password: "admin-password", Role: "admin"}}
	env := map[string]string{"SPECGUARD_DATA_DIR": t.TempDir(), "SPECGUARD_ADMIN_ADDR": "off"}
	srv, err := service.Build(context.Background(), app, nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ts := httptest.NewServer(srv.Handler)
	defer ts.Close()
	for host, want := range map[string]int{"rebind.attacker.example": http.StatusMisdirectedRequest, "localhost": http.StatusOK, "app.localhost": http.StatusOK, "LOCALHOST": http.StatusOK, "App.LocalHost": http.StatusOK, "": http.StatusOK} {
		body := `{"email":"admin@example.com","password":"admin-password"}`
		req, _ := http.NewRequest("POST", ts.URL+"/auth/login", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if host != "" {
			req.Host = host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %q: %d, want %d", host, resp.StatusCode, want)
		}
		if ct := resp.Header.Get("Content-Type"); want != http.StatusOK && ct != "application/problem+json" {
			t.Errorf("Host %q: Content-Type %q, want a problem", host, ct)
		}
	}
	// Nor through a proxy on this machine: one in front of the loopback
	// address, Host 127.0.0.1 and all, serves whoever reaches it.
	for _, h := range []string{"X-Forwarded-For", "Forwarded", "Via", "X-Real-IP", "X-Forwarded-Host"} {
		req, _ := http.NewRequest("POST", ts.URL+"/auth/login", strings.NewReader(`{"email":"admin@example.com","password":"admin-password"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(h, "203.0.113.9")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMisdirectedRequest || !strings.Contains(string(raw), "came through a proxy") {
			t.Errorf("a request with %s: %d %s, want 421", h, resp.StatusCode, raw)
		}
	}
}

// addrWriter passes on the address of the "listening" log line.
type addrWriter struct{ addrc chan string }

func (w addrWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(string(p), "\n") {
		var l struct{ Msg, Addr string }
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "listening" {
			w.addrc <- l.Addr
		}
	}
	return len(p), nil
}

// Asked to stop, Run stops and returns nil even when a request is still in
// flight at the shutdown timeout: that request is cut.
func TestShutdownPastItsTimeout(t *testing.T) {
	env := map[string]string{"SPECGUARD_DATA_DIR": t.TempDir(), "SPECGUARD_ADDR": "127.0.0.1:0", "SPECGUARD_ADMIN_ADDR": "off", "SPECGUARD_SHUTDOWN_TIMEOUT": "200ms"}
	logs := addrWriter{addrc: make(chan string, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- service.Run(ctx, testApp(), nil, func(k string) string { return env[k] }, logs, io.Discard)
	}()
	addr := <-logs.addrc
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Headers and one byte of a body of 100: in flight until cut.
	fmt.Fprintf(conn, "POST /auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after a shutdown past its timeout: %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
}

// With SPECGUARD_SHUTDOWN_DELAY, an instance asked to stop serves on for
// the delay while /readyz answers 503 (shutting_down), so that a load
// balancer stops sending it requests before its listener closes; then it
// stops. Without it, the listener closed at once and requests routed to
// it in the meantime were refused.
func TestShutdownDelayDrains(t *testing.T) {
	env := map[string]string{"SPECGUARD_DATA_DIR": t.TempDir(), "SPECGUARD_ADDR": "127.0.0.1:0", "SPECGUARD_ADMIN_ADDR": "off", "SPECGUARD_SHUTDOWN_DELAY": "3s"}
	logs := addrWriter{addrc: make(chan string, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- service.Run(ctx, testApp(), nil, func(k string) string { return env[k] }, logs, io.Discard)
	}()
	base := "http://" + <-logs.addrc
	get := func(path string) (int, string, error) {
		resp, err := http.Get(base + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), nil
	}
	if code, body, err := get("/readyz"); code != 200 || strings.Contains(body, "shutting_down") {
		t.Fatalf("/readyz before the stop: %d %s %v", code, body, err)
	}
	cancel()
	time.Sleep(300 * time.Millisecond) // well inside the delay
	if code, body, err := get("/readyz"); code != 503 || !strings.Contains(body, `"shutting_down":"unavailable"`) {
		t.Errorf("/readyz while draining: %d %s %v, want 503 saying shutting_down", code, body, err)
	}
	if code, _, err := get("/healthz"); code != 200 {
		t.Errorf("a request while draining: %d %v, want it served", code, err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after the delay: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after the delay")
	}
	if _, _, err := get("/healthz"); err == nil {
		t.Error("a request after the stop was answered")
	}
}

// A stop asked for while the service starts (SIGTERM as it migrates, say)
// is a stop, not a failure of the setting whose step it cut short: Run
// returns nil, saying it served nothing.
func TestStopWhileStartingIsNoFailure(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	env := map[string]string{"SPECGUARD_DATA_DIR": t.TempDir(), "SPECGUARD_ADDR": "127.0.0.1:0", "SPECGUARD_ADMIN_ADDR": "off"}
	var stderr strings.Builder
	if err := service.Run(ctx, testApp(), nil, func(k string) string { return env[k] }, io.Discard, &stderr); err != nil {
		t.Errorf("Run stopped while starting: %v, want nil", err)
	}
	if want := "svc: stopped while starting, before serving\n"; stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
	// A bad setting is reported all the same: the stop did not cause it.
	env["SPECGUARD_ACCESS_TTL"] = "soon"
	if err := service.Run(ctx, testApp(), nil, func(k string) string { return env[k] }, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "SPECGUARD_ACCESS_TTL") {
		t.Errorf("Run with a bad SPECGUARD_ACCESS_TTL, stopped while starting: %v, want the setting's error", err)
	}
}

// With the database outside the data directory, a data directory the dev
// key cannot be made in was found only after the database was created and
// migrated: the refused start left the file, its locks and its tables.
// It is refused first now, naming the variable.
func TestUnmakeableDataDirRefusedBeforeTheDatabase(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dirs := map[string]string{"under a file": filepath.Join(file, "data")}
	if runtime.GOOS == "linux" {
		dirs["in /proc"] = "/proc/specguard-no-such-dir/data" // root may write there, by its mode, but not make a directory
	}
	if os.Geteuid() != 0 { // root writes whatever the mode says
		ro := filepath.Join(t.TempDir(), "read-only")
		if err := os.Mkdir(ro, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(ro, 0o700) })
		dirs["in a directory it may not write"] = filepath.Join(ro, "data")
	}
	for name, dataDir := range dirs {
		vol := t.TempDir()
		env := map[string]string{"SPECGUARD_DATABASE_URL": "sqlite:" + filepath.Join(vol, "blog.db"), "SPECGUARD_DATA_DIR": dataDir,
			"SPECGUARD_ADDR": "127.0.0.1:0", "SPECGUARD_ADMIN_ADDR": "off"}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := service.Run(ctx, testApp(), nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
		cancel()
		if err == nil || !strings.HasPrefix(err.Error(), "SPECGUARD_DATA_DIR: ") {
			t.Errorf("%s: %v, want SPECGUARD_DATA_DIR: ...", name, err)
		}
		entries, _ := os.ReadDir(vol)
		for _, e := range entries {
			t.Errorf("%s: left beside the database: %s", name, e.Name())
		}
	}
}
