package server_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	yaml "gopkg.in/yaml.v3"

	"github.com/specguard/specguard/api"
	"github.com/specguard/specguard/credentials/sqlstore"
	"github.com/specguard/specguard/internal/keytest"
	"github.com/specguard/specguard/internal/pgtest"
	"github.com/specguard/specguard/internal/redistest"
	"github.com/specguard/specguard/internal/spectest"
	"github.com/specguard/specguard/internal/testenv"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/server"
	"github.com/specguard/specguard/sqldb"
)

// lineWriter collects log lines and signals the address once listening.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	addrc chan string
	admin string // the admin listener's address, once listening
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for _, line := range strings.Split(string(p), "\n") {
		var rec struct{ Msg, Addr, Admin string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
			w.admin = rec.Admin
			select {
			case w.addrc <- rec.Addr:
			default:
			}
		}
	}
	return len(p), nil
}

func (w *lineWriter) String() string { w.mu.Lock(); defer w.mu.Unlock(); return w.buf.String() }

type instance struct {
	base string
	// proxied: the instance trusts loopback as a proxy, so a request may
	// name its client (X-Forwarded-For); the development setup, which
	// trusts none, refuses a request that names one.
	proxied bool
	admin   string // host:port of /metrics, or "off"
	logs    *lineWriter
	cancel  context.CancelFunc
	done    chan error
}

