// Package e2e drives the real binary of the example app over loopback through a
// client generated from api/openapi.yaml. Every request and response is
// checked against the spec: an undeclared status, header or body shape
// fails the test.
package e2e

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/specguard/specguard/api"
	"github.com/specguard/specguard/e2e/client"
	"github.com/specguard/specguard/internal/formats"
	"github.com/specguard/specguard/internal/pgtest"
	"github.com/specguard/specguard/internal/redistest"
	"github.com/specguard/specguard/internal/testenv"
)

// binary is the example app's server (cmd/blog), toolkit the specguard
// command (conform, new).
var binary, toolkit string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		// The tier that needs no outside tool: this suite builds the real
		// binaries and drives them (with Redis, PostgreSQL, Node.js).
		fmt.Println("e2e: skipped under -short: it builds and drives the real binaries (make test runs it)")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "specguard-e2e")
	if err != nil {
		panic(err)
	}
	binary, toolkit = filepath.Join(dir, "blog"), filepath.Join(dir, "specguard")
	// The e2e build differs from a release build only by the
	// specguard_testclock tag, which lets SPECGUARD_TEST_CLOCK_OFFSET shift
	// an instance's clock (service/clock_testclock.go).
	for _, b := range [][]string{{"-tags", "specguard_testclock", "-o", binary, "../cmd/blog"}, {"-o", toolkit, "../cmd/specguard"}} {
		build := exec.Command("go", append([]string{"build"}, b...)...)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: building", b[len(b)-1]+":", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Instance is one running specguard process.
type Instance struct {
	Base   string
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	logs   *syncBuffer
	env    []string
	args   []string // after "serve"
	bin    string   // the server binary: binary unless StartBinary says
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// Start runs the binary on a free loopback port with env (plus a private
// data dir, and 127.0.0.1 as a trusted proxy so tests can speak for many
// client IPs) and waits for /healthz. It is stopped with SIGTERM when the
// test ends, and must exit 0.
func Start(t *testing.T, env ...string) *Instance {
	t.Helper()
	return StartWith(t, nil, env...)
}

// StartWith is Start with flags after "serve".
func StartWith(t *testing.T, args []string, env ...string) *Instance {
	t.Helper()
	return startBinary(t, binary, args, env...)
}

// StartBinary is Start of another service's binary (one `specguard new`
// made): the same settings, the same checks.
func StartBinary(t *testing.T, bin string, env ...string) *Instance {
	t.Helper()
	return startBinary(t, bin, nil, env...)
}

func startBinary(t *testing.T, bin string, args []string, env ...string) *Instance {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "SPECGUARD_ADDR="); ok {
			addr = v // the test chose the address
		}
	}
	users := false
	for _, kv := range env {
		users = users || strings.HasPrefix(kv, "SPECGUARD_USERS_FILE=")
	}
	if !users {
		// The demo accounts are seeded only in the development setup,
		// which trusts no proxy: these instances trust the suite's client
		// addresses, and get the same accounts from a users file.
		env = append(env, "SPECGUARD_USERS_FILE="+testenv.DemoUsersFile(t))
	}
	all := append([]string{
		"SPECGUARD_ADDR=" + addr,
		"SPECGUARD_DATA_DIR=" + t.TempDir(),
		"SPECGUARD_TRUSTED_PROXIES=127.0.0.1/32",
		"SPECGUARD_ADMIN_ADDR=127.0.0.1:0", // several instances run at once
		// An answer of the example's handlers that breaks the document is
		// a 500, which the contract check then fails on.
		"SPECGUARD_VALIDATE_RESPONSES=enforce",
		// The suite runs beside the other packages on a busy machine,
		// where a Redis call now and then takes longer than the default
		// 100 ms and is answered 503: a test of behaviour would fail on
		// the machine's latency. A test of the bound sets its own (the
		// test's env comes after, and the last of a name wins).
		"SPECGUARD_STORE_TIMEOUT=2s",
	}, env...)
	in := &Instance{Base: "http://" + addr, env: all, args: args, bin: bin, logs: &syncBuffer{}}
	in.start(t)
	t.Cleanup(func() { in.Stop(t) })
	return in
}

