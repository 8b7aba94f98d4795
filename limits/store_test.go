package limits_test

import (
	"cmp"
	"context"
	"errors"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/specguard/specguard/internal/redistest"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/limits/redislimit"
	"github.com/specguard/specguard/policy"
)

// clock is a settable clock for the memory store.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// stores runs one suite against every Store implementation. advance moves
// the store's time forward: the memory store's clock, or real time for
// Redis, whose time is Redis TIME.
func stores(t *testing.T, suite func(t *testing.T, s limits.Store, advance func(time.Duration))) {
	t.Run("memory", func(t *testing.T) {
		c := &clock{t: time.Unix(1_800_000_000, 0)}
		suite(t, limits.NewMemoryStore(c.now), c.add)
	})
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		suite(t, redislimit.New(srv.Client(t), srv.Prefix), time.Sleep)
	})
}

func req(key string, limit int64, window time.Duration) limits.Request {
	return limits.Request{Bucket: key, Interval: window.Microseconds() / limit, Burst: limit, Cost: 1, TTL: window}
}

func allow(t *testing.T, s limits.Store, reqs ...limits.Request) (bool, []limits.Result) {
	t.Helper()
	res := make([]limits.Result, len(reqs))
	ok, err := s.Allow(context.Background(), reqs, res)
	if err != nil {
		t.Fatal(err)
	}
	return ok, res
}

func TestExactAdmissionUnderConcurrency(t *testing.T) {
	stores(t, func(t *testing.T, s limits.Store, _ func(time.Duration)) {
		const limit = 25
		r := req("exact", limit, time.Hour)
		var admitted atomic.Int64
		var wg sync.WaitGroup
		for range 200 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res := make([]limits.Result, 1)
				ok, err := s.Allow(context.Background(), []limits.Request{r}, res)
				if err != nil {
					t.Error(err)
				}
				if ok {
					admitted.Add(1)
				}
			}()
		}
		wg.Wait()
		if got := admitted.Load(); got != limit {
			t.Fatalf("admitted %d of 200, want exactly %d", got, limit)
		}
	})
}

func TestWindowEdge(t *testing.T) {
	stores(t, func(t *testing.T, s limits.Store, advance func(time.Duration)) {
		r := req("edge", 4, 2*time.Second) // one request per 500ms, burst 4
		for i := range 4 {
			ok, res := allow(t, s, r)
			if !ok || res[0].Remaining != int64(3-i) {
				t.Fatalf("request %d: allowed=%v remaining=%d, want true and %d", i+1, ok, res[0].Remaining, 3-i)
			}
		}
		ok, res := allow(t, s, r)
		if ok {
			t.Fatal("fifth request admitted")
		}
		if res[0].RetryAfter <= 0 || res[0].RetryAfter > 500*time.Millisecond {
			t.Fatalf("RetryAfter = %s, want (0, 500ms]", res[0].RetryAfter)
		}
		// One emission interval later, exactly one more passes.
		advance(res[0].RetryAfter + 20*time.Millisecond)
		if ok, _ := allow(t, s, r); !ok {
			t.Fatal("after RetryAfter: denied, want one admitted")
		}
		if ok, _ := allow(t, s, r); ok {
			t.Fatal("after RetryAfter: a second request admitted, want exactly one")
		}
	})
}

// clusterStore is a store on a three-master Redis Cluster.
func clusterStore(t *testing.T) limits.Store {
	cl := redistest.StartCluster(t)
	rdb := cl.Client(t)
	return redislimit.New(rdb, cl.Nodes[0].Prefix+"rl:")
}

