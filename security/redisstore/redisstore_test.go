package redisstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/specguard/specguard/internal/onetrip"
	"github.com/specguard/specguard/internal/redistest"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/redisstore"
	"github.com/specguard/specguard/security/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) security.Store {
		srv := redistest.Start(t)
		return redisstore.New(srv.Client(t), srv.Prefix, time.Second)
	})
}

// Every Redis key must expire, so nothing outlives what it protects, and a
// revocation nothing outlives its use.
func TestRedisKeysHaveTTL(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	s := redisstore.New(rdb, srv.Prefix, time.Second)
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	_ = s.CreateFamily(ctx, &security.Family{ID: "f", Subject: "alice", RefreshJTI: "r", AccessJTI: "a", Expires: exp}, 0)
	_ = s.CreateSession(ctx, &security.Session{ID: "s", Subject: "alice", SecretHash: []byte("h"), Expires: exp}, 0)
	_, _ = s.MarkKey(ctx, &security.APIKey{ID: "k", Subject: "alice", Expires: exp}, false, 0)
	_ = s.RevokeKey(ctx, "alice", "k2", exp)
	_, _ = s.PutAccount(ctx, "alice", security.Account{Version: 1, Role: "user"})
	keys, err := rdb.Keys(ctx, srv.Prefix+"*").Result()
	if err != nil || len(keys) != 8 {
		t.Fatalf("keys = %v, %v; want 8", keys, err)
	}
	for _, k := range keys {
		ttl, _ := rdb.PTTL(ctx, k).Result()
		// A second of slack: expiries are rounded up to the millisecond.
		limit := time.Hour + time.Second
		switch {
		case strings.HasSuffix(k, ":acct"):
			limit = security.AccountTTL + time.Second
		case strings.HasSuffix(k, ":key:k"):
			limit = security.MarkTTL + time.Second
		case strings.HasSuffix(k, ":key:k2"):
			// A revocation was kept until the key expired (a year), outside
			// any cap: now for as long as a refilled mark could undo it.
			limit = security.KeyRevocationTTL + time.Second
		}
		if ttl <= 0 || ttl > limit {
			t.Errorf("%s: TTL %s, want (0, %s]", k, ttl, limit)
		}
	}
}

// A store that cannot be reached gives ErrUnavailable, never a pass.
func TestRedisStoreDownIsUnavailable(t *testing.T) {
	srv := redistest.StartOwn(t) // it is stopped
	s := redisstore.New(srv.Client(t), srv.Prefix, 200*time.Millisecond)
	ctx := context.Background()
	_ = s.CreateFamily(ctx, &security.Family{ID: "f", Subject: "alice", RefreshJTI: "r", AccessJTI: "a", Expires: time.Now().Add(time.Hour)}, 0)
	srv.Stop()
	start := time.Now()
	err := s.Check(ctx, security.Check{Kind: security.AccessCredential, Subject: "alice", ID: "f", JTI: "a"})
	if !errors.Is(err, security.ErrUnavailable) {
		t.Fatalf("Check with Redis down = %v, want ErrUnavailable", err)
	}
	t.Logf("failed in %s", time.Since(start))
	srv.Restart(t)
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("after restart: Ping = %v", err)
	}
}

// Only a live store is expressed in Lua: a nil *Store (what a wrapper's
// Unwrap may return) has no scripter, so the private path does not panic
// on it and the check is left to the wrapper's own Check.
func TestScripterOfANilStore(t *testing.T) {
	if sc := onetrip.Scripter((*redisstore.Store)(nil)); sc != nil {
		t.Fatalf("a nil *Store has a scripter: %T", sc)
	}
	if sc := onetrip.Scripter(redisstore.New(nil, "p:", time.Second)); sc == nil {
		t.Fatal("a *Store has no scripter: the one round trip is lost")
	}
}

// A record gone before its index entry (an API key's mark past MarkTTL, or
// a key whose database insert failed; any record a maxmemory policy
// evicted) no longer holds the subject's cap, which the index would keep
// for as long as the record could have lived: a year for a key. The memory
// store counts only what it holds.
func TestGoneRecordsFreeTheCap(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	s := redisstore.New(rdb, srv.Prefix, time.Second)
	ctx := context.Background()
	exp := time.Now().Add(365 * 24 * time.Hour)
	key := func(id string) error {
		_, err := s.MarkKey(ctx, &security.APIKey{ID: id, Subject: "alice", Expires: exp}, false, 2)
		return err
	}
	if err := key("orphan"); err != nil {
		t.Fatal(err)
	}
	if err := key("k1"); err != nil {
		t.Fatal(err)
	}
	if err := key("k2"); !errors.Is(err, security.ErrTooMany) {
		t.Fatalf("a third key under a cap of two: %v, want ErrTooMany", err)
	}
	rdb.Del(ctx, srv.Prefix+"{u:alice}:key:orphan") // its mark lapsed
	if err := key("k2"); err != nil {
		t.Errorf("a key beside one live mark and one lapsed: %v, want it marked", err)
	}
	if err := key("k3"); !errors.Is(err, security.ErrTooMany) {
		t.Errorf("a key beside two live marks: %v, want ErrTooMany", err)
	}
	for _, c := range []struct {
		kind   string
		create func(id string) error
	}{
		{"fam", func(id string) error {
			return s.CreateFamily(ctx, &security.Family{ID: id, Subject: "bob", RefreshJTI: "r", AccessJTI: "a", Expires: exp}, 1)
		}},
		{"ses", func(id string) error {
			return s.CreateSession(ctx, &security.Session{ID: id, Subject: "bob", SecretHash: []byte("h"), Expires: exp}, 1)
		}},
	} {
		if err := c.create("x1"); err != nil {
			t.Fatal(c.kind, err)
		}
		if err := c.create("x2"); !errors.Is(err, security.ErrTooMany) {
			t.Fatalf("%s: a second under a cap of one: %v, want ErrTooMany", c.kind, err)
		}
		rdb.Del(ctx, srv.Prefix+"{u:bob}:"+c.kind+":x1") // evicted
		if err := c.create("x2"); err != nil {
			t.Errorf("%s: one beside an evicted record: %v, want it created", c.kind, err)
		}
	}
}