func (in *Instance) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(in.bin, append([]string{"serve"}, in.args...)...)
	cmd.Env = append(os.Environ(), in.env...)
	cmd.Stdout, cmd.Stderr = in.logs, in.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in.cmd = cmd
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	in.exited = exited
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(in.Base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-exited:
			t.Fatalf("specguard exited at start: %v\n%s", cmd.ProcessState, in.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("specguard did not become healthy: %v\n%s", err, in.logs.String())
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// Kill ends the process with SIGKILL, as a crash or the OOM killer would.
func (in *Instance) Kill(t *testing.T) {
	t.Helper()
	if in.cmd == nil || in.cmd.Process == nil {
		return
	}
	_ = in.cmd.Process.Kill()
	<-in.exited
	in.cmd = nil
}

// Restart starts the process again, on the same address, data directory
// and environment, after Kill.
func (in *Instance) Restart(t *testing.T) {
	t.Helper()
	in.start(t)
}

// Stop sends SIGTERM and requires exit status 0.
func (in *Instance) Stop(t *testing.T) {
	if in.cmd == nil || in.cmd.Process == nil {
		return
	}
	select {
	case <-in.exited:
		if in.cmd.ProcessState != nil && !in.cmd.ProcessState.Success() {
			t.Errorf("specguard exited with %v\n%s", in.cmd.ProcessState, in.logs.String())
		}
		return
	default:
	}
	_ = in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.exited:
		if !in.cmd.ProcessState.Success() {
			t.Errorf("specguard exited with %v\n%s", in.cmd.ProcessState, in.logs.String())
		}
	case <-time.After(15 * time.Second):
		_ = in.cmd.Process.Kill()
		t.Errorf("specguard did not stop on SIGTERM")
	}
	in.cmd = nil
}

// Redis returns a throwaway Redis URL for instances to share.
func Redis(t *testing.T) string { return redistest.Start(t).URL }

// Postgres returns the URL of a fresh PostgreSQL database for instances to
// share.
func Postgres(t *testing.T) string { return pgtest.New(t) }

// Shared returns the settings of an instance that shares its state with
// others: the Redis, the PostgreSQL database and the signing key.
func Shared(redisURL, databaseURL, keyFile string) []string {
	return []string{"SPECGUARD_REDIS_URL=" + redisURL, "SPECGUARD_DATABASE_URL=" + databaseURL, "SPECGUARD_SIGNING_KEY_FILE=" + keyFile}
}

// contract validates traffic against the spec.
type contract struct {
	router routers.Router
}

func loadContract(t testing.TB, spec []byte) *contract {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(spec)
	if err != nil {
		t.Fatal(err)
	}
	doc.Servers = nil // match any host: every instance listens on its own port
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &contract{router: router}
}

// specguardHeaders are the headers specguard adds; where one appears on a
// response, the spec must declare it for that status.
var specguardHeaders = []string{"WWW-Authenticate", "Retry-After", "RateLimit", "RateLimit-Policy", "Set-Cookie"}

// check validates one exchange; reqBody and respBody are the raw bodies.
func (c *contract) check(req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) error {
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		return fmt.Errorf("%s %s: no operation in the spec: %v", req.Method, req.URL.Path, err)
	}
	opts := &openapi3filter.Options{
		IncludeResponseStatus:   true,
		MultiError:              true,
		AuthenticationFunc:      openapi3filter.NoopAuthenticationFunc,
		SchemaValidationOptions: formats.Options, // as the guard checks them
	}
	// Requests the suite sends on purpose malformed are not checked; the
	// responses always are.
	rin := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if req.Header.Get("X-E2E-Malformed") == "" {
		r2 := req.Clone(req.Context())
		r2.Body = io.NopCloser(bytes.NewReader(reqBody))
		rin.Request = r2
		if err := openapi3filter.ValidateRequest(req.Context(), rin); err != nil {
			return fmt.Errorf("%s %s: request does not match the spec: %v", req.Method, req.URL.Path, err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: rin,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(respBody)),
		Options:                opts,
	}
	if err := openapi3filter.ValidateResponse(req.Context(), out); err != nil {
		return fmt.Errorf("%s %s -> %d: response does not match the spec: %v", req.Method, req.URL.Path, resp.StatusCode, err)
	}
	declared := route.Operation.Responses.Status(resp.StatusCode)
	for _, h := range specguardHeaders {
		if resp.Header.Get(h) == "" {
			continue
		}
		// RateLimit headers ride on every response of a limited operation;
		// the spec declares them where a client must act on them: the 429.
		if resp.StatusCode != http.StatusTooManyRequests && strings.HasPrefix(h, "RateLimit") {
			continue
		}
		if declared == nil || declared.Value == nil || declared.Value.Headers[h] == nil {
			return fmt.Errorf("%s %s -> %d: header %s is not declared for this status", req.Method, req.URL.Path, resp.StatusCode, h)
		}
	}
	return nil
}

// validating checks every exchange against the contract and fails the test
// on any mismatch.
type validating struct {
	t    *testing.T
	c    *contract
	next http.RoundTripper
	n    atomic.Int64
}

func (v *validating) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		reqBody, _ = io.ReadAll(req.Body)
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	resp, err := v.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	respBody, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	v.n.Add(1)
	if err := v.c.check(req, reqBody, resp, respBody); err != nil {
		v.t.Errorf("contract: %v\nbody: %s", err, respBody)
	}
	return resp, nil
}