// On a Redis Cluster the tiers of one request live in different slots and
// are decided one script call each: a request one tier refused was still
// charged to the others (a guess refused per address spent the account's
// failed-password budget), so the Cluster answered otherwise than one
// Redis. What the others charged is given back now.
func TestAllOrNothingAcrossTiers(t *testing.T) {
	suite := func(t *testing.T, s limits.Store, _ func(time.Duration)) {
		wide := req("wide", 10, time.Hour)
		narrow := req("narrow", 1, time.Hour)
		if ok, _ := allow(t, s, wide, narrow); !ok {
			t.Fatal("first request denied")
		}
		ok, res := allow(t, s, wide, narrow)
		if ok || !res[0].Allowed || res[1].Allowed {
			t.Fatalf("second request: ok=%v results=%+v, want denied by narrow only", ok, res)
		}
		// The denied request did not charge the wide tier: 9 remain.
		_, res = allow(t, s, wide)
		if res[0].Remaining != 8 {
			t.Fatalf("wide remaining = %d, want 8 (charged by the first request and this one only)", res[0].Remaining)
		}
	}
	stores(t, suite)
	t.Run("redis cluster", func(t *testing.T) { suite(t, clusterStore(t), time.Sleep) })
}

// On a Redis Cluster, a tier that refused refuses the request even when
// another tier's node stops answering: on-store-error (allow, here) decides
// only what no store answered. It used to decide the whole request, so a
// caller over one tier's limit was let through while another tier's node
// was down. Nothing else: with no tier refusing, the node's failure is the
// store's error, and the answering tiers' state is reported as it stays.
func TestClusterRefusalHoldsWhileAnotherNodeFails(t *testing.T) {
	cl := redistest.StartCluster(t)
	rdb := cl.Client(t)
	prefix := cl.Nodes[0].Prefix + "rl:"
	cl.Partial(t, rdb) // else the Cluster ends what this test checks midway
	nodeOf := func(bucket string) string { return redistest.NodeOf(t, rdb, prefix+"{"+bucket+"|ip:192.0.2.1}") }
	// Buckets narrow, wide, fresh, strict and spare on one node, down on
	// another.
	narrow, down := "op/narrow", ""
	var live []string // wide, fresh, strict, spare, held
	for i := 0; len(live) < 5 || down == ""; i++ {
		b := "op/b" + strconv.Itoa(i)
		if nodeOf(b) == nodeOf(narrow) {
			live = append(live, b)
		} else {
			down = cmp.Or(down, b)
		}
	}
	wide, fresh, strict, spare, held := live[0], live[1], live[2], live[3], live[4]
	tier := func(name, bucket string, limit int64) policy.Tier {
		return policy.Tier{Name: name, Bucket: bucket, Limit: limit, Window: time.Hour, Key: policy.KeyIP, AllowOnStoreError: true}
	}
	denying := func(t policy.Tier) policy.Tier { t.AllowOnStoreError = false; return t }
	refusing := op(tier("narrow", narrow, 1), tier("down", down, 100))
	admitting := op(tier("wide", wide, 100), tier("down", down, 100))
	l := limits.New(redislimit.New(rdb, prefix), limits.WithTimeout(time.Second))
	r := httptest.NewRequest("GET", "/x", nil)
	if v := l.Decide(r, refusing, limits.Caller{}); !v.Allowed {
		t.Fatalf("first request: %+v, want admitted", v)
	}
	cl.StopNode(nodeOf(down))
	for i := range 2 {
		v := l.Decide(r, refusing, limits.Caller{})
		if v.Allowed || v.Denied != 1 || v.StoreErr != nil || v.RetryAfter < 1 {
			t.Errorf("request %d over narrow's limit, down's node stopped: allowed %v, denied %b, store error %v, retry after %d; want refused by narrow alone", i+2, v.Allowed, v.Denied, v.StoreErr, v.RetryAfter)
		}
		if len(v.Limit) != 1 || !strings.Contains(v.Limit[0], `"down";r=0;t=3600`) {
			t.Errorf("RateLimit %q: want down's bucket, whose state is unknown, reported with none left, full within its window", v.Limit)
		}
	}
	for range 2 {
		v := l.Decide(r, admitting, limits.Caller{})
		if !v.Allowed || v.StoreErr == nil {
			t.Errorf("no tier refusing, down's node stopped: allowed %v, store error %v; want on-store-error's allow, with the store's error", v.Allowed, v.StoreErr)
		}
	}
	// The requests on-store-error let through were counted where they
	// could be: wide's node answered both.
	if v := l.Decide(r, op(tier("wide", wide, 100)), limits.Caller{}); len(v.Limit) != 1 || !strings.HasPrefix(v.Limit[0], `"wide";r=97;`) {
		t.Errorf("wide alone after two requests admitted while down's node was stopped: RateLimit %q (store error %v), want r=97 (all three charged)", v.Limit, v.StoreErr)
	}
	// So a tier whose node answers keeps limiting through the outage: a
	// new caller of fresh (limit 1) gets one request, not one each time.
	fresh1 := op(tier("fresh", fresh, 1), tier("down", down, 100))
	for i, want := range []bool{true, false, false} {
		if v := l.Decide(r, fresh1, limits.Caller{}); v.Allowed != want {
			t.Errorf("request %d of fresh (limit 1, its node up) with down's node stopped: allowed %v (store error %v), want %v", i+1, v.Allowed, v.StoreErr, want)
		}
	}
	// Only the on-store-error of the tier no node decided decides: strict
	// (deny) answered and admits, down (allow) is unknown.
	if v := l.Decide(r, op(denying(tier("strict", strict, 100)), tier("down", down, 100)), limits.Caller{}); !v.Allowed || v.StoreErr == nil || v.Charged != 1 {
		t.Errorf("strict (on-store-error: deny) admitting on its node, down's node stopped: allowed %v, store error %v, charged %b; want down's allow, with the store's error, strict alone charged", v.Allowed, v.StoreErr, v.Charged)
	}
	// The other way round the request is refused, and spare, which
	// answered, is not charged for it.
	if v := l.Decide(r, op(tier("spare", spare, 100), denying(tier("down", down, 100))), limits.Caller{}); v.Allowed || v.StoreErr == nil || v.Charged != 0 {
		t.Errorf("down (on-store-error: deny) unknown: allowed %v, store error %v; want refused, with the store's error", v.Allowed, v.StoreErr)
	}
	if v := l.Decide(r, op(tier("spare", spare, 100)), limits.Caller{}); len(v.Limit) != 1 || !strings.HasPrefix(v.Limit[0], `"spare";r=99;`) {
		t.Errorf("spare alone after a request refused for down: RateLimit %q (store error %v), want r=99 (only this request charged)", v.Limit, v.StoreErr)
	}
	// A request that on-store-error would let through, but whose
	// credential is refused, is not charged either.
	if _, err := decide(l, op(tier("held", held, 100), tier("down", down, 100)), refused{rdb}); !errors.Is(err, errFlagDown) {
		t.Errorf("a refused credential beside the tiers, down's node stopped: precheck error %v, want %v", err, errFlagDown)
	}
	if v := l.Decide(r, op(tier("held", held, 100)), limits.Caller{}); len(v.Limit) != 1 || !strings.HasPrefix(v.Limit[0], `"held";r=99;`) {
		t.Errorf("held alone after a request refused for its credential: RateLimit %q (store error %v), want r=99 (only this request charged)", v.Limit, v.StoreErr)
	}
}

