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
	"context"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/specguard/specguard/internal/testenv"
	"github.com/specguard/specguard/sqldb"
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
	log      string             // specguard's log file, when it is one of specguard's
	db       string             // its database (a PostgreSQL URL, or the SQLite file), for forgetWrites
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

// postBody is the post every stack serves (made at its start; the peers
// seed the same, see e2e/bench/peers), and the one the write load adds:
// GET /posts?limit=1 answers the newest, the same on every stack whether
// or not it took writes.
var postBody = fmt.Sprintf(`{"title":"Benchmark post","body":%q,"status":"published"}`, strings.Repeat("Lorem ipsum dolor sit amet. ", 8))

var loads = []load{
	{id: "bearer", title: "bearer token, GET /posts/{id} (posts:read)", method: "GET", path: "{post}", want: 200, refused: 401,
		headers: func(c creds) []string { return []string{"Authorization: Bearer " + c.token} },
		forged:  func(c creds) []string { return []string{"Authorization: Bearer " + forge(c.token)} }},
	{id: "apikey", title: "API key, GET /posts/{id} (posts:read)", method: "GET", path: "{post}", want: 200, refused: 401,
		headers: func(c creds) []string { return []string{"X-API-Key: " + c.apiKey} },
		forged:  func(c creds) []string { return []string{"X-API-Key: " + forge(c.apiKey)} }},
	{id: "cookie-me", title: "cookie session, GET /me", method: "GET", path: "/me", want: 200, refused: 401,
		headers: func(c creds) []string { return []string{"Cookie: " + c.cookie} },
		forged:  func(c creds) []string { return []string{"Cookie: " + forgeCookie(c.cookie)} }},
	{id: "cookie-post", title: "cookie session with CSRF, POST /posts (a validated body, one row written and committed)",
		method: "POST", path: "/posts", body: postBody, want: 201, refused: 403, // the CSRF token is wrong
		headers: func(c creds) []string { return []string{"Cookie: " + c.cookie, "X-CSRF-Token: " + c.csrf} },
		forged: func(c creds) []string {
			return []string{"Cookie: " + c.cookie, "X-CSRF-Token: " + forge(c.csrf)}
		}},
	// One post: the peers take no write load, so their databases hold the
	// one post they seeded; with a larger limit they answered with fewer
	// rows than the stacks that took it, and looked faster for it.
	{id: "anon", title: "anonymous, GET /posts?limit=1 (security lists {} first)", method: "GET", path: "/posts?limit=1", want: 200,
		headers: func(creds) []string { return nil }},
}

// forge changes the last four characters of a credential: to AAAA, or to
// BAAA when it ended in AAAA already.
func forge(s string) string {
	if f := s[:len(s)-4] + "AAAA"; f != s {
		return f
	}
	return s[:len(s)-4] + "BAAA"
}

// forgeCookie changes the last characters of the session cookie's secret.
func forgeCookie(cookie string) string {
	session, rest, _ := strings.Cut(cookie, ";")
	return forge(session) + ";" + rest
}

func (s *stack) takes(l *load) bool { return strings.Contains(" "+s.loads+" ", " "+l.id+" ") }

func (l *load) url(s *stack) string {
	return s.base + strings.ReplaceAll(l.path, "{post}", s.post)
}