// Client is a generated client for one instance whose every exchange is
// checked against the spec; each request comes from IP (through the
// trusted-proxy header) so tests do not share per-IP limits.
type Client struct {
	*client.ClientWithResponses
	IP   string
	base string
	hc   *http.Client
}

// Call sends a request the generated client has no method for (an
// operation found by kind in the document), checked against the spec like
// every other, from c's address: its status, headers and body.
func (c *Client) Call(t *testing.T, method, path, body string, edits ...client.RequestEditorFn) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-Forwarded-For", c.IP)
	for _, e := range edits {
		if err := e(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, raw
}

var nextIP atomic.Int64

// NewIP returns a client address no other test uses.
func NewIP() string {
	n := nextIP.Add(1)
	return fmt.Sprintf("198.18.%d.%d", n/250, n%250+1)
}

var specContract struct {
	once sync.Once
	c    *contract
}

// NewClient returns a validated client for in, speaking from a fresh IP.
func NewClient(t *testing.T, in *Instance) *Client {
	t.Helper()
	return NewClientFrom(t, in, NewIP())
}

// NewClientFrom returns a validated client for in, speaking from ip.
func NewClientFrom(t *testing.T, in *Instance, ip string) *Client {
	t.Helper()
	specContract.once.Do(func() { specContract.c = loadContract(t, api.Spec) })
	hc := &http.Client{Transport: &validating{t: t, c: specContract.c, next: http.DefaultTransport}, Timeout: 10 * time.Second}
	cl, err := client.NewClientWithResponses(in.Base, client.WithHTTPClient(hc), client.WithRequestEditorFn(
		func(_ context.Context, req *http.Request) error {
			req.Header.Set("X-Forwarded-For", ip)
			return nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	return &Client{ClientWithResponses: cl, IP: ip, base: in.Base, hc: hc}
}

// Bearer adds an Authorization header.
func Bearer(token string) client.RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+token)
		return nil
	}
}

// Header adds one header.
func Header(k, v string) client.RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Add(k, v)
		return nil
	}
}