// A refresh whose answer is lost on the way back (the connection drops
// after Redis ran the rotation) is retried by the Redis client: the retry
// must not find its own rotation a reuse and revoke the login.
func TestRotationRetriedAfterItsAnswerWasLost(t *testing.T) {
	s, proxy := behindLosingProxy(t)
	ctx := context.Background()
	f := &security.Family{ID: "fam", Subject: "alice", RefreshJTI: "r1", AccessJTI: "a1", Expires: time.Now().Add(time.Hour)}
	if err := s.CreateFamily(ctx, f, 0); err != nil {
		t.Fatal(err)
	}
	proxy.loseNextEval.Store(true)
	if err := s.RotateFamily(ctx, "alice", "fam", "r1", "r2", "a2"); err != nil {
		t.Errorf("a rotation whose first answer was lost: %v, want nil", err)
	}
	if proxy.loseNextEval.Load() {
		t.Fatal("no answer was lost: the test tested nothing")
	}
	if err := s.RotateFamily(ctx, "alice", "fam", "r2", "r3", "a3"); err != nil {
		t.Errorf("the next refresh, with the token the rotation gave: %v, want nil", err)
	}
}

// The same over a lost answer: a login, a session or a key's first mark at
// its account's cap, run again by go-redis after Redis ran it, succeeds.
// It used to be refused as one too many, with the record stored.
func TestCreateRetriedAfterItsAnswerWasLost(t *testing.T) {
	s, proxy := behindLosingProxy(t)
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	for _, c := range []struct {
		what   string
		create func() error
	}{
		{"a login", func() error {
			return s.CreateFamily(ctx, &security.Family{ID: "fam", Subject: "alice", RefreshJTI: "r1", AccessJTI: "a1", Expires: exp}, 1)
		}},
		{"a session", func() error {
			return s.CreateSession(ctx, &security.Session{ID: "ses", Subject: "alice", SecretHash: []byte("h"), Expires: exp}, 1)
		}},
		{"a key's first mark", func() error {
			_, err := s.MarkKey(ctx, &security.APIKey{ID: "key", Subject: "alice", Expires: exp}, false, 1)
			return err
		}},
	} {
		proxy.loseNextEval.Store(true)
		if err := c.create(); err != nil {
			t.Errorf("%s at the cap, its first answer lost: %v, want nil", c.what, err)
		}
		if proxy.loseNextEval.Load() {
			t.Fatalf("%s: no answer was lost: the test tested nothing", c.what)
		}
	}
}

// behindLosingProxy is a store on a test Redis (redistest.Start) reached
// through a losingProxy, with one retry, as package service and redistest
// configure go-redis.
func behindLosingProxy(t *testing.T) (*redisstore.Store, *losingProxy) {
	t.Helper()
	srv := redistest.Start(t)
	proxy := newLosingProxy(t, srv.Addr)
	rdb := redis.NewClient(&redis.Options{Addr: proxy.addr, ContextTimeoutEnabled: true, MaxRetries: 1})
	t.Cleanup(func() { rdb.Close() })
	s := redisstore.New(rdb, srv.Prefix, time.Second)
	if err := s.Preload(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, proxy
}

// losingProxy relays Redis connections, and drops the client's connection
// instead of passing on the answer to the first EVALSHA it sees once
// loseNextEval is set: the command ran, its answer never came.
type losingProxy struct {
	addr         string
	loseNextEval atomic.Bool
}

func newLosingProxy(t *testing.T, upstream string) *losingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := &losingProxy{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			var lose atomic.Bool
			go func() {
				defer u.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 && bytes.Contains(bytes.ToLower(buf[:n]), []byte("evalsha")) && p.loseNextEval.CompareAndSwap(true, false) {
						lose.Store(true)
					}
					if n > 0 {
						u.Write(buf[:n])
					}
					if err != nil {
						return
					}
				}
			}()
			go func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := u.Read(buf)
					if n > 0 && lose.Load() {
						u.Close()
						return
					}
					if n > 0 {
						c.Write(buf[:n])
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return p
}

// A prefix with braces would put a hash tag before the subject's: "{}"
// makes Redis hash each key whole, so a subject's keys cross slots and
// every script of a Cluster fails (CROSSSLOT); "{x}" puts every subject
// in one slot. New refuses it, naming it (helper-176).
func TestPrefixWithABraceRefused(t *testing.T) {
	for _, prefix := range []string{"app{}:", "app{x}:", "{", "a}"} {
		func() {
			defer func() {
				r := recover()
				if msg, _ := r.(string); !strings.Contains(msg, fmt.Sprintf("%q", prefix)) {
					t.Errorf("New with prefix %q: recovered %v, want a panic naming it", prefix, r)
				}
			}()
			redisstore.New(nil, prefix, 0)
		}()
	}
	redisstore.New(nil, "app:", 0) // no brace: taken
}