// refused is a credential check, run beside the tiers, that fails at once.
type refused struct{ rdb redis.UniversalClient }

func (p refused) Check(context.Context, time.Time) error { return errFlagDown }
func (p refused) Script() (any, []string, []any)         { return p.rdb, nil, nil }
func (p refused) Failed(int64) error                     { return errFlagDown }

func TestCost(t *testing.T) {
	stores(t, func(t *testing.T, s limits.Store, _ func(time.Duration)) {
		r := req("cost", 10, time.Hour)
		r.Cost = 4
		for i, want := range []bool{true, true, false} {
			if ok, _ := allow(t, s, r); ok != want {
				t.Fatalf("call %d with cost 4 of 10: allowed=%v, want %v", i+1, ok, want)
			}
		}
	})
}

func TestMemoryReclaimsIdleKeys(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	s := limits.NewMemoryStore(c.now)
	for i := range 20000 {
		allow(t, s, req(strconv.Itoa(i), 5, time.Second))
	}
	if n := s.Len(); n < 19000 {
		t.Fatalf("Len = %d before idling, want about 20000", n)
	}
	c.add(time.Minute) // every bucket is full again
	for range 64 * 4096 {
		allow(t, s, req("fresh", 1_000_000, time.Second))
	}
	if n := s.Len(); n > 100 {
		t.Fatalf("Len = %d after idle keys should be reclaimed, want only a few", n)
	}
}

