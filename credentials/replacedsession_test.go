package credentials_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/specguard/specguard/internal/redistest"
	"github.com/specguard/specguard/limits/redislimit"
	"github.com/specguard/specguard/security/redisstore"
)

// A browser session login that replaces a cookie ends the session it
// replaces: a copy of that cookie must not outlive it. When the store could
// not confirm that end (its replica had not got it: WAIT failed), the login
// was answered 201 all the same, and a failover brought the replaced
// session back, working. It is answered 503 now, ending nothing new.
func TestReplacedSessionEndConfirmedBeforeA201(t *testing.T) {
	master := redistest.StartOwn(t)
	px := newLinkProxy(t, master.Addr)
	replica := redistest.StartReplica(t, &redistest.Server{Addr: px.addr, Prefix: master.Prefix})
	var target atomic.Value
	target.Store(master.Addr)
	rdb := redis.NewClient(&redis.Options{Addr: master.Addr, ContextTimeoutEnabled: true, MaxRetries: 1,
		Dialer: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, target.Load().(string))
		}})
	t.Cleanup(func() { rdb.Close() })
	accounts, keys := memoryRecords(t)
	e := newEnv(t, nil, accounts, keys, redisstore.New(rdb, master.Prefix, 2*time.Second), redislimit.New(rdb, master.Prefix+"rl:"))

	e.register("root@example.com", "root-password-1")
	e.register("next@example.com", "next-password-1")
	old, _ := e.browserLogin("root@example.com", "root-password-1")
	if r := e.do("GET", "/me", "", "", "Cookie", old); r.code != 200 {
		t.Fatalf("root's session: %d", r.code)
	}
	ctx := context.Background()
	if n, err := master.Client(t).Do(ctx, "WAIT", 1, 5000).Int64(); err != nil || n != 1 {
		t.Fatalf("replica not in sync: %d %v", n, err)
	}
	// The replication link stalls (a slow network): the replica stays
	// connected, so its master counts it, but gets nothing new.
	px.paused.Store(true)
	r := e.json("POST", "/auth/session", `{"email":"next@example.com","password":"next-password-1","device":"browser"}`, "Cookie", old)
	if r.code != 503 {
		t.Errorf("the login that was to end root's session, while the store could not confirm the end: %d %s, want 503", r.code, r.raw)
	}
	// The master dies; its replica takes over.
	master.Stop()
	px.close()
	rc := redis.NewClient(&redis.Options{Addr: replica.Addr})
	defer rc.Close()
	if err := rc.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	target.Store(replica.Addr)
	// The replaced session lives on the new master (its end never got
	// there); the browser, told 503, logs in again, and that ends it.
	redistest.Until(t, "the new master to answer", func() bool {
		r = e.json("POST", "/auth/session", `{"email":"next@example.com","password":"next-password-1","device":"browser"}`, "Cookie", old)
		return r.code != 503
	})
	if r.code != 201 {
		t.Fatalf("the login again after the failover: %d %s, want 201", r.code, r.raw)
	}
	if code := e.do("GET", "/me", "", "", "Cookie", old).code; code != 401 {
		t.Errorf("root's replaced session after the failover and the login again: GET /me %d, want 401", code)
	}
}

// linkProxy forwards TCP to a Redis; while paused it forwards nothing
// from the server to its clients (the bytes it holds are never sent).
type linkProxy struct {
	addr   string
	paused atomic.Bool
	closed atomic.Bool
	ln     net.Listener
	conns  chan net.Conn
}

func newLinkProxy(t *testing.T, to string) *linkProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &linkProxy{addr: ln.Addr().String(), ln: ln, conns: make(chan net.Conn, 1000)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", to)
			if err != nil {
				c.Close()
				continue
			}
			p.conns <- c
			p.conns <- s
			go func() { // client -> server
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						s.Write(buf[:n])
					}
					if err != nil {
						s.Close()
						return
					}
				}
			}()
			go func() { // server -> client, held while paused
				buf := make([]byte, 64<<10)
				for {
					n, err := s.Read(buf)
					for p.paused.Load() && !p.closed.Load() {
						time.Sleep(10 * time.Millisecond)
					}
					if p.closed.Load() {
						c.Close()
						return
					}
					if n > 0 {
						c.Write(buf[:n])
					}
					if err != nil {
						c.Close()
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(p.close)
	return p
}

func (p *linkProxy) close() {
	p.closed.Store(true)
	p.ln.Close()
	for {
		select {
		case c := <-p.conns:
			c.Close()
		default:
			return
		}
	}
}
