package main

// The processes a run starts: Redis, a Redis Cluster, PostgreSQL databases,
// the peers and specguard, each on a free loopback port.

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, for the databases of (f) and (g)
	"github.com/redis/go-redis/v9"
)

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
	// UTF8, which sqldb requires, whatever the server's default.
	if _, err := h.pg.ExecContext(ctx, "CREATE DATABASE "+db+" TEMPLATE template0 ENCODING 'UTF8'"); err != nil {
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
	cmd.Env = childEnv()
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
	cmd.Env = append(childEnv(), append(env, "SPECGUARD_ADDR="+addr)...)
	// Its log, kept for when a load fails (see serverComplaints).
	logFile, err := os.CreateTemp(h.dir, "specguard-*.log")
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the process has its own descriptor
	cmd.Stdout = logFile
	if err := h.start(ctx, cmd); err != nil {
		return nil, err
	}
	s := &stack{base: "http://" + addr, log: logFile.Name()}
	for deadline := time.Now().Add(20 * time.Second); ; {
		if resp, err := client.Get(s.base + "/healthz"); err == nil {
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
	if _, err := request("POST", s.base+"/posts", bearer, postBody, 201, &post); err != nil {
		return nil, err
	}
	s.post = "/posts/" + post.ID
	return s, nil
}

// serverComplaints returns the last warnings and errors in a specguard
// stack's log (a 503 says why there), for a load that failed.
func serverComplaints(s *stack) string {
	if s.log == "" {
		return ""
	}
	data, err := os.ReadFile(s.log)
	if err != nil {
		return ""
	}
	var lines []string
	for line := range strings.Lines(string(data)) {
		if strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) {
			lines = append(lines, line)
		}
	}
	if len(lines) > 10 {
		lines = lines[len(lines)-10:]
	}
	if len(lines) == 0 {
		return ""
	}
	return "its last warnings and errors:\n" + strings.Join(lines, "")
}

// passedOn are the settings the harness passes on from its environment to
// every server it starts, and names in its report (make bench-smoke sets
// SPECGUARD_STORE_TIMEOUT).
var passedOn = []string{"SPECGUARD_STORE_TIMEOUT"}

// childEnv is the environment of the servers the harness starts: its own,
// without the SPECGUARD_* and OTEL_* settings a shell may have exported
// (a SPECGUARD_REDIS_URL would change what a stack is) but passedOn.
func childEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if (strings.HasPrefix(name, "SPECGUARD_") || strings.HasPrefix(name, "OTEL_")) && !slices.Contains(passedOn, name) {
			continue
		}
		out = append(out, kv)
	}
	return out
}