// start runs the real server on 127.0.0.1:0 with env and waits for /healthz.
func start(t *testing.T, env map[string]string) *instance {
	t.Helper()
	if env == nil {
		env = map[string]string{}
	}
	if env["SPECGUARD_DATA_DIR"] == "" {
		env["SPECGUARD_DATA_DIR"] = t.TempDir()
	}
	if _, given := env["SPECGUARD_USERS_FILE"]; !given && (env["SPECGUARD_REDIS_URL"] != "" || strings.HasPrefix(env["SPECGUARD_DATABASE_URL"], "postgres") ||
		env["SPECGUARD_TRUSTED_PROXIES"] != "") {
		// The demo accounts are seeded only in the development setup: a
		// fleet, or an instance behind a proxy, gets the same accounts
		// from a users file.
		env["SPECGUARD_USERS_FILE"] = testenv.DemoUsersFile(t)
	}
	if env["SPECGUARD_ADDR"] == "" {
		env["SPECGUARD_ADDR"] = "127.0.0.1:0"
	}
	if env["SPECGUARD_STORE_TIMEOUT"] == "" {
		// As e2e does: the product's 100ms is short for a store call on a
		// machine running every package under -race, and no test here is
		// about a slow store (CI once saw such a 503 in credentials).
		env["SPECGUARD_STORE_TIMEOUT"] = "2s"
	}
	if env["SPECGUARD_ADMIN_ADDR"] == "" {
		env["SPECGUARD_ADMIN_ADDR"] = "127.0.0.1:0"
	}
	logs := &lineWriter{addrc: make(chan string, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	inst := &instance{logs: logs, cancel: cancel, done: make(chan error, 1), proxied: env["SPECGUARD_TRUSTED_PROXIES"] != ""}
	go func() {
		inst.done <- server.Run(ctx, nil, func(k string) string { return env[k] }, logs, io.Discard)
	}()
	select {
	case addr := <-logs.addrc:
		inst.base = "http://" + addr
		logs.mu.Lock()
		inst.admin = logs.admin
		logs.mu.Unlock()
	case err := <-inst.done:
		cancel()
		t.Fatalf("server did not start: %v", err)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("server did not start within 20s")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-inst.done:
			if err != nil {
				t.Errorf("Run returned %v after shutdown, want nil", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("server did not stop")
		}
	})
	resp, err := http.Get(inst.base + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	return inst
}

func (in *instance) do(t *testing.T, method, path, body string, headers ...string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, in.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp, m
}

func login(t *testing.T, in *instance, email, password string, headers ...string) string {
	t.Helper()
	resp, m := in.do(t, "POST", at(t, "login"), fmt.Sprintf(`{"email":%q,"password":%q}`, email, password), headers...)
	if resp.StatusCode != 200 {
		t.Fatalf("login %s: %d %v", email, resp.StatusCode, m)
	}
	return m["access_token"].(string)
}

func TestServeMemoryAndRedis(t *testing.T) {
	t.Run("memory", func(t *testing.T) { journey(t, start(t, nil)) })
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		journey(t, start(t, map[string]string{"SPECGUARD_REDIS_URL": srv.URL, "SPECGUARD_SIGNING_KEY_FILE": keytest.File(t)}))
	})
}

func journey(t *testing.T, in *instance) {
	// A public operation answers through its generated handler.
	resp, m := in.do(t, "GET", at(t, "jwks"), "")
	if resp.StatusCode != 200 || len(m["keys"].([]any)) != 1 {
		t.Fatalf("jwks: %d %v", resp.StatusCode, m)
	}
	resp, m = in.do(t, "GET", "/readyz", "")
	if resp.StatusCode != 200 || m["status"] != "ok" {
		t.Fatalf("readyz: %d %v", resp.StatusCode, m)
	}
	// Protected without credentials: 401 with the RFC 6750 challenge.
	resp, m = in.do(t, "GET", at(t, "me"), "")
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Bearer realm="specguard"` || m["type"] != "urn:specguard:problem:unauthenticated" {
		t.Fatalf("/me anonymous: %d %q %v", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), m)
	}
	tok := login(t, in, "user@example.com", "user-password")
	resp, m = in.do(t, "GET", at(t, "me"), "", "Authorization", "Bearer "+tok)
	if scheme := spectest.BearerScheme(t, spectest.CredentialOp(t, docTable(t), "me")); resp.StatusCode != 200 || m["email"] != "user@example.com" || m["scheme"] != scheme {
		t.Fatalf("/me: %d %v, want scheme %s", resp.StatusCode, m, scheme)
	}
	// A user may not list accounts: 403 insufficient_scope naming the scope.
	listUsers := spectest.CredentialOp(t, docTable(t), "list-users")
	resp, _ = in.do(t, "GET", listUsers.Path, "", "Authorization", "Bearer "+tok)
	if scopes, _ := spectest.ScopesOf(listUsers, policy.SchemeOAuth2); len(scopes) == 0 || resp.StatusCode != 403 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `scope="`+strings.Join(scopes, " ")+`"`) {
		t.Fatalf("%s as user: %d %q, want 403 naming the scopes the document requires of a token (%v)", listUsers.Path, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), scopes)
	}
	// Validation after the guard: 400 naming the field.
	register := spectest.CredentialOp(t, docTable(t), "register")
	resp, m = in.do(t, register.Method, register.Path, `{"email":"serve@example.com"}`)
	if resp.StatusCode != 400 || !strings.Contains(fmt.Sprint(m["errors"]), "body.password") {
		t.Fatalf("invalid registration: %d %v", resp.StatusCode, m)
	}
	resp, m = in.do(t, register.Method, register.Path, `{"email":"serve@example.com","password":"correct horse battery"}`)
	if resp.StatusCode != 201 || resp.Header.Get("RateLimit-Policy") == "" {
		t.Fatalf("register: %d %v %v", resp.StatusCode, m, resp.Header)
	}
	// Unknown path and wrong method.
	if resp, _ := in.do(t, "GET", "/nope", ""); resp.StatusCode != 404 {
		t.Errorf("unknown path: %d", resp.StatusCode)
	}
	if resp, _ := in.do(t, "PUT", at(t, "me"), ""); resp.StatusCode != 405 {
		t.Errorf("wrong method: %d", resp.StatusCode)
	}
}

// The login operation's tier counts attempts per client IP, failed or
// not: one past what it admits gets 429. A forged token naming a victim's
// subject is limited as anonymous by IP, so it cannot drain the victim's
// own bucket. What the tiers admit is read from the document.
func TestBruteForceAndForgedSubject(t *testing.T) {
	loginPath, admits, env := loginTier(t)
	in := start(t, env)
	from := func(ip string) []string { return []string{"X-Forwarded-For", ip} }
	for i := 1; i <= admits; i++ {
		resp, _ := in.do(t, "POST", loginPath, `{"email":"user@example.com","password":"wrong-password"}`, from("203.0.113.1")...)
		if resp.StatusCode != 401 {
			t.Fatalf("attempt %d: %d, want 401", i, resp.StatusCode)
		}
	}
	resp, m := in.do(t, "POST", loginPath, `{"email":"user@example.com","password":"user-password"}`, from("203.0.113.1")...)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || m["type"] != "https://iana.org/assignments/http-problem-types#quota-exceeded" {
		t.Fatalf("attempt %d: %d %v", admits+1, resp.StatusCode, m)
	}
	// Another client is not affected.
	victim := login(t, in, "user@example.com", "user-password", from("203.0.113.2")...)

	// Forge: take the victim's token and change its payload; twice as many
	// requests as the anonymous tier of /me admits at once, and some: what
	// it refills meanwhile, on a slow machine, is spent too.
	parts := strings.Split(victim, ".")
	forged := parts[0] + "." + parts[1] + "x." + parts[2]
	meOp := spectest.CredentialOp(t, docTable(t), "me")
	for range 2*spectest.Admits(spectest.TierOf(t, meOp, policy.KeyIP, policy.WhoAnonymous)) + 20 {
		resp, _ := in.do(t, "GET", at(t, "me"), "", append(from("203.0.113.3"), "Authorization", "Bearer "+forged)...)
		if resp.StatusCode != 401 && resp.StatusCode != 429 {
			t.Fatalf("forged token: %d", resp.StatusCode)
		}
	}
	resp, _ = in.do(t, "GET", at(t, "me"), "", append(from("203.0.113.3"), "Authorization", "Bearer "+forged)...)
	if resp.StatusCode != 429 {
		t.Fatalf("forged tokens were not throttled as anonymous: %d", resp.StatusCode)
	}
	resp, _ = in.do(t, "GET", at(t, "me"), "", append(from("203.0.113.2"), "Authorization", "Bearer "+victim)...)
	if resp.StatusCode != 200 {
		t.Fatalf("victim after the forgery flood: %d, want 200", resp.StatusCode)
	}
	if strings.Contains(in.logs.String(), victim) || strings.Contains(in.logs.String(), parts[2]) {
		t.Fatal("a token appears in the logs")
	}
}

// SIGTERM (context cancelled) lets an in-flight request finish, refuses new
// connections, and Run returns nil.
func TestGracefulShutdown(t *testing.T) {
	env := map[string]string{"SPECGUARD_DATA_DIR": t.TempDir(), "SPECGUARD_ADDR": "127.0.0.1:0", "SPECGUARD_ADMIN_ADDR": "off"}
	logs := &lineWriter{addrc: make(chan string, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx, nil, func(k string) string { return env[k] }, logs, io.Discard) }()
	addr := <-logs.addrc

	// Send headers and half a body, then shut down, then finish the body.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"email":"new@example.com","password":"a-long-password"}`
	fmt.Fprintf(conn, "POST /auth/register HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:10])
	time.Sleep(100 * time.Millisecond)
	cancel()
	time.Sleep(100 * time.Millisecond)
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("a new connection was accepted during shutdown")
	}
	fmt.Fprint(conn, body[10:])
	status, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.Contains(status, "201") {
		t.Fatalf("in-flight request: %q %v, want 201", status, err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
}

// Bad configuration stops start-up with one line naming what and where,
// before anything listens.
func TestBadConfiguration(t *testing.T) {
	dir := t.TempDir()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := taken.Addr().String()
	// An operation of the app's own: the binary serves it whatever file
	// describes it.
	appOp := spectest.AppOp(t, docTable(t), "an operation of the app's own", func(*policy.Operation) bool { return true })
	sameKey := keyPEM(t)
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"bad duration", map[string]string{"SPECGUARD_ACCESS_TTL": "soon"}, nil, `SPECGUARD_ACCESS_TTL: "soon" is not a positive duration such as 15m`},
		{"bad session idle", map[string]string{"SPECGUARD_SESSION_IDLE": "-5m"}, nil, `SPECGUARD_SESSION_IDLE: "-5m" is neither 0 (off) nor a duration of at least 1s such as 30m`},
		{"access tokens that end as issued", map[string]string{"SPECGUARD_ACCESS_TTL": "1ns"}, nil, `SPECGUARD_ACCESS_TTL: "1ns" is shorter than a second: a credential's times are whole seconds, and it would end as it is issued`},
		{"sessions that end as made", nil, []string{"--session-ttl", "900ms"}, `invalid value "900ms" for flag -session-ttl: "900ms" is shorter than a second`},
		{"identity provider leeway too long", map[string]string{"SPECGUARD_OIDC_LEEWAY": "1h"}, nil, `SPECGUARD_OIDC_LEEWAY: "1h" is not a positive duration up to 5m0s`},
		{"store timeout no call could meet", map[string]string{"SPECGUARD_STORE_TIMEOUT": "100us"}, nil, `SPECGUARD_STORE_TIMEOUT: "100us" is not a duration from 1ms to 1m`},
		{"store timeout that holds requests for hours", map[string]string{"SPECGUARD_STORE_TIMEOUT": "10000h"}, nil, `SPECGUARD_STORE_TIMEOUT: "10000h" is not a duration from 1ms to 1m`},
		{"refresh shorter than access", map[string]string{"SPECGUARD_ACCESS_TTL": "2h", "SPECGUARD_REFRESH_TTL": "1h"}, nil, "SPECGUARD_REFRESH_TTL (1h0m0s) is shorter than SPECGUARD_ACCESS_TTL (2h0m0s)"},
		{"bad log format", map[string]string{"SPECGUARD_LOG_FORMAT": "xml"}, nil, `SPECGUARD_LOG_FORMAT: "xml" is not json or text`},
		{"trusted proxies of separators alone", map[string]string{"SPECGUARD_TRUSTED_PROXIES": ", ,"}, nil, `SPECGUARD_TRUSTED_PROXIES: ", ," lists nothing; leave it empty for none`},
		{"a value in an env file's quotes", map[string]string{"SPECGUARD_TRUSTED_PROXIES": `"10.0.0.0/8"`}, nil, `SPECGUARD_TRUSTED_PROXIES: the value is in quotes (an env file's quotes are kept as they are); give the value alone`},
		{"bad trusted proxy", map[string]string{"SPECGUARD_TRUSTED_PROXIES": "10.0.0.0/99"}, nil, `SPECGUARD_TRUSTED_PROXIES: trusted proxy "10.0.0.0/99" is not a CIDR or an IP address`},
		{"missing key file", map[string]string{"SPECGUARD_SIGNING_KEY_FILE": filepath.Join(dir, "nope.pem")}, nil, "SPECGUARD_SIGNING_KEY_FILE: open " + filepath.Join(dir, "nope.pem") + ": no such file or directory"},
		{"garbage key file", map[string]string{"SPECGUARD_SIGNING_KEY_FILE": write("bad.pem", "hello")}, nil, "SPECGUARD_SIGNING_KEY_FILE: " + filepath.Join(dir, "bad.pem") + ": no PEM block found"},
		{"signing key readable by others", map[string]string{"SPECGUARD_SIGNING_KEY_FILE": readable(write("open.pem", keyPEM(t)), 0o644)}, nil, "SPECGUARD_SIGNING_KEY_FILE: " + filepath.Join(dir, "open.pem") + ": mode 0644 lets other users read a private key; chmod 600 it"},
		{"verify key readable by the group", map[string]string{"SPECGUARD_VERIFY_KEY_FILES": readable(write("old.pem", keyPEM(t)), 0o640)}, nil, "SPECGUARD_VERIFY_KEY_FILES: " + filepath.Join(dir, "old.pem") + ": mode 0640 lets other users read a private key; chmod 600 it"},
		{"short HMAC key", map[string]string{"SPECGUARD_SIGNING_KEY_FILE": write("short.pem", "-----BEGIN HMAC KEY-----\nc2hvcnQ=\n-----END HMAC KEY-----\n")}, nil, "SPECGUARD_SIGNING_KEY_FILE: " + filepath.Join(dir, "short.pem") + ": HMAC key of 5 bytes: at least 32 are required"},
		{"users file readable by others", map[string]string{"SPECGUARD_USERS_FILE": readable(write("u0.yaml", "- email: a@example.com\n  password: secret-password\n  role: user\n"), 0o644)}, nil, "SPECGUARD_USERS_FILE: " + filepath.Join(dir, "u0.yaml") + ": mode 0644 lets other users read its passwords; chmod 600 it"},
		{"users file unknown role", map[string]string{"SPECGUARD_USERS_FILE": write("u1.yaml", "- email: a@example.com\n  password: secret-password\n  role: root\n")}, nil, "SPECGUARD_USERS_FILE: " + filepath.Join(dir, "u1.yaml") + `:1: user 1 (a@example.com): role "root" is not declared in the spec's x-roles`},
		{"users file field given twice", map[string]string{"SPECGUARD_USERS_FILE": write("u-twice.yaml", "- email: a@example.com\n  password: first-password-1\n  role: user\n  password: second-password-2\n")}, nil, "SPECGUARD_USERS_FILE: " + filepath.Join(dir, "u-twice.yaml") + ":4: password is given twice in one user (first at line 2)"},
		{"users file unknown field", map[string]string{"SPECGUARD_USERS_FILE": write("u2.yaml", "- email: a@example.com\n  pasword: x\n  role: user\n")}, nil, "SPECGUARD_USERS_FILE: " + filepath.Join(dir, "u2.yaml") + ":2: pasword is not a field of a user; did you mean password?"},
		{"users file invisible character", map[string]string{"SPECGUARD_USERS_FILE": write("u6.yaml", "- email: a\u200b@example.com\n  password: secret-password\n  role: user\n")}, nil, "SPECGUARD_USERS_FILE: " + filepath.Join(dir, "u6.yaml") + `:1: user 1: email "a\u200b@example.com" holds an invisible or control character`},
		{"users file of two documents", map[string]string{"SPECGUARD_USERS_FILE": write("u-two-docs.yaml", "- {email: a@example.com, password: secret-password, role: user}\n---\n- {email: b@example.com, password: secret-password, role: user}\n")}, nil, "SPECGUARD_USERS_FILE: " + filepath.Join(dir, "u-two-docs.yaml") + ":2: a second YAML document (after ---): the file must hold one, and the reader would ignore the rest"},
		{"users file empty", map[string]string{"SPECGUARD_USERS_FILE": write("u4.yaml", "# nobody yet\n")}, nil, "SPECGUARD_USERS_FILE: " + filepath.Join(dir, "u4.yaml") + ": holds no users; want a list of users, each {email, password or password_hash, role}"},
		{"users file not a list", map[string]string{"SPECGUARD_USERS_FILE": write("u5.yaml", "email: a@example.com\npassword: x\nrole: user\n")}, nil, "SPECGUARD_USERS_FILE: " + filepath.Join(dir, "u5.yaml") + ":1: want a list of users, each {email, password or password_hash, role}"},
		{"allowed origin without a scheme", map[string]string{"SPECGUARD_ALLOWED_ORIGINS": "https://app.example.com, example.com"}, nil, `SPECGUARD_ALLOWED_ORIGINS: "example.com" is not an origin: want scheme://host[:port], such as https://app.example.com`},
		{"allowed origin with a slash", map[string]string{"SPECGUARD_ALLOWED_ORIGINS": "https://app.example.com/"}, nil, `SPECGUARD_ALLOWED_ORIGINS: "https://app.example.com/" is not an origin as browsers send it, and would match none: write "https://app.example.com"`},
		{"allowed origin in upper case", map[string]string{"SPECGUARD_ALLOWED_ORIGINS": "https://App.Example.com"}, nil, `SPECGUARD_ALLOWED_ORIGINS: "https://App.Example.com" is not an origin as browsers send it, and would match none: write "https://app.example.com"`},
		{"allowed origin with its default port", map[string]string{"SPECGUARD_ALLOWED_ORIGINS": "https://app.example.com:443"}, nil, `SPECGUARD_ALLOWED_ORIGINS: "https://app.example.com:443" is not an origin as browsers send it, and would match none: write "https://app.example.com"`},
		{"users file short password", map[string]string{"SPECGUARD_USERS_FILE": write("u7.yaml", "- email: a@example.com\n  password: short\n  role: user\n")}, nil, "SPECGUARD_USERS_FILE: " + filepath.Join(dir, "u7.yaml") + fmt.Sprintf(":1: user 1 (a@example.com): the password is shorter than %d characters", registerMinLength(t))},
		{"users file both password forms", map[string]string{"SPECGUARD_USERS_FILE": write("u3.yaml", "- email: a@example.com\n  password: x\n  password_hash: y\n  role: user\n")}, nil, "SPECGUARD_USERS_FILE: " + filepath.Join(dir, "u3.yaml") + ":1: user 1 (a@example.com): give exactly one of password and password_hash"},
		{"bad redis url", map[string]string{"SPECGUARD_REDIS_URL": "http://localhost"}, nil, `SPECGUARD_REDIS_URL: scheme "http": want redis, rediss, redis+cluster or rediss+cluster`},
		{"a database on a Redis Cluster", map[string]string{"SPECGUARD_REDIS_URL": "redis+cluster://127.0.0.1:7000,127.0.0.1:7001/3"}, nil, `SPECGUARD_REDIS_URL: a Redis Cluster has database 0 only, not "3"; leave the path out`},
		{"unreachable redis", map[string]string{"SPECGUARD_REDIS_URL": fmt.Sprintf("redis://127.0.0.1:%d/0", redistest.FreePort(t)), "SPECGUARD_SIGNING_KEY_FILE": write("k1.pem", keyPEM(t))}, nil, "SPECGUARD_REDIS_URL: cannot reach Redis"},
		{"redis without a signing key", map[string]string{"SPECGUARD_REDIS_URL": redistest.Start(t).URL}, nil, "SPECGUARD_SIGNING_KEY_FILE: required with SPECGUARD_REDIS_URL: every instance sharing it must sign with the same key; make one with `specguard keygen --out signing-key.pem`"},
		{"postgres without a signing key", map[string]string{"SPECGUARD_DATABASE_URL": pgtest.New(t)}, nil, "SPECGUARD_SIGNING_KEY_FILE: required with a PostgreSQL SPECGUARD_DATABASE_URL"},
		{"bad database url", map[string]string{"SPECGUARD_DATABASE_URL": "mysql://db/sg"}, nil, `SPECGUARD_DATABASE_URL: "mysql:..." is not a database URL: use sqlite:PATH, postgres://... or postgresql://...`},
		{"unreachable database", map[string]string{"SPECGUARD_DATABASE_URL": "postgres://sg:hunter2@127.0.0.1:1/sg?connect_timeout=2", "SPECGUARD_SIGNING_KEY_FILE": write("k2.pem", keyPEM(t))}, nil, "SPECGUARD_DATABASE_URL: cannot reach the database postgres://sg:xxxxx@127.0.0.1:1/sg"},
		{"unwritable sqlite file", map[string]string{"SPECGUARD_DATABASE_URL": "sqlite:" + write("not-a-dir", "x") + "/specguard.db"}, nil, "SPECGUARD_DATABASE_URL: sqlite:" + filepath.Join(dir, "not-a-dir") + "/specguard.db: mkdir " + filepath.Join(dir, "not-a-dir") + ": not a directory"},
		{"bad pool size", map[string]string{"SPECGUARD_DATABASE_POOL_SIZE": "0"}, nil, `SPECGUARD_DATABASE_POOL_SIZE: "0" is not a number of connections from 1 to 1000`},
		{"unknown flag", nil, []string{"--colour", "red"}, "flag provided but not defined: -colour"},
		{"missing spec file", map[string]string{"SPECGUARD_SPEC_FILE": filepath.Join(dir, "none.yaml")}, nil, "SPECGUARD_SPEC_FILE: open " + filepath.Join(dir, "none.yaml") + ": no such file or directory"},
		{"spec file with an operation the server lacks", map[string]string{"SPECGUARD_SPEC_FILE": write("extra.yaml", strings.Replace(string(api.Spec), "\npaths:\n", "\npaths:\n  /extra:\n    get:\n      operationId: extra\n      responses: { '200': { description: ok } }\n", 1))}, nil, "SPECGUARD_SPEC_FILE: GET /extra (extra): the binary has no route for it (SPECGUARD_SPEC_FILE must declare the operations the binary was generated from; to add or remove operations, edit api/openapi.yaml and run `make generate`)"},
		{"spec file without an operation the server serves", map[string]string{"SPECGUARD_SPEC_FILE": write("fewer.yaml", string(spectest.WithoutKey(t, api.Spec, "paths", appOp.Path, strings.ToLower(appOp.Method))))}, nil,
			fmt.Sprintf("SPECGUARD_SPEC_FILE: %s %s (%s) is missing: the binary serves it", appOp.Method, appOp.Path, appOp.ID)},
		{"empty listen address flag", nil, []string{"--addr="}, `invalid value "" for flag -addr: must not be empty; leave it out for the default`},
		{"empty data directory flag", nil, []string{"--data-dir="}, `invalid value "" for flag -data-dir: must not be empty; leave it out for the default`},
		{"empty issuer flag", nil, []string{"--issuer="}, `invalid value "" for flag -issuer: must not be empty; leave it out for the default`},
		{"the signing key among the verify keys", map[string]string{"SPECGUARD_SIGNING_KEY_FILE": write("same.pem", string(sameKey)), "SPECGUARD_VERIFY_KEY_FILES": filepath.Join(dir, "same.pem")}, nil,
			"SPECGUARD_VERIFY_KEY_FILES: " + filepath.Join(dir, "same.pem") + " is the same key as SPECGUARD_SIGNING_KEY_FILE " + filepath.Join(dir, "same.pem") + " (kid "},
		{"a secret in a bad OTLP endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://u:s3cretPW@h"}, nil, `OTEL_EXPORTER_OTLP_ENDPOINT: "ftp://u:xxxxx@h": want an http:// or https:// URL`},
		{"spec file that does not compile", map[string]string{"SPECGUARD_SPEC_FILE": write("bad.yaml", string(api.Spec)+"x-rate-limt: false\n")}, nil, "SPECGUARD_SPEC_FILE: " + filepath.Join(dir, "bad.yaml") + ":"},
		// Every problem on a line of its own is lint's; the start says the first.
		{"spec file with two problems", map[string]string{"SPECGUARD_SPEC_FILE": write("two.yaml", "openapi: 3.0.3\n")}, nil, "SPECGUARD_SPEC_FILE: " + filepath.Join(dir, "two.yaml") + ": invalid OpenAPI document: invalid info: must be an object (and 1 more: `specguard lint " + filepath.Join(dir, "two.yaml") + "` lists them)"},
		{"bad log-requests", map[string]string{"SPECGUARD_LOG_REQUESTS": "sometimes"}, nil, `SPECGUARD_LOG_REQUESTS: "sometimes" is not true or false`},
		{"bad admin address", map[string]string{"SPECGUARD_ADMIN_ADDR": "9090"}, nil, `SPECGUARD_ADMIN_ADDR: "9090" is not host:port, auto or off`},
		{"admin address taken", map[string]string{"SPECGUARD_ADMIN_ADDR": busy}, nil, "SPECGUARD_ADMIN_ADDR: listen tcp " + busy + ": bind: address already in use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := t.TempDir()
			env := map[string]string{"SPECGUARD_DATA_DIR": data, "SPECGUARD_ADDR": "127.0.0.1:0", "SPECGUARD_ADMIN_ADDR": "127.0.0.1:0"}
			for k, v := range tc.env {
				env[k] = v
			}
			logs := &lineWriter{addrc: make(chan string, 1)}
			err := server.Run(context.Background(), tc.args, func(k string) string { return env[k] }, logs, io.Discard)
			if err == nil {
				t.Fatal("Run succeeded, want an error")
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error = %q\nwant prefix %q", err, tc.want)
			}
			if strings.Contains(logs.String(), `"listening"`) {
				t.Error("the server started listening")
			}
			// A start refused for its settings writes nothing.
			if written, _ := os.ReadDir(data); len(written) > 0 {
				t.Errorf("the refused start wrote %s in the data directory", written[0].Name())
			}
		})
	}
}

