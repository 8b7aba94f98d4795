// Command bench is the load harness behind `make bench`: it builds specguard
// and the peer stacks, starts each on loopback, and loads the same guarded
// operations on all of them with wrk, interleaved round after round, then
// prints one table per load, with the targets of issue 16 under each.
//
//	(a) bare        chi + the generated strict handlers, SQLite
//	(b) specguard   memory store, SQLite (the embedded default)
//	(c) specguard   Redis, SQLite
//	(d) peer        nethttp-middleware validator + golang-jwt auth or a hashed
//	                API-key lookup in the database + httprate, SQLite
//	(e) peer-redis  (d) + a Redis jti denylist + redis_rate, SQLite
//	(f) bare        as (a), PostgreSQL
//	(g) specguard   Redis, PostgreSQL (the fleet set-up)
//	(h) specguard   Redis Cluster of three masters, SQLite
//
// The loads, one per credential kind: a bearer token and an API key on GET
// /posts/{id}, a cookie session on GET /me and on POST /posts (with its
// CSRF token; a validated body, one row written), and an anonymous GET
// /posts. Rate-limit tiers never refuse; the handlers and their database
// work are the same in every stack. The peers take the bearer, API-key and
// anonymous loads (they verify no sessions). Request logging is off in
// all. PostgreSQL is the server SPECGUARD_BENCH_POSTGRES_URL names (default
// the local one, as the tests use), on a database of the harness's own.
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
	"sync"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, for the databases of (f) and (g)
	"github.com/redis/go-redis/v9"
	"gopkg.in/yaml.v3"

	"github.com/specguard/specguard/internal/testenv"
)

var (
	rounds      = flag.Int("rounds", 3, "interleaved rounds (a b c d e, repeated)")
	clients     = flag.Int("clients", 1_000_000, "distinct client IPs of the clients table's large store (0: no clients table)")
	duration    = flag.Duration("duration", 10*time.Second, "length of each wrk run")
	connections = flag.Int("connections", 32, "wrk connections")
	threads     = flag.Int("threads", 1, "wrk threads")
	out         = flag.String("out", "", "also write the report (markdown) to this file")
	only        = flag.String("loads", "", "comma-separated loads to run (default all: bearer,apikey,cookie-me,cookie-post,anon)")
)

type stack struct {
	id, name string
	base     string // http://host:port
	post     string // the URL path of the published post it seeded
	creds    creds
	redis    []string // the Redis nodes it uses, whose commands are counted
	loads    string   // the ids of the loads it takes
	bare     *stack   // the bare stack on the same database
	runs     map[string][]result
	calls    map[string]float64 // Redis calls (round trips) per request, from MONITOR
}

// creds are a stack's credentials for the demo user.
type creds struct {
	token  string // an access token (Ed25519; posts:read among its scopes)
	apiKey string // an API key with posts:read and posts:write
	cookie string // the session and CSRF cookies of a browser session
	csrf   string // that session's CSRF token
}

type result struct {
	rps, p50, p99 float64 // requests/s, latencies in ms
	requests      int64
	redisCmds     int64 // every command Redis ran, inside scripts too
}

// A load is one kind of request, made with one credential kind.
type load struct {
	id, title    string
	method, path string // path "{post}" is the stack's seeded post
	body         string
	headers      func(c creds) []string
	// forged, when set, are headers with a forged credential, which every
	// secured stack refuses with refused.
	forged  func(c creds) []string
	want    int
	refused int
}

var postBody = `{"title":"Benchmark write","body":"Lorem ipsum dolor sit amet, consectetur adipiscing elit.","status":"published"}`