// Every identity has its own bucket in both stores, however its parts could
// be confused when joined: an address against a subject or claim spelling
// it, one value under different kinds, a bucket against a bucket plus identity.
func TestIdentitiesHaveTheirOwnBuckets(t *testing.T) {
	ip := netip.MustParseAddr("192.0.2.7")
	ids := []limits.Identity{
		{},
		{Kind: policy.KeyGlobal},
		{Kind: policy.KeyIP, IP: ip},
		{Kind: policy.KeyIP},
		{Kind: policy.KeyIP, IP: netip.MustParseAddr("2001:db8::7")},
		{Kind: policy.KeyPrincipal, Value: "192.0.2.7"},
		{Kind: policy.KeyPrincipal, Value: "alice"},
		{Kind: policy.KeyAPIKey, Value: "alice"},
		{Kind: policy.KeySession, Value: "alice"},
		{Kind: policy.KeyClaim, Name: "a", Value: "b:c"},
		{Kind: policy.KeyClaim, Name: "a.b", Value: "c"}, // claim names cannot hold ':' (the compiler refuses it)
		{Kind: policy.KeyClaim, Name: "a", Value: "192.0.2.7"},
	}
	stores(t, func(t *testing.T, s limits.Store, _ func(time.Duration)) {
		for i, id := range ids {
			r := req("op/tier", 1, time.Hour)
			r.Who = id
			if ok, _ := allow(t, s, r); !ok {
				t.Fatalf("identity %d (%+v, key %q) found its bucket already spent", i, id, r.Key())
			}
		}
		for i, id := range ids {
			r := req("op/tier", 1, time.Hour)
			r.Who = id
			if ok, _ := allow(t, s, r); ok {
				t.Fatalf("identity %d (%+v) admitted twice with a limit of 1", i, id)
			}
		}
	})
}

func TestRequestKey(t *testing.T) {
	for _, tc := range []struct {
		id   limits.Identity
		want string
	}{
		{limits.Identity{}, "b"},
		{limits.Identity{Kind: policy.KeyGlobal}, "b|global"},
		{limits.Identity{Kind: policy.KeyIP, IP: netip.MustParseAddr("192.0.2.7")}, "b|ip:192.0.2.7"},
		{limits.Identity{Kind: policy.KeyIP}, "b|ip:unknown"},
		{limits.Identity{Kind: policy.KeyPrincipal, Value: "alice"}, "b|sub:alice"},
		{limits.Identity{Kind: policy.KeyAPIKey, Value: "k1"}, "b|key:k1"},
		{limits.Identity{Kind: policy.KeySession, Value: "s1"}, "b|ses:s1"},
		{limits.Identity{Kind: policy.KeyClaim, Name: "tenant", Value: "acme"}, "b|claim:tenant:acme"},
	} {
		r := limits.Request{Bucket: "b", Who: tc.id}
		if got := r.Key(); got != tc.want {
			t.Errorf("Key() = %q, want %q", got, tc.want)
		}
	}
}