// The dev signing key is generated once, with mode 0600, and reused.
// SPECGUARD_SPEC_FILE serves another document with the same operations:
// here login allows 2 attempts instead of 5.
// SPECGUARD_SPEC_FILE changes what is enforced without a rebuild: here the
// first GET operation gets a tier of 2 calls a minute by IP, and the third
// anonymous call is refused (limits apply before authentication refuses).
func TestSpecFile(t *testing.T) {
	table, err := policy.Compile(server.SpecSource, api.Spec)
	if err != nil {
		t.Fatal(err)
	}
	var op *policy.Operation
	for _, o := range table.Operations() {
		if o.Method == "GET" && !strings.Contains(o.Path, "{") {
			op = o
			break
		}
	}
	if op == nil {
		t.Fatal("the document has no GET operation without path parameters")
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(api.Spec, &doc); err != nil {
		t.Fatal(err)
	}
	get := lookup(t, lookup(t, lookup(t, doc.Content[0], "paths"), op.Path), "get")
	setKey(get, "x-rate-limit", "{name: tight, limit: 2, window: 1m, key: ip}")
	spec, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "openapi.yaml")
	if err := os.WriteFile(path, spec, 0o644); err != nil {
		t.Fatal(err)
	}
	in := start(t, map[string]string{"SPECGUARD_SPEC_FILE": path})
	for i := range 3 {
		resp, _ := in.do(t, "GET", op.Path, "")
		if (resp.StatusCode == http.StatusTooManyRequests) != (i == 2) {
			t.Fatalf("%s %s, call %d: %d", op.Method, op.Path, i+1, resp.StatusCode)
		}
	}
}

