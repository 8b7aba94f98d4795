// Package redistest starts throwaway Redis servers for tests: a
// redis-server on a free loopback port, stopped when the test ends. When
// SPECGUARD_TEST_REDIS_URL is set, that server is used instead. When
// neither is possible the test is skipped, except under CI=true, where a
// missing Redis is a failure.
package redistest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/specguard/specguard/internal/testenv"

	"github.com/redis/go-redis/v9"
)

// Server is one running Redis.
type Server struct {
	Addr string // host:port
	URL  string // redis://host:port/0
	// Prefix is unique to this Start: tests sharing one server through
	// SPECGUARD_TEST_REDIS_URL keep their keys apart with it.
	Prefix string
	cmd    *exec.Cmd
	dir    string
}

func unavailable(t testing.TB, why string) {
	t.Helper()
	testenv.Unavailable(t, "Redis", why, "install redis-server or set SPECGUARD_TEST_REDIS_URL")
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) int { return testenv.FreePort(t) }

var counter atomic.Int64

// Start returns a Redis for this test.
func Start(t testing.TB) *Server {
	t.Helper()
	testenv.Outside(t, "Redis")
	prefix := fmt.Sprintf("t%d-%d:", os.Getpid(), counter.Add(1))
	if url := os.Getenv("SPECGUARD_TEST_REDIS_URL"); url != "" {
		opt, err := redis.ParseURL(url)
		if err != nil {
			t.Fatalf("SPECGUARD_TEST_REDIS_URL: %v", err)
		}
		if err := waitPing(opt.Addr, time.Second); err != nil {
			unavailable(t, err.Error())
		}
		return &Server{Addr: opt.Addr, URL: url, Prefix: prefix}
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		unavailable(t, "redis-server is not on PATH")
	}
	return startOwn(t, prefix)
}

// StartOwn returns a redis-server of this test's own, whatever
// SPECGUARD_TEST_REDIS_URL says: for a test that stops or restarts it.
func StartOwn(t testing.TB) *Server {
	t.Helper()
	testenv.Outside(t, "Redis")
	return startOwn(t, fmt.Sprintf("t%d-%d:", os.Getpid(), counter.Add(1)))
}

func startOwn(t testing.TB, prefix string) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		testenv.Unavailable(t, "Redis", "redis-server is not on PATH", "install redis-server")
	}
	s := &Server{dir: t.TempDir(), Prefix: prefix}
	s.start(t, FreePort(t), nil)
	t.Cleanup(s.Stop)
	return s
}

// start starts redis-server on port with extra arguments.
func (s *Server) start(t testing.TB, port int, extra []string) {
	t.Helper()
	s.Addr = "127.0.0.1:" + strconv.Itoa(port)
	s.URL = "redis://" + s.Addr + "/0"
	args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.dir, "--logfile", filepath.Join(s.dir, fmt.Sprintf("redis-%d.log", port))}, extra...)
	s.cmd = exec.Command("redis-server", args...)
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting redis-server: %v", err)
	}
	if err := waitPing(s.Addr, 5*time.Second); err != nil {
		s.Stop()
		t.Fatalf("redis-server on %s did not answer: %v", s.Addr, err)
	}
}

func waitPing(addr string, within time.Duration) error {
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer rdb.Close()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server (as a crash would) and waits for it to exit. A
// server given by SPECGUARD_TEST_REDIS_URL is left alone.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// StartReplica starts a redis-server of this test's own that replicates
// master, and returns once its copy is in sync.
func StartReplica(t testing.TB, master *Server) *Server {
	t.Helper()
	host, port, _ := net.SplitHostPort(master.Addr)
	syncNow(t, master.Addr)
	s := &Server{dir: t.TempDir(), Prefix: master.Prefix}
	s.start(t, FreePort(t), []string{"--replicaof", host, port})
	t.Cleanup(s.Stop)
	rdb := master.Client(t)
	Until(t, "the replica of "+master.Addr+" in sync", func() bool {
		// Online as the master sees it: it counts the replica from then.
		info, _ := rdb.Info(context.Background(), "replication").Result()
		return strings.Contains(info, "state=online")
	})
	return s
}

// Freeze stops the server's process without ending it (SIGSTOP): its
// connections stay open, and nothing it is sent is answered, until Thaw.
func (s *Server) Freeze(t testing.TB) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.cmd.Process.Signal(syscall.SIGCONT) })
}

// Thaw lets a frozen server go on.
func (s *Server) Thaw(t testing.TB) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}

// Restart starts the server again on the same port after Stop.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if s.dir == "" {
		t.Fatal("cannot restart a server given by SPECGUARD_TEST_REDIS_URL")
	}
	_, port, _ := net.SplitHostPort(s.Addr)
	p, _ := strconv.Atoi(port)
	s.start(t, p, nil)
}

// Client returns a client for the server, closed when the test ends.
func (s *Server) Client(t testing.TB) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr, ContextTimeoutEnabled: true, MaxRetries: 1})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// Cluster is a throwaway three-master Redis Cluster on loopback.
type Cluster struct {
	Nodes []*Server
	// URL is the SPECGUARD_REDIS_URL form: redis+cluster://host:port,host:port,host:port
	URL string
}