var loads = []load{
	{id: "bearer", title: "bearer token, GET /posts/{id} (posts:read)", method: "GET", path: "{post}", want: 200, refused: 401,
		headers: func(c creds) []string { return []string{"Authorization: Bearer " + c.token} },
		forged:  func(c creds) []string { return []string{"Authorization: Bearer " + c.token[:len(c.token)-4] + "AAAA"} }},
	{id: "apikey", title: "API key, GET /posts/{id} (posts:read)", method: "GET", path: "{post}", want: 200, refused: 401,
		headers: func(c creds) []string { return []string{"X-API-Key: " + c.apiKey} },
		forged:  func(c creds) []string { return []string{"X-API-Key: " + c.apiKey[:len(c.apiKey)-4] + "AAAA"} }},
	{id: "cookie-me", title: "cookie session, GET /me", method: "GET", path: "/me", want: 200, refused: 401,
		headers: func(c creds) []string { return []string{"Cookie: " + c.cookie} },
		forged:  func(c creds) []string { return []string{"Cookie: " + forgeCookie(c.cookie)} }},
	{id: "cookie-post", title: "cookie session with CSRF, POST /posts (a validated body, one row written and committed)",
		method: "POST", path: "/posts", body: postBody, want: 201, refused: 403, // the CSRF token is wrong
		headers: func(c creds) []string { return []string{"Cookie: " + c.cookie, "X-CSRF-Token: " + c.csrf} },
		forged: func(c creds) []string {
			return []string{"Cookie: " + c.cookie, "X-CSRF-Token: " + c.csrf[:len(c.csrf)-4] + "AAAA"}
		}},
	{id: "anon", title: "anonymous, GET /posts?limit=5 (security lists {} first)", method: "GET", path: "/posts?limit=5", want: 200,
		headers: func(creds) []string { return nil }},
}

// forgeCookie changes the last characters of the session cookie's secret.
func forgeCookie(cookie string) string {
	session, rest, _ := strings.Cut(cookie, ";")
	return session[:len(session)-4] + "AAAA;" + rest
}

func (s *stack) takes(l *load) bool { return strings.Contains(" "+s.loads+" ", " "+l.id+" ") }