// lookup returns the value of key in the mapping node n.
func lookup(t *testing.T, n *yaml.Node, key string) *yaml.Node {
	t.Helper()
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	t.Fatalf("no %s in the document", key)
	return nil
}

// setKey sets key of the mapping node n to the YAML value.
func setKey(n *yaml.Node, key, value string) {
	var v yaml.Node
	_ = yaml.Unmarshal([]byte(value), &v)
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			n.Content[i+1] = v.Content[0]
			return
		}
	}
	n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, v.Content[0])
}

func TestDevKeyIsReused(t *testing.T) {
	dir := t.TempDir()
	jwksPath := spectest.CredentialOp(t, docTable(t), "jwks").Path
	keys := func(in *instance) string {
		resp, m := in.do(t, "GET", jwksPath, "")
		if list, _ := m["keys"].([]any); resp.StatusCode != 200 || len(list) == 0 {
			t.Fatalf("JWKS: %d %v, want 200 with keys", resp.StatusCode, m)
		}
		return fmt.Sprint(m["keys"])
	}
	a := start(t, map[string]string{"SPECGUARD_DATA_DIR": dir})
	k1 := keys(a)
	a.stop(t)
	b := start(t, map[string]string{"SPECGUARD_DATA_DIR": dir})
	if k2 := keys(b); k1 != k2 {
		t.Fatalf("a second start generated a new key: %s, then %s", k1, k2)
	}
	info, err := os.Stat(filepath.Join(dir, "signing-key.pem"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v, want mode 0600", info, err)
	}
	_ = login(t, b, "user@example.com", "user-password")
}

// Instances on one database must share their fast state: one without
// Redis would not see the others' logins, revocations and account changes,
// nor they its. It refuses to start beside any other instance, and one with
// Redis refuses to start beside it (on SQLite, such an instance would also
// have seeded the published demo accounts into the database the fleet
// serves); instances with Redis start side by side.
func TestInstancesOnOneDatabaseShareRedis(t *testing.T) {
	redisURL := redistest.Start(t).URL
	for name, db := range map[string]map[string]string{
		"sqlite":   {"SPECGUARD_DATA_DIR": t.TempDir()},
		"postgres": {"SPECGUARD_DATABASE_URL": pgtest.New(t)},
	} {
		t.Run(name, func(t *testing.T) {
			key := keytest.File(t)
			env := func(redis bool) map[string]string {
				e := map[string]string{"SPECGUARD_ADDR": "127.0.0.1:0", "SPECGUARD_ADMIN_ADDR": "off", "SPECGUARD_SIGNING_KEY_FILE": key}
				if redis {
					e["SPECGUARD_REDIS_URL"] = redisURL
				}
				for k, v := range db {
					e[k] = v
				}
				return e
			}
			refused := func(redis bool, want string) {
				t.Helper()
				e := env(redis)
				// One that starts anyway serves until this ends, then returns nil.
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				err := server.Run(ctx, nil, func(k string) string { return e[k] }, io.Discard, io.Discard)
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("with Redis %v: %v, want refused: %q", redis, err, want)
				}
			}
			memory := start(t, env(false))
			refused(false, "another specguard serves")
			refused(true, "without Redis; instances that share a database must share a Redis too")
			memory.stop(t)

			a, b := start(t, env(true)), start(t, env(true))
			refused(false, "instances that share a database must share a Redis too")
			a.stop(t)
			b.stop(t)
			start(t, env(false)) // the database is free again
		})
	}
}