func main() {
	flag.Parse()
	if *rounds < 1 {
		fmt.Fprintln(os.Stderr, "bench: -rounds must be 1 or more")
		os.Exit(2)
	}
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
	if err := pickLoads(*only); err != nil {
		return err
	}
	wrkVersion, err := exec.Command("wrk", "--version").CombinedOutput()
	if len(wrkVersion) == 0 {
		return fmt.Errorf("wrk is not installed (apt-get install wrk): %v", err)
	}
	w, err := h.prepare(ctx)
	if err != nil {
		return err
	}
	stacks, err := h.startStacks(ctx, w)
	if err != nil {
		return err
	}
	if err := h.measure(ctx, stacks); err != nil {
		return err
	}
	var cl []*clientRun
	if *clients > 0 {
		env := w.with("SPECGUARD_SPEC_FILE="+w.clientSpec, "SPECGUARD_TRUSTED_PROXIES=127.0.0.1/32", "SPECGUARD_CLIENT_IP_HEADER=X-Real-IP")
		if cl, err = h.clientsTable(ctx, w.specguard, env, h.subdir); err != nil {
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

// pickLoads keeps the loads named in ids (comma-separated), all when empty.
func pickLoads(ids string) error {
	if ids == "" {
		return nil
	}
	var chosen []load
	for _, id := range strings.Split(ids, ",") {
		i := slices.IndexFunc(loads, func(l load) bool { return l.id == id })
		if i < 0 {
			return fmt.Errorf("-loads: no load %q", id)
		}
		chosen = append(chosen, loads[i])
	}
	loads = chosen
	return nil
}

// workbench is what the stacks are started from: the documents, the
// binaries, the signing key, the stores and databases.
type workbench struct {
	spec, clientSpec         string // the document, and the one of the clients table
	specguard, toolkit, peer string // the binaries
	key                      string // the signing key file
	redisAddr                string
	cluster                  []string // the Redis Cluster's masters
	pgA, pgG                 string   // the databases of stacks (f) and (g)
	common                   []string // every specguard stack's environment
}

// with is the common environment plus env.
func (w *workbench) with(env ...string) []string { return append(slices.Clone(w.common), env...) }

// subdir is a directory of the harness's own, made on first use.
func (h *harness) subdir(name string) string {
	d := filepath.Join(h.dir, name)
	os.MkdirAll(d, 0o700)
	return d
}

// prepare writes the documents and scripts, builds the binaries, and
// starts the stores: what the loads need of the document first, so that
// nothing is built or started for a document that lacks it.
func (h *harness) prepare(ctx context.Context) (*workbench, error) {
	var err error
	if h.dir, err = os.MkdirTemp("", "specguard-bench-"); err != nil {
		return nil, err
	}
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	w := &workbench{spec: filepath.Join(h.dir, "openapi.yaml"), clientSpec: filepath.Join(h.dir, "openapi-clients.yaml")}
	if err := writeBenchSpec(filepath.Join(root, "api/openapi.yaml"), w.spec, 10_000_000, "1m", 0); err != nil {
		return nil, err
	}
	// The clients' buckets must outlive the run: the memory store drops a
	// bucket once it is full again, an interval (window / limit) after its
	// last charge. One an hour, with a burst no address spends, keeps every
	// address charged once held for an hour (clientsTable checks it).
	if err := writeBenchSpec(filepath.Join(root, "api/openapi.yaml"), w.clientSpec, 1, "1h", clientBurst); err != nil {
		return nil, err
	}
	w.specguard, w.toolkit, w.peer = filepath.Join(h.dir, "blog"), filepath.Join(h.dir, "specguard"), filepath.Join(h.dir, "peerserver")
	fmt.Fprintln(os.Stderr, "building the example app, specguard and the peer stacks")
	if err := build(root, w.specguard, "./cmd/blog"); err != nil {
		return nil, err
	}
	if err := build(root, w.toolkit, "./cmd/specguard"); err != nil {
		return nil, err
	}
	if err := build(filepath.Join(root, "e2e/bench/peers"), w.peer, "./cmd/peerserver"); err != nil {
		return nil, err
	}
	w.key = filepath.Join(h.dir, "signing.pem")
	if out, err := exec.Command(w.toolkit, "keygen", "--alg", "ed25519", "--out", w.key).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("keygen: %v: %s", err, out)
	}
	if w.redisAddr, err = h.startRedis(ctx, "", nil); err != nil {
		return nil, err
	}
	if w.cluster, err = h.startCluster(ctx); err != nil {
		return nil, err
	}
	for _, l := range loads {
		if l.body == "" {
			continue
		}
		script := fmt.Sprintf("wrk.method = %q\nwrk.body = %q\nwrk.headers[\"Content-Type\"] = \"application/json\"\n", l.method, l.body)
		if err := os.WriteFile(filepath.Join(h.dir, l.id+".lua"), []byte(script), 0o644); err != nil {
			return nil, err
		}
	}
	if w.pgA, err = h.database(ctx, "f"); err != nil {
		return nil, err
	}
	if w.pgG, err = h.database(ctx, "g"); err != nil {
		return nil, err
	}
	// The demo accounts are seeded by themselves only in the development
	// setup: the stacks on Redis or PostgreSQL get them from a users file.
	h.users = filepath.Join(h.dir, "users.yaml")
	if err := os.WriteFile(h.users, []byte(testenv.DemoUsers), 0o600); err != nil {
		return nil, err
	}
	w.common = []string{"SPECGUARD_SIGNING_KEY_FILE=" + w.key, "SPECGUARD_SPEC_FILE=" + w.spec, "SPECGUARD_ADMIN_ADDR=off", "SPECGUARD_USERS_FILE=" + h.users,
		"SPECGUARD_LOG_REQUESTS=false", "SPECGUARD_ACCESS_TTL=2h", "SPECGUARD_REFRESH_TTL=2h"}
	return w, nil
}

// startStacks starts every stack compared, (a) to (i), and checks that
// each answers its loads as it should.
func (h *harness) startStacks(ctx context.Context, w *workbench) ([]*stack, error) {
	redisURL := "redis://" + w.redisAddr
	dir := h.subdir
	a, err := h.startPeer(ctx, w.peer, "bare", w.key, w.spec, "", dir("a"), "")
	if err != nil {
		return nil, err
	}
	b, err := h.startSpecguard(ctx, w.specguard, w.with("SPECGUARD_DATA_DIR="+dir("b")))
	if err != nil {
		return nil, err
	}
	c, err := h.startSpecguard(ctx, w.specguard, w.with("SPECGUARD_DATA_DIR="+dir("c"), "SPECGUARD_REDIS_URL="+redisURL+"/0"))
	if err != nil {
		return nil, err
	}
	d, err := h.startPeer(ctx, w.peer, "peer", w.key, w.spec, "", dir("d"), "")
	if err != nil {
		return nil, err
	}
	e, err := h.startPeer(ctx, w.peer, "peer-redis", w.key, w.spec, redisURL+"/0", dir("e"), "")
	if err != nil {
		return nil, err
	}
	f, err := h.startPeer(ctx, w.peer, "bare", w.key, w.spec, "", dir("f"), w.pgA)
	if err != nil {
		return nil, err
	}
	g, err := h.startSpecguard(ctx, w.specguard, w.with("SPECGUARD_DATA_DIR="+dir("g"), "SPECGUARD_REDIS_URL="+redisURL+"/1", "SPECGUARD_DATABASE_URL="+w.pgG))
	if err != nil {
		return nil, err
	}
	hc, err := h.startSpecguard(ctx, w.specguard, w.with("SPECGUARD_DATA_DIR="+dir("h"), "SPECGUARD_REDIS_URL=redis+cluster://"+strings.Join(w.cluster, ",")))
	if err != nil {
		return nil, err
	}
	for s, db := range map[*stack]string{a: dir("a"), b: dir("b"), c: dir("c"), f: w.pgA, g: w.pgG, hc: dir("h")} {
		if s.db = db; !strings.Contains(db, "://") {
			s.db = filepath.Join(db, sqldb.DefaultFile)
		}
	}
	// (b) checks every answer against the document (the default, report):
	// (i) is (b) without, for what that costs.
	off, err := h.startSpecguard(ctx, w.specguard, w.with("SPECGUARD_DATA_DIR="+dir("i"), "SPECGUARD_VALIDATE_RESPONSES=off"))
	if err != nil {
		return nil, err
	}
	a.id, a.name, a.loads = "a", "bare: chi + generated strict handlers, SQLite", everyLoad
	b.id, b.name, b.loads = "b", "specguard, memory store, SQLite", everyLoad
	c.id, c.name, c.loads, c.redis = "c", "specguard, Redis, SQLite", everyLoad, []string{w.redisAddr}
	d.id, d.name, d.loads = "d", "nethttp-middleware + golang-jwt or hashed API key + httprate, SQLite", peerLoads
	e.id, e.name, e.loads, e.redis = "e", "(d) + Redis jti denylist + redis_rate, SQLite", peerLoads, []string{w.redisAddr}
	f.id, f.name, f.loads = "f", "bare, PostgreSQL", everyLoad
	g.id, g.name, g.loads, g.redis = "g", "specguard, Redis, PostgreSQL", everyLoad, []string{w.redisAddr}
	hc.id, hc.name, hc.loads, hc.redis = "h", "specguard, Redis Cluster (3 masters), SQLite", everyLoad, w.cluster
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
			return nil, err
		}
	}
	return stacks, nil
}