func (l *load) url(s *stack) string {
	return s.base + strings.ReplaceAll(l.path, "{post}", s.post)
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
	pg    *sql.DB  // the PostgreSQL server, to make and drop databases
	dbs   []string // databases made
	users string   // the users file every stack seeds the demo accounts from
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

const (
	everyLoad = "bearer apikey cookie-me cookie-post anon"
	peerLoads = "bearer apikey anon" // the peers verify no sessions
)

func (h *harness) run(ctx context.Context) error {
	if *only != "" {
		var chosen []load
		for _, id := range strings.Split(*only, ",") {
			i := slices.IndexFunc(loads, func(l load) bool { return l.id == id })
			if i < 0 {
				return fmt.Errorf("-loads: no load %q", id)
			}
			chosen = append(chosen, loads[i])
		}
		loads = chosen
	}
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
	// What the loads need of the document, first: nothing is built or
	// started for a document that lacks it.
	spec := filepath.Join(h.dir, "openapi.yaml")
	if err := writeBenchSpec(filepath.Join(root, "api/openapi.yaml"), spec, 10_000_000, "1m"); err != nil {
		return err
	}
	// The clients' buckets must outlive the fill: a window of an hour, and
	// an interval (36 ms) long enough to see a bucket charged.
	clientSpec := filepath.Join(h.dir, "openapi-clients.yaml")
	if err := writeBenchSpec(filepath.Join(root, "api/openapi.yaml"), clientSpec, 100_000, "1h"); err != nil {
		return err
	}
	specguard, toolkit := filepath.Join(h.dir, "blog"), filepath.Join(h.dir, "specguard")
	peer := filepath.Join(h.dir, "peerserver")
	fmt.Fprintln(os.Stderr, "building the example app, specguard and the peer stacks")
	if err := build(root, specguard, "./cmd/blog"); err != nil {
		return err
	}
	if err := build(root, toolkit, "./cmd/specguard"); err != nil {
		return err
	}
	if err := build(filepath.Join(root, "e2e/bench/peers"), peer, "./cmd/peerserver"); err != nil {
		return err
	}
	key := filepath.Join(h.dir, "signing.pem")
	if out, err := exec.Command(toolkit, "keygen", "--alg", "ed25519", "--out", key).CombinedOutput(); err != nil {
		return fmt.Errorf("keygen: %v: %s", err, out)
	}
	redisAddr, err := h.startRedis(ctx, "", nil)
	if err != nil {
		return err
	}
	redisURL := "redis://" + redisAddr
	cluster, err := h.startCluster(ctx)
	if err != nil {
		return err
	}
	for _, l := range loads {
		if l.body == "" {
			continue
		}
		script := fmt.Sprintf("wrk.method = %q\nwrk.body = %q\nwrk.headers[\"Content-Type\"] = \"application/json\"\n", l.method, l.body)
		if err := os.WriteFile(filepath.Join(h.dir, l.id+".lua"), []byte(script), 0o644); err != nil {
			return err
		}
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
	// The demo accounts are seeded by themselves only in the development
	// setup: the stacks on Redis or PostgreSQL get them from a users file.
	h.users = filepath.Join(h.dir, "users.yaml")
	if err := os.WriteFile(h.users, []byte(testenv.DemoUsers), 0o600); err != nil {
		return err
	}
	common := []string{"SPECGUARD_SIGNING_KEY_FILE=" + key, "SPECGUARD_SPEC_FILE=" + spec, "SPECGUARD_ADMIN_ADDR=off", "SPECGUARD_USERS_FILE=" + h.users,
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
	hc, err := h.startSpecguard(ctx, specguard, with("SPECGUARD_DATA_DIR="+dir("h"), "SPECGUARD_REDIS_URL=redis+cluster://"+strings.Join(cluster, ",")))
	if err != nil {
		return err
	}
	// (b) checks every answer against the document (the default, report):
	// (i) is (b) without, for what that costs.
	off, err := h.startSpecguard(ctx, specguard, with("SPECGUARD_DATA_DIR="+dir("i"), "SPECGUARD_VALIDATE_RESPONSES=off"))
	if err != nil {
		return err
	}
	a.id, a.name, a.loads = "a", "bare: chi + generated strict handlers, SQLite", everyLoad
	b.id, b.name, b.loads = "b", "specguard, memory store, SQLite", everyLoad
	c.id, c.name, c.loads, c.redis = "c", "specguard, Redis, SQLite", everyLoad, []string{redisAddr}
	d.id, d.name, d.loads = "d", "nethttp-middleware + golang-jwt or hashed API key + httprate, SQLite", peerLoads
	e.id, e.name, e.loads, e.redis = "e", "(d) + Redis jti denylist + redis_rate, SQLite", peerLoads, []string{redisAddr}
	f.id, f.name, f.loads = "f", "bare, PostgreSQL", everyLoad
	g.id, g.name, g.loads, g.redis = "g", "specguard, Redis, PostgreSQL", everyLoad, []string{redisAddr}
	hc.id, hc.name, hc.loads, hc.redis = "h", "specguard, Redis Cluster (3 masters), SQLite", everyLoad, cluster
	off.id, off.name, off.loads = "i", "(b) with answers not checked (SPECGUARD_VALIDATE_RESPONSES=off)", "bearer"
	for _, s := range []*stack{a, b, c, d, e, hc, off} {
		s.bare = a
	}
	f.bare, g.bare = f, f
	// The bare stacks verify nothing: they get (b)'s headers. The peers
	// verify (b)'s token (same key, issuer and audience) and their own
	// API key.
	a.creds, f.creds = b.creds, b.creds
	d.creds.token, e.creds.token = b.creds.token, b.creds.token
	stacks := []*stack{a, b, c, d, e, f, g, hc, off}
	for _, s := range stacks {
		s.runs, s.calls = map[string][]result{}, map[string]float64{}
		if err := s.check(); err != nil {
			return err
		}
	}

	for round := 1; round <= *rounds; round++ {
		for i := range loads {
			l := &loads[i]
			for _, s := range stacks {
				if !s.takes(l) {
					continue
				}
				if err := ctx.Err(); err != nil {
					return err
				}
				fmt.Fprintf(os.Stderr, "round %d/%d: %s: (%s) %s\n", round, *rounds, l.id, s.id, s.name)
				before := commands(ctx, s)
				r, err := h.wrk(ctx, s, l)
				if err != nil {
					return fmt.Errorf("(%s) %s: %w", s.id, l.id, err)
				}
				if s.redis != nil {
					// The INFO calls of the first count are counted by the second.
					r.redisCmds = commands(ctx, s) - before - int64(len(s.redis))
				}
				s.runs[l.id] = append(s.runs[l.id], r)
			}
		}
	}
	for _, s := range stacks {
		for i := range loads {
			if l := &loads[i]; s.redis != nil && s.takes(l) {
				if s.calls[l.id], err = probeCalls(ctx, s, l); err != nil {
					return fmt.Errorf("(%s) %s: %w", s.id, l.id, err)
				}
			}
		}
	}
	var cl []*clientRun
	if *clients > 0 {
		env := with("SPECGUARD_SPEC_FILE="+clientSpec, "SPECGUARD_TRUSTED_PROXIES=127.0.0.1/32", "SPECGUARD_CLIENT_IP_HEADER=X-Real-IP")
		if cl, err = h.clientsTable(ctx, specguard, env, dir); err != nil {
			return fmt.Errorf("clients: %w", err)
		}
	}
	report := report(stacks, strings.TrimSpace(string(wrkVersion))) + reportClients(cl)
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

// needsTheBlog says what the harness needs: it compares stacks serving the
// same blog, the example's, the peers included (e2e/bench/peers).
const needsTheBlog = "make bench loads the example blog's posts (GET /posts/{id}, GET /posts, POST /posts) on specguard and on peer stacks that serve the same blog (e2e/bench/peers); after the example's domain is replaced there is nothing to compare: BenchmarkGuard (go test -run XXX -bench BenchmarkGuard ./guard/) and make bench-github still measure the guard"

// writeBenchSpec copies the example spec with the document's default tiers
// and POST /posts's set to limit per window, high enough that the load is
// never refused (a request is charged one tier, by principal or by IP), and
// GET /posts/{id} requiring oauth2 or an API key with [posts:read].
func writeBenchSpec(src, dst string, limit int, window string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	var tiers yaml.Node
	if err := yaml.Unmarshal(fmt.Appendf(nil, `[{name: anon, limit: %[1]d, window: %[2]s, key: ip, who: anonymous},
{name: user, limit: %[1]d, window: %[2]s, key: principal, who: authenticated}]`, limit, window), &tiers); err != nil {
		return err
	}
	var required yaml.Node
	if err := yaml.Unmarshal([]byte(`[{oauth2: [posts:read]}, {apiKeyAuth: [posts:read]}]`), &required); err != nil {
		return err
	}
	root := doc.Content[0]
	limits := lookup(root, "x-rate-limit")
	getPost := lookup(lookup(lookup(root, "paths"), "/posts/{id}"), "get")
	if limits == nil || getPost == nil || lookup(getPost, "security") == nil {
		return errors.New(needsTheBlog + ": api/openapi.yaml has no document x-rate-limit, or no GET /posts/{id} with security")
	}
	*limits = *tiers.Content[0]
	// POST /posts (and the operations sharing its tiers through the YAML
	// anchor) takes a write load: never refused either.
	createPost := lookup(lookup(lookup(root, "paths"), "/posts"), "post")
	writes := lookup(createPost, "x-rate-limit")
	if writes == nil {
		return errors.New(needsTheBlog + ": api/openapi.yaml has no POST /posts with its own x-rate-limit")
	}
	anchor := writes.Anchor
	*writes = *tiers.Content[0]
	writes.Anchor = anchor
	// The example admits anonymous readers ({} first); the benchmark
	// operation requires the token or the key, so every stack must verify
	// it.
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

// startRedis starts a redis-server on addr (a free port when empty) with
// extra arguments and returns its address once it answers.
func (h *harness) startRedis(ctx context.Context, addr string, extra []string) (string, error) {
	var err error
	if addr == "" {
		if addr, err = freeAddr(); err != nil {
			return "", err
		}
	}
	_, port, _ := net.SplitHostPort(addr)
	dir, err := os.MkdirTemp(h.dir, "redis-")
	if err != nil {
		return "", err
	}
	args := append([]string{"--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no", "--dir", dir}, extra...)
	cmd := exec.Command("redis-server", args...)
	cmd.Stdout = io.Discard
	if err := h.start(ctx, cmd); err != nil {
		return "", fmt.Errorf("redis-server: %v", err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	for deadline := time.Now().Add(10 * time.Second); rdb.Ping(ctx).Err() != nil; {
		if time.Now().After(deadline) {
			return "", errors.New("redis-server did not answer")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return addr, nil
}

// startCluster starts three masters, joins them with redis-cli --cluster
// create and returns their addresses once the cluster is ok.
func (h *harness) startCluster(ctx context.Context) ([]string, error) {
	var addrs []string
	for range 3 {
		var addr string
		var err error
		// The cluster bus listens on the port + 10000: retry until both are free.
		for try := 0; ; try++ {
			if addr, err = freeAddr(); err != nil {
				return nil, err
			}
			_, port, _ := net.SplitHostPort(addr)
			p, _ := strconv.Atoi(port)
			if p+10000 > 65535 {
				continue
			}
			if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+10000)); err == nil {
				l.Close()
				break
			}
			if try > 100 {
				return nil, errors.New("no free port pair for a cluster node")
			}
		}
		_, port, _ := net.SplitHostPort(addr)
		addr, err = h.startRedis(ctx, addr, []string{"--cluster-enabled", "yes", "--cluster-node-timeout", "2000",
			"--cluster-config-file", filepath.Join(h.dir, "nodes-"+port+".conf")})
		if err != nil {
			return nil, err
		}
		addrs = append(addrs, addr)
	}
	args := append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, addr := range addrs {
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		defer rdb.Close()
		for deadline := time.Now().Add(20 * time.Second); ; {
			info, _ := rdb.ClusterInfo(ctx).Result()
			if strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("the Redis Cluster did not become ok: %s", info)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return addrs, nil
}

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
	cmd := exec.Command(bin, "--stack", kind, "--key", key, "--spec", spec, "--redis", redisURL, "--data-dir", dataDir, "--database-url", databaseURL,
		"--users", h.users)
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
	var addr, id, apiKey string
	if _, err := fmt.Sscanf(line, "ready %s %s %s", &addr, &id, &apiKey); err != nil {
		return nil, fmt.Errorf("peerserver %s: %q", kind, line)
	}
	go io.Copy(io.Discard, stdout)
	return &stack{base: "http://" + addr, post: "/posts/" + id, creds: creds{apiKey: apiKey}}, nil
}

// startSpecguard runs the binary, logs in as the demo user (a token, then
// an API key made with it, then a browser session) and creates the
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
	login := `{"email":"user@example.com","password":"user-password"}`
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if _, err := request("POST", s.base+"/auth/login", nil, login, 200, &tok); err != nil {
		return nil, err
	}
	s.creds.token = tok.AccessToken
	bearer := []string{"Authorization: Bearer " + tok.AccessToken}
	var key struct {
		Secret string `json:"key"`
	}
	if _, err := request("POST", s.base+"/api-keys", bearer, `{"name":"bench","scopes":["posts:read","posts:write"]}`, 201, &key); err != nil {
		return nil, err
	}
	s.creds.apiKey = key.Secret
	var session struct {
		CSRF string `json:"csrf_token"`
	}
	resp, err := request("POST", s.base+"/auth/session", nil, login, 201, &session)
	if err != nil {
		return nil, err
	}
	var cookies []string
	for _, c := range resp.Cookies() {
		cookies = append(cookies, c.Name+"="+c.Value)
	}
	if len(cookies) != 2 || !strings.HasPrefix(cookies[1], "__Host-csrf=") {
		// The session cookie first: forgeCookie changes its secret.
		slices.Reverse(cookies)
	}
	s.creds.cookie, s.creds.csrf = strings.Join(cookies, "; "), session.CSRF
	var post struct {
		ID string `json:"id"`
	}
	body := fmt.Sprintf(`{"title":"Benchmark post","body":%q,"status":"published"}`, strings.Repeat("Lorem ipsum dolor sit amet. ", 8))
	if _, err := request("POST", s.base+"/posts", bearer, body, 201, &post); err != nil {
		return nil, err
	}
	s.post = "/posts/" + post.ID
	return s, nil
}

// request makes one request with headers ("Name: value", as wrk takes
// them) and decodes the answer into into.
func request(method, url string, headers []string, body string, want int, into any) (*http.Response, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ": ")
		req.Header.Add(name, value)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: %d, want %d: %s", method, url, resp.StatusCode, want, raw)
	}
	if into != nil {
		return resp, json.Unmarshal(raw, into)
	}
	return resp, nil
}

// check makes one request of each load as the load will, and one with a
// forged credential, which every secured stack refuses.
func (s *stack) check() error {
	for i := range loads {
		l := &loads[i]
		if !s.takes(l) {
			continue
		}
		if _, err := request(l.method, l.url(s), l.headers(s.creds), l.body, l.want, nil); err != nil {
			return fmt.Errorf("(%s) %s: %s: %w", s.id, s.name, l.id, err)
		}
		if l.forged != nil && s.bare != s {
			if _, err := request(l.method, l.url(s), l.forged(s.creds), l.body, l.refused, nil); err != nil {
				return fmt.Errorf("(%s) %s: %s with a forged credential: %w", s.id, s.name, l.id, err)
			}
		}
	}
	return nil
}

// commands is the total of Redis command calls so far on s's Redis nodes
// (INFO commandstats).
func commands(ctx context.Context, s *stack) int64 {
	var n int64
	for _, addr := range s.redis {
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		info, err := rdb.Info(ctx, "commandstats").Result()
		rdb.Close()
		if err != nil {
			return 0
		}
		for _, m := range regexp.MustCompile(`calls=(\d+)`).FindAllStringSubmatch(info, -1) {
			v, _ := strconv.ParseInt(m[1], 10, 64)
			n += v
		}
	}
	return n
}

// probeCalls counts the commands one request of l sends to Redis itself
// (not those its scripts run), with MONITOR on each of s's nodes watching
// 100 requests made one at a time. On one Redis each such command is one
// round trip; on a Cluster, commands to different nodes may travel at once.
func probeCalls(ctx context.Context, s *stack, l *load) (float64, error) {
	const n = 100
	// Let requests still in flight from the last load finish first, then
	// warm up: after a long load an account's cached state may have
	// expired from the store (security.AccountTTL, 5 minutes), and the
	// request that reads it again makes a few more calls once.
	time.Sleep(time.Second)
	for range 10 {
		if _, err := request(l.method, l.url(s), l.headers(s.creds), l.body, l.want, nil); err != nil {
			return 0, err
		}
	}
	type monitor struct {
		conn net.Conn
		r    *bufio.Reader
	}
	var mons []monitor
	for _, addr := range s.redis {
		conn, err := net.Dial("tcp", addr)
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
		mons = append(mons, monitor{conn, r})
	}
	for range n {
		if _, err := request(l.method, l.url(s), l.headers(s.creds), l.body, l.want, nil); err != nil {
			return 0, err
		}
	}
	// A marker on each node, then count the client commands seen before it.
	marker := fmt.Sprintf("bench-marker-%d", time.Now().UnixNano())
	calls := 0
	for i, m := range mons {
		rdb := redis.NewClient(&redis.Options{Addr: s.redis[i]})
		err := rdb.Echo(ctx, marker).Err()
		rdb.Close()
		if err != nil {
			return 0, err
		}
		m.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			line, err := m.r.ReadString('\n')
			if err != nil {
				return 0, fmt.Errorf("MONITOR: %v", err)
			}
			if strings.Contains(line, marker) {
				break
			}
			// "+<time> [0 lua] ..." is a command run by a script.
			// Connection set-up (a pool growing, a Cluster client
			// reading the slots) is not a per-request call.
			if strings.Contains(line, " lua] ") || setupCommand.MatchString(line) {
				continue
			}
			calls++
		}
	}
	return float64(calls) / n, nil
}

var setupCommand = regexp.MustCompile(`\] "(?i:hello|client|auth|select|ping|cluster|command|readonly)"`)

var (
	reqsRe    = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	totalRe   = regexp.MustCompile(`(\d+) requests in`)
	latencyRe = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$`)
)

func (h *harness) wrk(ctx context.Context, s *stack, l *load) (result, error) {
	script := ""
	if l.body != "" {
		script = filepath.Join(h.dir, l.id+".lua")
	}
	return h.wrkScript(ctx, s, l, script)
}

// wrkScript runs wrk with l's headers and, when script is set, that Lua
// script.
func (h *harness) wrkScript(ctx context.Context, s *stack, l *load, script string) (result, error) {
	args := []string{"-t" + strconv.Itoa(*threads), "-c" + strconv.Itoa(*connections), "-d" + duration.String(), "--latency"}
	for _, v := range l.headers(s.creds) {
		args = append(args, "-H", v)
	}
	if script != "" {
		args = append(args, "-s", script)
	}
	args = append(args, l.url(s))
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

var (
	rps = func(r result) float64 { return r.rps }
	p50 = func(r result) float64 { return r.p50 }
	p99 = func(r result) float64 { return r.p99 }
)

// report prints one table per load and, under each, its targets (issue
// 16): (b) >= 0.90x (a) and (c) >= 0.60x (a) in requests/s with one Redis
// round trip, (b) >= 2.5x (d) and (c) >= 2.5x (e) where a peer takes the
// load, p99 of (b) <= 1.2x and of (c) <= 2x p99 of (a).
func report(stacks []*stack, wrkVersion string) string {
	var b bytes.Buffer
	cpu := "unknown"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := regexp.MustCompile(`(?m)^model name\s*:\s*(.+)$`).FindSubmatch(data); m != nil {
			cpu = string(m[1])
		}
	}
	fmt.Fprintf(&b, "machine: %s, %d cores, %s, %s\n", cpu, runtime.NumCPU(), runtime.Version(), strings.SplitN(wrkVersion, "\n", 2)[0])
	fmt.Fprintf(&b, "load: wrk -t%d -c%d -d%s --latency; %d interleaved rounds, medians\n", *threads, *connections, duration, *rounds)
	fmt.Fprintf(&b, "command: go run ./e2e/bench -rounds %d -duration %s\n", *rounds, duration)
	byID := map[string]*stack{}
	for _, s := range stacks {
		byID[s.id] = s
	}
	for i := range loads {
		l := &loads[i]
		fmt.Fprintf(&b, "\n### %s\n\n", l.title)
		fmt.Fprintf(&b, "| stack | req/s | p50 ms | p99 ms | req/s vs bare | p99 vs bare | Redis calls/req | Redis cmds/req incl. scripts |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, s := range stacks {
			if !s.takes(l) {
				continue
			}
			runs, bare := s.runs[l.id], s.bare.runs[l.id]
			calls, cmds := "-", "-"
			if s.redis != nil {
				calls = fmt.Sprintf("%.2f", s.calls[l.id])
				cmds = fmt.Sprintf("%.2f", median(runs, func(r result) float64 { return float64(r.redisCmds) / float64(r.requests) }))
			}
			fmt.Fprintf(&b, "| (%s) %s | %.0f | %.3f | %.3f | %.2fx | %.2fx | %s | %s |\n", s.id, s.name, median(runs, rps),
				median(runs, p50), median(runs, p99), median(runs, rps)/median(bare, rps), median(runs, p99)/median(bare, p99), calls, cmds)
		}
		ratio := func(x, y string, f func(result) float64) float64 {
			return median(byID[x].runs[l.id], f) / median(byID[y].runs[l.id], f)
		}
		mark := func(ok bool) string {
			if ok {
				return "met"
			}
			return "MISSED"
		}
		fmt.Fprintf(&b, "\ntargets: (b) %.2fx (a) >= 0.90x %s; (c) %.2fx (a) >= 0.60x %s with %.2f Redis calls/req (1) %s; ",
			ratio("b", "a", rps), mark(ratio("b", "a", rps) >= 0.9), ratio("c", "a", rps), mark(ratio("c", "a", rps) >= 0.6),
			byID["c"].calls[l.id], mark(byID["c"].calls[l.id] == 1))
		if byID["d"].takes(l) {
			fmt.Fprintf(&b, "(b) %.2fx (d) >= 2.5x %s; (c) %.2fx (e) >= 2.5x %s; ", ratio("b", "d", rps), mark(ratio("b", "d", rps) >= 2.5),
				ratio("c", "e", rps), mark(ratio("c", "e", rps) >= 2.5))
		}
		if byID["i"].takes(l) {
			fmt.Fprintf(&b, "answers checked (report): (b) %.2fx (i) >= 0.90x %s; ", ratio("b", "i", rps), mark(ratio("b", "i", rps) >= 0.9))
		}
		fmt.Fprintf(&b, "p99 (b) %.2fx (a) <= 1.2x %s; p99 (c) %.2fx (a) <= 2x %s\n", ratio("b", "a", p99), mark(ratio("b", "a", p99) <= 1.2),
			ratio("c", "a", p99), mark(ratio("c", "a", p99) <= 2))
	}
	return b.String()
}

// A clientRun is specguard (memory store) whose limiter holds one bucket per
// client IP of n, loaded with anonymous requests cycling through them.
type clientRun struct {
	n    int
	s    *stack
	runs []result
}

// clientIP is the k-th client address: 10.x.y.z.
func clientIP(k int) string { return fmt.Sprintf("10.%d.%d.%d", k>>16&255, k>>8&255, k&255) }

// clientsTable measures anonymous GET /posts?limit=1 (one tier, by client IP,
// read from X-Real-IP, which the loopback proxy is trusted to set) on two
// instances: one whose limiter holds 1,000 buckets, one holding -clients.
// Each is filled first (one request per address), then loaded with wrk
// cycling through its addresses, interleaved round after round.
func (h *harness) clientsTable(ctx context.Context, bin string, env []string, dir func(string) string) ([]*clientRun, error) {
	var runs []*clientRun
	for _, n := range []int{1000, *clients} {
		s, err := h.startSpecguard(ctx, bin, append(slices.Clone(env), "SPECGUARD_DATA_DIR="+dir(fmt.Sprintf("clients-%d", n))))
		if err != nil {
			return nil, err
		}
		// The tier counts the address the header names: a second request
		// from one address sees one less remaining; another address does not.
		remaining := func(ip string) (string, error) {
			resp, err := request("GET", s.base+"/posts?limit=1", []string{"X-Real-IP: " + ip}, "", 200, nil)
			if err != nil {
				return "", err
			}
			return resp.Header.Get("RateLimit"), nil
		}
		first, err := remaining("192.0.2.1")
		if err != nil {
			return nil, err
		}
		second, _ := remaining("192.0.2.1")
		other, _ := remaining("192.0.2.2")
		if first == second || other != first {
			return nil, fmt.Errorf("the limiter does not count by X-Real-IP: %q, then %q, another address %q", first, second, other)
		}
		fmt.Fprintf(os.Stderr, "clients: filling %d buckets\n", n)
		if err := fill(ctx, s.base+"/posts?limit=1", n); err != nil {
			return nil, err
		}
		script := filepath.Join(h.dir, fmt.Sprintf("clients-%d.lua", n))
		lua := fmt.Sprintf(`local n, i = %d, 0
request = function()
  i = (i + 1) %% n
  local ip = string.format("10.%%d.%%d.%%d", math.floor(i / 65536) %% 256, math.floor(i / 256) %% 256, i %% 256)
  return wrk.format(nil, nil, {["X-Real-IP"] = ip})
end
`, n)
		if err := os.WriteFile(script, []byte(lua), 0o644); err != nil {
			return nil, err
		}
		runs = append(runs, &clientRun{n: n, s: s})
	}
	l := &load{id: "clients", path: "/posts?limit=1", headers: func(creds) []string { return nil }}
	for round := 1; round <= *rounds; round++ {
		for _, c := range runs {
			fmt.Fprintf(os.Stderr, "round %d/%d: clients: %d addresses\n", round, *rounds, c.n)
			l.id = fmt.Sprintf("clients-%d", c.n)
			r, err := h.wrkScript(ctx, c.s, l, filepath.Join(h.dir, l.id+".lua"))
			if err != nil {
				return nil, err
			}
			c.runs = append(c.runs, r)
		}
	}
	return runs, nil
}

// fill makes one anonymous request from each of n client addresses, 32 at
// a time.
func fill(ctx context.Context, url string, n int) error {
	next := make(chan int)
	errs := make(chan error, 32)
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				if _, err := request("GET", url, []string{"X-Real-IP: " + clientIP(k)}, "", 200, nil); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var err error
feed:
	for k := range n {
		select {
		case next <- k:
		case err = <-errs:
			break feed
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err == nil && len(errs) > 0 {
		err = <-errs
	}
	return err
}

func reportClients(runs []*clientRun) string {
	if len(runs) != 2 {
		return ""
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "\n### Clients: anonymous GET /posts?limit=1, one tier by client IP, memory store holding 1,000 vs %d buckets\n\n", runs[1].n)
	fmt.Fprintf(&b, "| limiter buckets (distinct client IPs, cycled) | req/s | p50 ms | p99 ms |\n|---|---:|---:|---:|\n")
	for _, c := range runs {
		fmt.Fprintf(&b, "| %d | %.0f | %.3f | %.3f |\n", c.n, median(c.runs, rps), median(c.runs, p50), median(c.runs, p99))
	}
	ratio := median(runs[1].runs, rps) / median(runs[0].runs, rps)
	ok := "met"
	if ratio < 0.9 {
		ok = "MISSED"
	}
	fmt.Fprintf(&b, "\ntarget: %d buckets %.2fx the throughput of 1,000, within 10%%: %s\n", runs[1].n, ratio, ok)
	return b.String()
}