// keyPEM is a new private signing key in PEM.
func keyPEM(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(keytest.File(t))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// readable sets path's mode and returns path.
func readable(path string, mode os.FileMode) string {
	if err := os.Chmod(path, mode); err != nil {
		panic(err)
	}
	return path
}

// stop ends the instance as SIGTERM would and waits for Run to return.
func (in *instance) stop(t *testing.T) {
	t.Helper()
	in.cancel()
	select {
	case err := <-in.done:
		if err != nil {
			t.Fatalf("Run returned %v", err)
		}
		in.done <- nil // for the cleanup registered by start
	case <-time.After(15 * time.Second):
		t.Fatal("server did not stop")
	}
}

// `make run` keeps its data across restarts with nothing else installed:
// accounts and API keys (and the app's records: posts_test.go) live in
// the SQLite file in the data dir.
func TestDataSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	a := start(t, map[string]string{"SPECGUARD_DATA_DIR": dir})
	if resp, m := a.do(t, "POST", at(t, "register"), `{"email":"keep@example.com","password":"correct horse battery"}`); resp.StatusCode != 201 {
		t.Fatalf("register: %d %v", resp.StatusCode, m)
	}
	tok := login(t, a, "keep@example.com", "correct horse battery")
	resp, key := a.do(t, "POST", at(t, "create-api-key"), keyBody(t, "ci"), "Authorization", "Bearer "+tok)
	if resp.StatusCode != 201 {
		t.Fatalf("create key: %d %v", resp.StatusCode, key)
	}
	a.stop(t)

	b := start(t, map[string]string{"SPECGUARD_DATA_DIR": dir})
	if _, err := os.Stat(filepath.Join(dir, "specguard.db")); err != nil {
		t.Fatalf("no database in the data dir: %v", err)
	}
	tok = login(t, b, "keep@example.com", "correct horse battery")
	resp, m := b.do(t, "GET", at(t, "me"), "", "Authorization", "Bearer "+tok)
	if resp.StatusCode != 200 || m["email"] != "keep@example.com" {
		t.Fatalf("the account after a restart: %d %v", resp.StatusCode, m)
	}
	resp, m = b.do(t, "GET", at(t, "me"), "", "X-API-Key", key["key"].(string))
	if resp.StatusCode != 200 || m["email"] != "keep@example.com" {
		t.Fatalf("the API key after a restart: %d %v", resp.StatusCode, m)
	}
	resp, m = b.do(t, "POST", at(t, "register"), `{"email":"keep@example.com","password":"correct horse battery"}`)
	if resp.StatusCode != 409 {
		t.Fatalf("registering the address again after a restart: %d %v", resp.StatusCode, m)
	}
}