// Client returns a client for the cluster, closed when the test ends.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr
	}
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// Partial has every node of c keep serving its own slots while another
// is down (cluster-require-full-coverage no): a partial outage, rather
// than the whole Cluster refusing every call (CLUSTERDOWN) once it sees a
// node gone, after its 2 s node timeout.
func (c *Cluster) Partial(t testing.TB, rdb *redis.ClusterClient) {
	t.Helper()
	if err := rdb.ForEachShard(context.Background(), func(ctx context.Context, n *redis.Client) error {
		return n.ConfigSet(ctx, "cluster-require-full-coverage", "no").Err()
	}); err != nil {
		t.Fatal(err)
	}
}

// NodeOf is the address of the master of rdb that holds key.
func NodeOf(t testing.TB, rdb *redis.ClusterClient, key string) string {
	t.Helper()
	n, err := rdb.MasterForKey(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return n.Options().Addr
}

// StopNode stops the node of c at addr.
func (c *Cluster) StopNode(addr string) {
	for _, n := range c.Nodes {
		if n.Addr == addr {
			n.Stop()
		}
	}
}

// AddReplica starts a node that replicates the master of c at addr, and
// returns a client of it once its copy is in sync. It is stopped when the
// test ends.
func (c *Cluster) AddReplica(t testing.TB, addr string) *redis.Client {
	t.Helper()
	ctx := context.Background()
	s := &Server{dir: t.TempDir()}
	s.start(t, freeClusterPort(t), []string{"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(s.dir, "nodes.conf"), "--cluster-node-timeout", "2000"})
	t.Cleanup(s.Stop)
	c.Nodes = append(c.Nodes, s)
	replica := redis.NewClient(&redis.Options{Addr: s.Addr})
	t.Cleanup(func() { replica.Close() })
	syncNow(t, addr)
	master := redis.NewClient(&redis.Options{Addr: addr})
	defer master.Close()
	id, err := master.Do(ctx, "CLUSTER", "MYID").Text()
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(addr)
	if err := replica.ClusterMeet(ctx, host, port).Err(); err != nil {
		t.Fatal(err)
	}
	// CLUSTER REPLICATE is refused until the meeting has told the new
	// node of the master.
	Until(t, "CLUSTER REPLICATE "+addr, func() bool { return replica.Do(ctx, "CLUSTER", "REPLICATE", id).Err() == nil })
	Until(t, "the replica of "+addr+" in sync", func() bool {
		info, _ := replica.Info(ctx, "replication").Result()
		return strings.Contains(info, "master_link_status:up")
	})
	rid, err := replica.Do(ctx, "CLUSTER", "MYID").Text()
	if err != nil {
		t.Fatal(err)
	}
	Until(t, "the master "+addr+" to know its replica", func() bool {
		nodes, _ := master.ClusterNodes(ctx).Result()
		for line := range strings.Lines(nodes) {
			if f := strings.Fields(line); len(f) > 3 && f[0] == rid && strings.Contains(f[2], "slave") && f[3] == id {
				return true
			}
		}
		return false
	})
	return replica
}

// syncNow has the server at addr send a new replica its copy at once,
// not after the 5 s it waits for others to join.
func syncNow(t testing.TB, addr string) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	if err := rdb.ConfigSet(context.Background(), "repl-diskless-sync-delay", "0").Err(); err != nil {
		t.Fatal(err)
	}
}

// Until waits up to 20 s for ok, and fails t after.
func Until(t testing.TB, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !ok(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 20 s for %s", what)
		}
	}
}

// freeClusterPort returns a port p such that p and its cluster bus port
// p+10000 are both free.
func freeClusterPort(t testing.TB) int {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if p+10000 > 65535 {
			continue
		}
		if bus, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+10000)); err == nil {
			bus.Close()
			return p
		}
	}
	t.Fatal("no free port pair for a cluster node")
	return 0
}

// StartCluster starts three masters with redis-server --cluster-enabled
// and joins them with redis-cli --cluster create. They are stopped when the
// test ends. SPECGUARD_TEST_REDIS_URL is not used: a cluster needs its own.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	testenv.Outside(t, "a Redis Cluster")
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			unavailable(t, bin+" is not on PATH")
		}
	}
	c := &Cluster{}
	var addrs []string
	for range 3 {
		s := &Server{dir: t.TempDir(), Prefix: fmt.Sprintf("t%d-%d:", os.Getpid(), counter.Add(1))}
		port := freeClusterPort(t)
		s.start(t, port, []string{"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(s.dir, "nodes.conf"), "--cluster-node-timeout", "2000"})
		t.Cleanup(s.Stop)
		c.Nodes = append(c.Nodes, s)
		addrs = append(addrs, s.Addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, s := range c.Nodes {
		for {
			out, _ := exec.Command("redis-cli", "-h", "127.0.0.1", "-p", s.Addr[len("127.0.0.1:"):], "cluster", "info").Output()
			if bytes.Contains(out, []byte("cluster_state:ok")) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster did not become ok: %s", out)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	c.URL = "redis+cluster://" + strings.Join(addrs, ",")
	return c
}

// RoundTrips is a go-redis hook that counts what a client sends: one per
// command or pipeline, which is one network round trip each. Add it with
// client.AddHook.
type RoundTrips struct{ N atomic.Int64 }

// DialHook implements redis.Hook.
func (c *RoundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook implements redis.Hook.
func (c *RoundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.N.Add(1); return next(ctx, cmd) }
}

// ProcessPipelineHook implements redis.Hook.
func (c *RoundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { c.N.Add(1); return next(ctx, cmds) }
}
