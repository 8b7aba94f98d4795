// Command bench is the load harness behind `make bench`: it builds specguard
// and the peer stacks, starts each on loopback, and loads the same guarded
// operations on all of them with wrk, interleaved round after round, then
// prints one table per operation.
//
//	(a) bare        chi + the generated strict handlers, SQLite
//	(b) specguard   memory store, SQLite (the embedded default)
//	(c) specguard   Redis, SQLite
//	(d) peer        nethttp-middleware validator + golang-jwt auth + httprate, SQLite
//	(e) peer-redis  (d) + a Redis jti denylist + redis_rate, SQLite
//	(f) bare        as (a), PostgreSQL
//	(g) specguard   Redis, PostgreSQL (the fleet set-up)
//
// Every stack serves GET /posts/{id} with an Ed25519 token (posts:read) and
// rate-limit tiers that never refuse, with the same database-backed
// handlers; (a), (b), (c), (f) and (g) also take POST /posts (a write, its
// body validated). Request logging is off in all. PostgreSQL is the server
// SPECGUARD_BENCH_POSTGRES_URL names (default the local one, as the tests
// use), on a database of the harness's own.
package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, for the databases of (f) and (g)
	"github.com/redis/go-redis/v9"
	"gopkg.in/yaml.v3"
)

var (
	rounds      = flag.Int("rounds", 3, "interleaved rounds (a b c d e, repeated)")
	duration    = flag.Duration("duration", 10*time.Second, "length of each wrk run")
	connections = flag.Int("connections", 32, "wrk connections")
	threads     = flag.Int("threads", 1, "wrk threads")
	out         = flag.String("out", "", "also write the report (markdown) to this file")
)

type stack struct {
	id, name string
	base     string // http://host:port
	path     string // the post's URL path
	token    string
	redis    bool   // counts Redis commands
	writes   bool   // takes the POST /posts load
	bare     *stack // the bare stack on the same database
	runs     []result
	posts    []result // the POST /posts load
	calls    float64  // Redis calls (round trips) per request, from MONITOR
}

type result struct {
	rps, p50, p99 float64 // requests/s, latencies in ms
	requests      int64
	redisCmds     int64 // every command Redis ran, inside scripts too
}