// A database at a newer schema than this binary knows stops start-up with
// one line naming both versions; so does an unreachable one.
func TestNewerSchemaRefused(t *testing.T) {
	dir := t.TempDir()
	a := start(t, map[string]string{"SPECGUARD_DATA_DIR": dir})
	a.stop(t)
	d, err := sqldb.Open(context.Background(), sqldb.Source{Kind: sqldb.SQLite, DSN: filepath.Join(dir, "specguard.db")})
	if err != nil {
		t.Fatal(err)
	}
	_, known, err := d.Versions(context.Background(), sqlstore.Migrations)
	d.Close()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", filepath.Join(dir, "specguard.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(fmt.Sprintf("INSERT INTO "+sqlstore.Migrations.Table+" (version_id, is_applied) VALUES (%d, 1)", known+5)); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	env := map[string]string{"SPECGUARD_DATA_DIR": dir, "SPECGUARD_ADDR": "127.0.0.1:0", "SPECGUARD_ADMIN_ADDR": "off"}
	err = server.Run(context.Background(), nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
	want := fmt.Sprintf("is at schema version %d, this binary knows versions up to %d", known+5, known)
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Run on a newer schema = %v; want one line with %q", err, want)
	}
}

// A dev key other users may read, or a data directory that is a file, is
// refused before the database is made: nothing is written.
func TestDevKeyCheckedFirst(t *testing.T) {
	data := t.TempDir()
	key := filepath.Join(data, "signing-key.pem")
	if err := os.WriteFile(key, []byte(keyPEM(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ dir, want string }{
		{data, "SPECGUARD_DATA_DIR: " + key + ": mode 0644 lets other users read a private key; chmod 600 it"},
		{file, "SPECGUARD_DATA_DIR: open " + filepath.Join(file, "signing-key.pem") + ": not a directory"},
	} {
		env := map[string]string{"SPECGUARD_DATA_DIR": c.dir, "SPECGUARD_ADDR": "127.0.0.1:0", "SPECGUARD_ADMIN_ADDR": "off"}
		err := server.Run(context.Background(), nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("data directory %s: %v, want %q", c.dir, err, c.want)
		}
	}
	if entries, _ := os.ReadDir(data); len(entries) != 1 {
		t.Errorf("the refused start wrote beside the dev key: %d entries", len(entries))
	}
}