// measure runs every load on every stack that takes it, once unrecorded
// (warm-up) and then round after round, each round starting with the next
// stack, then counts the store calls of one request on the stacks with
// Redis.
func (h *harness) measure(ctx context.Context, stacks []*stack) error {
	for i := range loads {
		l := &loads[i]
		for _, s := range stacks {
			if !s.takes(l) {
				continue
			}
			fmt.Fprintf(os.Stderr, "warm-up: %s: (%s) %s\n", l.id, s.id, s.name)
			if _, err := h.wrk(ctx, s, l, warmup()); err != nil {
				return fmt.Errorf("(%s) %s: warm-up: %w", s.id, l.id, err)
			}
			if err := forgetWrites(ctx, s, l); err != nil {
				return fmt.Errorf("(%s) %s: warm-up: %w", s.id, l.id, err)
			}
		}
	}
	for round := 1; round <= *rounds; round++ {
		for i := range loads {
			l := &loads[i]
			for _, s := range rotated(stacks, round-1) {
				if !s.takes(l) {
					continue
				}
				if err := ctx.Err(); err != nil {
					return err
				}
				fmt.Fprintf(os.Stderr, "round %d/%d: %s: (%s) %s\n", round, *rounds, l.id, s.id, s.name)
				before, err := commands(ctx, s)
				if err != nil {
					return fmt.Errorf("(%s) %s: %w", s.id, l.id, err)
				}
				r, err := h.wrk(ctx, s, l, *duration)
				if err != nil {
					return fmt.Errorf("(%s) %s: %w", s.id, l.id, err)
				}
				if err := forgetWrites(ctx, s, l); err != nil {
					return fmt.Errorf("(%s) %s: %w", s.id, l.id, err)
				}
				if s.redis != nil {
					// The INFO calls of the first count are counted by the second.
					after, err := commands(ctx, s)
					if err != nil {
						return fmt.Errorf("(%s) %s: %w", s.id, l.id, err)
					}
					r.redisCmds = after - before - int64(len(s.redis))
				}
				s.runs[l.id] = append(s.runs[l.id], r)
			}
		}
	}
	for _, s := range stacks {
		for i := range loads {
			if l := &loads[i]; s.redis != nil && s.takes(l) {
				var err error
				if s.calls[l.id], err = probeCalls(ctx, s, l); err != nil {
					return fmt.Errorf("(%s) %s: %w", s.id, l.id, err)
				}
			}
		}
	}
	return nil
}