// pipelines counts the script calls a go-redis client sends, and the round
// trips (single commands or pipelines) that carry them. Connection set-up
// commands (HELLO, CLIENT SETINFO) are not counted.
type pipelines struct{ trips, cmds atomic.Int64 }

func isScript(cmd redis.Cmder) bool { return cmd.Name() == "evalsha" || cmd.Name() == "eval" }

func (c *pipelines) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *pipelines) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if isScript(cmd) {
			c.trips.Add(1)
			c.cmds.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (c *pipelines) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		n := 0
		for _, cmd := range cmds {
			if isScript(cmd) {
				n++
			}
		}
		if n > 0 {
			c.trips.Add(1)
			c.cmds.Add(int64(n))
		}
		return next(ctx, cmds)
	}
}

// Concurrent decisions share pipelines: fewer round trips than requests,
// one script call each, and every answer goes to its own caller.
func TestRedisBatchesConcurrentCalls(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	s := redislimit.New(rdb, srv.Prefix)
	allow(t, s, req("warm-up", 1, time.Hour)) // loads the script
	hook := &pipelines{}
	rdb.AddHook(hook)
	const n = 200
	var wg sync.WaitGroup
	remaining := make([]int64, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Bucket i has a limit of i+1: its remaining count says whose
			// answer came back.
			_, res := allow(t, s, req("batch-"+strconv.Itoa(i), int64(i+1), time.Hour))
			remaining[i] = res[0].Remaining
		}()
	}
	wg.Wait()
	for i, r := range remaining {
		if r != int64(i) {
			t.Fatalf("caller %d got remaining %d, want %d: answers crossed", i, r, i)
		}
	}
	trips := hook.trips.Load()
	if hook.cmds.Load() != n || trips >= n {
		t.Fatalf("%d calls made %d commands in %d round trips; want %d commands in fewer round trips", n, hook.cmds.Load(), trips, n)
	}
	t.Logf("%d calls in %d round trips", n, trips)
}

// A caller that gave up before its call was sent is not charged.
func TestRedisAbandonedCallIsNotSent(t *testing.T) {
	srv := redistest.Start(t)
	s := redislimit.New(srv.Client(t), srv.Prefix)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := req("abandoned", 1, time.Hour)
	if _, err := s.Allow(ctx, []limits.Request{r}, make([]limits.Result, 1)); err == nil {
		t.Fatal("a cancelled call succeeded")
	}
	time.Sleep(50 * time.Millisecond)
	if ok, _ := allow(t, s, r); !ok {
		t.Fatal("the abandoned call was charged: the bucket of 1 is spent")
	}
}

func TestRedisKeyTTL(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	s := redislimit.New(rdb, srv.Prefix)
	allow(t, s, req("ttl", 5, time.Minute))
	keys, _ := rdb.Keys(context.Background(), srv.Prefix+"*").Result()
	if len(keys) != 1 || keys[0] != srv.Prefix+"{ttl}" {
		t.Fatalf("keys = %v, want one hash-tagged key", keys)
	}
	ttl, _ := rdb.PTTL(context.Background(), keys[0]).Result()
	if ttl <= 0 || ttl > time.Minute {
		t.Fatalf("TTL = %s, want (0, 1m]", ttl)
	}
}

// Two stores on one Redis are one limiter: whatever instance a request
// reaches, the total admitted is the limit.
func TestRedisInstancesShareOneTruth(t *testing.T) {
	srv := redistest.Start(t)
	a := redislimit.New(srv.Client(t), srv.Prefix)
	b := redislimit.New(srv.Client(t), srv.Prefix)
	r := req("shared", 10, time.Hour)
	admitted := 0
	for i := range 40 {
		s := a
		if i%2 == 1 {
			s = b
		}
		if ok, _ := allow(t, s, r); ok {
			admitted++
		}
	}
	if admitted != 10 {
		t.Fatalf("admitted %d across two instances, want 10", admitted)
	}
}