func main() {
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	h := &harness{}
	err := h.run(ctx)
	h.cleanup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type harness struct {
	dir   string
	procs []*exec.Cmd
	rdb   *redis.Client
	pg    *sql.DB  // the PostgreSQL server, to make and drop databases
	dbs   []string // databases made
}

func (h *harness) cleanup() {
	for _, p := range h.procs {
		if p.Process != nil {
			p.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, p := range h.procs {
		done := make(chan struct{})
		go func() { p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			p.Process.Kill()
		}
	}
	if h.rdb != nil {
		h.rdb.Close()
	}
	if h.pg != nil {
		for _, name := range h.dbs {
			h.pg.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
		}
		h.pg.Close()
	}
	if h.dir != "" {
		os.RemoveAll(h.dir)
	}
}

func (h *harness) run(ctx context.Context) error {
	wrkVersion, err := exec.Command("wrk", "--version").CombinedOutput()
	if len(wrkVersion) == 0 {
		return fmt.Errorf("wrk is not installed (apt-get install wrk): %v", err)
	}
	if h.dir, err = os.MkdirTemp("", "specguard-bench-"); err != nil {
		return err
	}
	root, err := repoRoot()
	if err != nil {
		return err
	}
	specguard := filepath.Join(h.dir, "specguard")
	peer := filepath.Join(h.dir, "peerserver")
	fmt.Fprintln(os.Stderr, "building specguard and the peer stacks")
	if err := build(root, specguard, "./cmd/specguard"); err != nil {
		return err
	}
	if err := build(filepath.Join(root, "e2e/bench/peers"), peer, "./cmd/peerserver"); err != nil {
		return err
	}
	key := filepath.Join(h.dir, "signing.pem")
	if out, err := exec.Command(specguard, "keygen", "--alg", "ed25519", "--out", key).CombinedOutput(); err != nil {
		return fmt.Errorf("keygen: %v: %s", err, out)
	}
	spec := filepath.Join(h.dir, "openapi.yaml")
	if err := writeBenchSpec(filepath.Join(root, "api/openapi.yaml"), spec); err != nil {
		return err
	}
	redisURL, err := h.startRedis(ctx)
	if err != nil {
		return err
	}

	post := filepath.Join(h.dir, "post.lua")
	if err := os.WriteFile(post, []byte(postScript), 0o644); err != nil {
		return err
	}
	pgA, err := h.database(ctx, "f")
	if err != nil {
		return err
	}
	pgG, err := h.database(ctx, "g")
	if err != nil {
		return err
	}
	dir := func(name string) string {
		d := filepath.Join(h.dir, name)
		os.MkdirAll(d, 0o700)
		return d
	}
	common := []string{"SPECGUARD_SIGNING_KEY_FILE=" + key, "SPECGUARD_SPEC_FILE=" + spec, "SPECGUARD_ADMIN_ADDR=off",
		"SPECGUARD_LOG_REQUESTS=false", "SPECGUARD_ACCESS_TTL=2h", "SPECGUARD_REFRESH_TTL=2h"}
	with := func(env ...string) []string { return append(slices.Clone(common), env...) }
	a, err := h.startPeer(ctx, peer, "bare", key, spec, "", dir("a"), "")
	if err != nil {
		return err
	}
	b, err := h.startSpecguard(ctx, specguard, with("SPECGUARD_DATA_DIR="+dir("b")))
	if err != nil {
		return err
	}
	c, err := h.startSpecguard(ctx, specguard, with("SPECGUARD_DATA_DIR="+dir("c"), "SPECGUARD_REDIS_URL="+redisURL+"/0"))
	if err != nil {
		return err
	}
	d, err := h.startPeer(ctx, peer, "peer", key, spec, "", dir("d"), "")
	if err != nil {
		return err
	}
	e, err := h.startPeer(ctx, peer, "peer-redis", key, spec, redisURL+"/0", dir("e"), "")
	if err != nil {
		return err
	}
	f, err := h.startPeer(ctx, peer, "bare", key, spec, "", dir("f"), pgA)
	if err != nil {
		return err
	}
	g, err := h.startSpecguard(ctx, specguard, with("SPECGUARD_DATA_DIR="+dir("g"), "SPECGUARD_REDIS_URL="+redisURL+"/1", "SPECGUARD_DATABASE_URL="+pgG))
	if err != nil {
		return err
	}
	a.id, a.name, a.writes = "a", "bare: chi + generated strict handlers, SQLite", true
	b.id, b.name, b.writes = "b", "specguard, memory store, SQLite", true
	c.id, c.name, c.redis, c.writes = "c", "specguard, Redis, SQLite", true, true
	d.id, d.name = "d", "nethttp-middleware + golang-jwt + httprate, SQLite"
	e.id, e.name, e.redis = "e", "(d) + Redis jti denylist + redis_rate, SQLite", true
	f.id, f.name, f.writes = "f", "bare, PostgreSQL", true
	g.id, g.name, g.redis, g.writes = "g", "specguard, Redis, PostgreSQL", true, true
	for _, s := range []*stack{a, b, c, d, e} {
		s.bare = a
	}
	f.bare, g.bare = f, f
	// The other stacks verify (b)'s token: same key, issuer and audience
	// (the bare ones verify nothing).
	a.token, d.token, e.token, f.token = b.token, b.token, b.token, b.token
	stacks := []*stack{a, b, c, d, e, f, g}
	for _, s := range stacks {
		if err := s.check(); err != nil {
			return err
		}
	}

	for round := 1; round <= *rounds; round++ {
		for _, s := range stacks {
			if err := ctx.Err(); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "round %d/%d: (%s) %s\n", round, *rounds, s.id, s.name)
			before := h.commands(s)
			r, err := wrk(ctx, s)
			if err != nil {
				return fmt.Errorf("(%s): %w", s.id, err)
			}
			if s.redis {
				r.redisCmds = h.commands(s) - before - 1 // the first INFO is counted by the second
			}
			s.runs = append(s.runs, r)
			if s.writes {
				fmt.Fprintf(os.Stderr, "round %d/%d: (%s) %s, POST /posts\n", round, *rounds, s.id, s.name)
				r, err := wrk(ctx, s, "-s", post)
				if err != nil {
					return fmt.Errorf("(%s) POST /posts: %w", s.id, err)
				}
				s.posts = append(s.posts, r)
			}
		}
	}
	for _, s := range stacks {
		if s.redis {
			if s.calls, err = h.probeCalls(ctx, s); err != nil {
				return fmt.Errorf("(%s): %w", s.id, err)
			}
		}
	}
	report := h.report(stacks, strings.TrimSpace(string(wrkVersion)))
	fmt.Print(report)
	if *out != "" {
		return os.WriteFile(*out, []byte(report), 0o644)
	}
	return nil
}

func repoRoot() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("run from the specguard module: %v", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func build(dir, out, pkg string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// writeBenchSpec copies the example spec with the document's default tiers
// and POST /posts's raised so that the load is never refused (a request is
// charged one tier, by principal), and GET /posts/{id} requiring oauth2
// [posts:read].
func writeBenchSpec(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	var tiers yaml.Node
	if err := yaml.Unmarshal([]byte(`[{name: anon, limit: 10000000, window: 1m, key: ip, who: anonymous},
{name: user, limit: 10000000, window: 1m, key: principal, who: authenticated}]`), &tiers); err != nil {
		return err
	}
	var required yaml.Node
	if err := yaml.Unmarshal([]byte(`[{oauth2: [posts:read]}]`), &required); err != nil {
		return err
	}
	root := doc.Content[0]
	limits := lookup(root, "x-rate-limit")
	getPost := lookup(lookup(lookup(root, "paths"), "/posts/{id}"), "get")
	if limits == nil || getPost == nil || lookup(getPost, "security") == nil {
		return errors.New("api/openapi.yaml no longer has a document x-rate-limit and GET /posts/{id} with security")
	}
	*limits = *tiers.Content[0]
	// POST /posts (and the operations sharing its tiers through the YAML
	// anchor) takes a write load: never refused either.
	createPost := lookup(lookup(lookup(root, "paths"), "/posts"), "post")
	writes := lookup(createPost, "x-rate-limit")
	if writes == nil {
		return errors.New("api/openapi.yaml no longer has POST /posts with its own x-rate-limit")
	}
	anchor := writes.Anchor
	*writes = *tiers.Content[0]
	writes.Anchor = anchor
	// The example admits anonymous readers ({} first); the benchmark
	// operation requires the token, so every stack must verify it.
	*lookup(getPost, "security") = *required.Content[0]
	out, err := yaml.Marshal(&doc)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, out, 0o644)
}

// lookup returns the value of key in a YAML mapping node, or nil.
func lookup(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (h *harness) start(ctx context.Context, cmd *exec.Cmd) error {
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	h.procs = append(h.procs, cmd)
	return nil
}

func (h *harness) startRedis(ctx context.Context) (string, error) {
	addr, err := freeAddr()
	if err != nil {
		return "", err
	}
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no", "--dir", h.dir)
	cmd.Stdout = io.Discard
	if err := h.start(ctx, cmd); err != nil {
		return "", fmt.Errorf("redis-server: %v", err)
	}
	h.rdb = redis.NewClient(&redis.Options{Addr: addr})
	for deadline := time.Now().Add(10 * time.Second); h.rdb.Ping(ctx).Err() != nil; {
		if time.Now().After(deadline) {
			return "", errors.New("redis-server did not answer")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "redis://" + addr, nil
}

// postScript makes wrk's requests POST /posts with a valid body.
const postScript = `wrk.method = "POST"
wrk.body = '{"title":"Benchmark write","body":"Lorem ipsum dolor sit amet, consectetur adipiscing elit.","status":"published"}'
wrk.headers["Content-Type"] = "application/json"
`

// database makes a PostgreSQL database of the harness's own and returns
// its URL; it is dropped at the end.
func (h *harness) database(ctx context.Context, name string) (string, error) {
	admin := os.Getenv("SPECGUARD_BENCH_POSTGRES_URL")
	if admin == "" {
		admin = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	if h.pg == nil {
		var err error
		if h.pg, err = sql.Open("pgx", admin); err != nil {
			return "", err
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := h.pg.PingContext(pctx); err != nil {
			return "", fmt.Errorf("PostgreSQL at %s (set SPECGUARD_BENCH_POSTGRES_URL): %v", admin, err)
		}
	}
	db := fmt.Sprintf("sgbench_%d_%s", os.Getpid(), name)
	if _, err := h.pg.ExecContext(ctx, "CREATE DATABASE "+db); err != nil {
		return "", err
	}
	h.dbs = append(h.dbs, db)
	u, err := url.Parse(admin)
	if err != nil {
		return "", err
	}
	u.Path = "/" + db
	return u.String(), nil
}

func (h *harness) startPeer(ctx context.Context, bin, kind, key, spec, redisURL, dataDir, databaseURL string) (*stack, error) {
	cmd := exec.Command(bin, "--stack", kind, "--key", key, "--spec", spec, "--redis", redisURL, "--data-dir", dataDir, "--database-url", databaseURL)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := h.start(ctx, cmd); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("peerserver %s did not start: %v", kind, err)
	}
	var addr, id string
	if _, err := fmt.Sscanf(line, "ready %s %s", &addr, &id); err != nil {
		return nil, fmt.Errorf("peerserver %s: %q", kind, line)
	}
	go io.Copy(io.Discard, stdout)
	return &stack{base: "http://" + addr, path: "/posts/" + id}, nil
}

// startSpecguard runs the binary, logs in as the demo user and creates the
// published post the load reads.
func (h *harness) startSpecguard(ctx context.Context, bin string, env []string) (*stack, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), append(env, "SPECGUARD_ADDR="+addr)...)
	cmd.Stdout = io.Discard
	if err := h.start(ctx, cmd); err != nil {
		return nil, err
	}
	s := &stack{base: "http://" + addr}
	for deadline := time.Now().Add(20 * time.Second); ; {
		if resp, err := http.Get(s.base + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			return nil, errors.New("specguard did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := call("POST", s.base+"/auth/login", "", `{"email":"user@example.com","password":"user-password"}`, 200, &tok); err != nil {
		return nil, err
	}
	s.token = tok.AccessToken
	var post struct {
		ID string `json:"id"`
	}
	body := fmt.Sprintf(`{"title":"Benchmark post","body":%q,"status":"published"}`, strings.Repeat("Lorem ipsum dolor sit amet. ", 8))
	if err := call("POST", s.base+"/posts", s.token, body, 201, &post); err != nil {
		return nil, err
	}
	s.path = "/posts/" + post.ID
	return s, nil
}

func call(method, url, token, body string, want int, into any) error {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d, want %d: %s", method, url, resp.StatusCode, want, raw)
	}
	if into != nil {
		return json.Unmarshal(raw, into)
	}
	return nil
}

// check makes one request as the load will: 200 and the seeded post.
func (s *stack) check() error {
	var post struct {
		Title string `json:"title"`
	}
	if err := call("GET", s.base+s.path, s.token, "", 200, &post); err != nil {
		return fmt.Errorf("(%s) %s: %w", s.id, s.name, err)
	}
	if post.Title != "Benchmark post" {
		return fmt.Errorf("(%s) %s: unexpected post %+v", s.id, s.name, post)
	}
	if s.writes {
		body := `{"title":"Benchmark write","body":"check","status":"published"}`
		if err := call("POST", s.base+"/posts", s.token, body, 201, nil); err != nil {
			return fmt.Errorf("(%s) %s: POST /posts: %w", s.id, s.name, err)
		}
	}
	// Every secured stack refuses a tampered token.
	if s.bare != s {
		if err := call("GET", s.base+s.path, s.token[:len(s.token)-4]+"AAAA", "", 401, nil); err != nil {
			return fmt.Errorf("(%s) %s: a tampered token: %w", s.id, s.name, err)
		}
	}
	return nil
}

// commands is the total of Redis command calls so far (INFO commandstats).
func (h *harness) commands(s *stack) int64 {
	if !s.redis {
		return 0
	}
	info, err := h.rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		return 0
	}
	var n int64
	for _, m := range regexp.MustCompile(`calls=(\d+)`).FindAllStringSubmatch(info, -1) {
		v, _ := strconv.ParseInt(m[1], 10, 64)
		n += v
	}
	return n
}

// probeCalls counts the commands one request sends to Redis itself (not
// those its scripts run), with MONITOR watching 100 requests made one at a
// time: each such command is one round trip.
func (h *harness) probeCalls(ctx context.Context, s *stack) (float64, error) {
	const n = 100
	// Let requests still in flight from the last load finish first.
	time.Sleep(time.Second)
	conn, err := net.Dial("tcp", h.rdb.Options().Addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("MONITOR\r\n")); err != nil {
		return 0, err
	}
	r := bufio.NewReader(conn)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
		return 0, fmt.Errorf("MONITOR: %q %v", line, err)
	}
	for range n {
		if err := call("GET", s.base+s.path, s.token, "", 200, nil); err != nil {
			return 0, err
		}
	}
	// A marker, then count the client commands seen before it.
	marker := fmt.Sprintf("bench-marker-%d", time.Now().UnixNano())
	if err := h.rdb.Echo(ctx, marker).Err(); err != nil {
		return 0, err
	}
	calls := 0
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return 0, fmt.Errorf("MONITOR: %v", err)
		}
		if strings.Contains(line, marker) {
			return float64(calls) / n, nil
		}
		// "+<time> [0 lua] ..." is a command run by a script.
		if strings.Contains(line, " lua] ") {
			continue
		}
		// Connection set-up (a pool growing) is not a per-request call.
		if setupCommand.MatchString(line) {
			continue
		}
		calls++
	}
}

var setupCommand = regexp.MustCompile(`\] "(?i:hello|client|auth|select|ping)"`)

var (
	reqsRe    = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	totalRe   = regexp.MustCompile(`(\d+) requests in`)
	latencyRe = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$`)
)

func wrk(ctx context.Context, s *stack, extra ...string) (result, error) {
	args := []string{"-t" + strconv.Itoa(*threads), "-c" + strconv.Itoa(*connections), "-d" + duration.String(), "--latency",
		"-H", "Authorization: Bearer " + s.token}
	args = append(args, extra...)
	target := s.base + s.path
	if len(extra) > 0 {
		target = s.base + "/posts"
	}
	args = append(args, target)
	cmd := exec.CommandContext(ctx, "wrk", args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	text := string(out)
	if strings.Contains(text, "Non-2xx or 3xx responses") || strings.Contains(text, "Socket errors") {
		return result{}, fmt.Errorf("wrk saw failures:\n%s", text)
	}
	var r result
	m := reqsRe.FindStringSubmatch(text)
	t := totalRe.FindStringSubmatch(text)
	if m == nil || t == nil {
		return result{}, fmt.Errorf("cannot read wrk's output:\n%s", text)
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	r.requests, _ = strconv.ParseInt(t[1], 10, 64)
	for _, l := range latencyRe.FindAllStringSubmatch(text, -1) {
		v, _ := strconv.ParseFloat(l[2], 64)
		switch l[3] {
		case "us":
			v /= 1000
		case "s":
			v *= 1000
		}
		if l[1] == "50" {
			r.p50 = v
		} else {
			r.p99 = v
		}
	}
	return r, nil
}

func median(runs []result, f func(result) float64) float64 {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func (h *harness) report(stacks []*stack, wrkVersion string) string {
	var b bytes.Buffer
	cpu := "unknown"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := regexp.MustCompile(`(?m)^model name\s*:\s*(.+)$`).FindSubmatch(data); m != nil {
			cpu = string(m[1])
		}
	}
	fmt.Fprintf(&b, "machine: %s, %d cores, %s, %s\n", cpu, runtime.NumCPU(), runtime.Version(), strings.SplitN(wrkVersion, "\n", 2)[0])
	fmt.Fprintf(&b, "load: wrk -t%d -c%d -d%s --latency with an Ed25519 bearer token; %d interleaved rounds, medians\n",
		*threads, *connections, duration, *rounds)
	fmt.Fprintf(&b, "command: go run ./e2e/bench -rounds %d -duration %s\n\n", *rounds, duration)
	med := func(runs []result, f func(result) float64) float64 { return median(runs, f) }
	rps := func(r result) float64 { return r.rps }
	fmt.Fprintf(&b, "GET /posts/{id} (posts:read):\n\n")
	fmt.Fprintf(&b, "| stack | req/s | p50 ms | p99 ms | vs bare, same database | Redis calls/req | Redis cmds/req incl. scripts |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range stacks {
		calls, cmds := "-", "-"
		if s.redis {
			calls = fmt.Sprintf("%.2f", s.calls)
			cmds = fmt.Sprintf("%.2f", med(s.runs, func(r result) float64 { return float64(r.redisCmds) / float64(r.requests) }))
		}
		fmt.Fprintf(&b, "| (%s) %s | %.0f | %.3f | %.3f | %.2fx | %s | %s |\n", s.id, s.name, med(s.runs, rps),
			med(s.runs, func(r result) float64 { return r.p50 }), med(s.runs, func(r result) float64 { return r.p99 }),
			med(s.runs, rps)/med(s.bare.runs, rps), calls, cmds)
	}
	byID := map[string]*stack{}
	for _, s := range stacks {
		byID[s.id] = s
	}
	ratio := func(x, y string) float64 { return med(byID[x].runs, rps) / med(byID[y].runs, rps) }
	fmt.Fprintf(&b, "\n(b)/(d) = %.2fx, (c)/(e) = %.2fx\n", ratio("b", "d"), ratio("c", "e"))
	fmt.Fprintf(&b, "\nPOST /posts (posts:write, a validated body, one row written and committed):\n\n")
	fmt.Fprintf(&b, "| stack | req/s | p50 ms | p99 ms | vs bare, same database |\n|---|---:|---:|---:|---:|\n")
	for _, s := range stacks {
		if !s.writes {
			continue
		}
		fmt.Fprintf(&b, "| (%s) %s | %.0f | %.3f | %.3f | %.2fx |\n", s.id, s.name, med(s.posts, rps),
			med(s.posts, func(r result) float64 { return r.p50 }), med(s.posts, func(r result) float64 { return r.p99 }),
			med(s.posts, rps)/med(s.bare.posts, rps))
	}
	return b.String()
}