// forgetWrites deletes, after a load that writes, the posts it wrote,
// keeping the one the stack serves, and compacts the database: every
// stack then reads the same one-row table, the peers (which take no
// writes) included, where a database grown by tens of thousands of rows
// (and SQLite's write-ahead log) slowed the stacks that took them.
func forgetWrites(ctx context.Context, s *stack, l *load) error {
	if l.body == "" || s.db == "" {
		return nil
	}
	driver, dsn, del, compact := "sqlite", "file:"+s.db+"?_pragma=busy_timeout(10000)", "DELETE FROM posts WHERE id <> ?", "PRAGMA wal_checkpoint(TRUNCATE)"
	if strings.Contains(s.db, "://") {
		driver, dsn, del, compact = "pgx", s.db, "DELETE FROM posts WHERE id <> $1", "VACUUM posts"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	keep := strings.TrimPrefix(s.post, "/posts/")
	if _, err := db.ExecContext(ctx, del, keep); err != nil {
		return fmt.Errorf("forgetting the load's posts: %w", err)
	}
	if _, err := db.ExecContext(ctx, compact); err != nil {
		return fmt.Errorf("forgetting the load's posts: %s: %w", compact, err)
	}
	return nil
}

// rotated is xs starting at its k-th element (modulo its length), the
// ones before it at the end: round after round, no stack always runs
// after the same one (a PostgreSQL stack's background writes, a stack
// that heats the machine).
func rotated[T any](xs []T, k int) []T {
	k %= len(xs)
	return append(slices.Clone(xs[k:]), xs[:k]...)
}

// warmup is how long each stack takes each load once before the rounds:
// caches filled, connections open, the runtime's heap grown.
func warmup() time.Duration { return min(*duration, 2*time.Second) }

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
