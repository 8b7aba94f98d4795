package limits_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/specguard/specguard/internal/redistest"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/limits/redislimit"
	"github.com/specguard/specguard/policy"
)

// On a Redis Cluster, a request with a revoked credential that one tier
// refuses changes nothing: the tiers that admitted it are refunded once
// (by Allow, as a refused request), not again for the failed check,
// which would give back a charge never made.
func TestClusterFailedPrecheckRefundsOnce(t *testing.T) {
	l, rdb, prefix := clusterLimiter(t)

	big := policy.Tier{Name: "big", Limit: 3, Window: time.Hour, Key: policy.KeyIP, Bucket: "shared:big"}
	small := policy.Tier{Name: "small", Limit: 1, Window: time.Hour, Key: policy.KeyIP, Bucket: "shared:small"}
	both := op(big, small)                       // the operation with two tiers
	onlyBig := op(big)                           // another operation sharing the big bucket
	pre := &flag{rdb: rdb, key: prefix + "flag"} // down: the credential was revoked

	// One honest request on both tiers: big 1/3 used, small 1/1 (spent).
	if v := l.Decide(httptest.NewRequest("GET", "/x", nil), both, limits.Caller{}); !v.Allowed {
		t.Fatalf("first request refused: %+v", v)
	}
	// A second honest request on big alone: big 2/3 used.
	if v := l.Decide(httptest.NewRequest("GET", "/x", nil), onlyBig, limits.Caller{}); !v.Allowed {
		t.Fatalf("second request refused: %+v", v)
	}
	// A request with a revoked credential: big admits, small refuses, the
	// precheck fails. Nothing should change: big stays at 2/3 used.
	if _, err := decide(l, both, pre); err == nil {
		t.Fatal("precheck held")
	}
	// Exactly one more request should pass on big.
	passed := 0
	for range 3 {
		if v := l.Decide(httptest.NewRequest("GET", "/x", nil), onlyBig, limits.Caller{}); v.Allowed {
			passed++
		}
	}
	if passed != 1 {
		t.Errorf("big (limit 3, 2 used) admitted %d more requests, want 1: the failed precheck refunded a charge it never made", passed)
	}
}

// stalled is a credential check on a node that does not answer: it fails
// at the request's deadline.
type stalled struct{ rdb redis.UniversalClient }

func (p stalled) Check(ctx context.Context, _ time.Time) error {
	<-ctx.Done()
	return fmt.Errorf("credential store: %w", ctx.Err())
}
func (p stalled) Script() (any, []string, []any) { return p.rdb, nil, nil }
func (p stalled) Failed(int64) error             { return errFlagDown }

// On a Cluster the credential check runs alongside the tiers. One that
// fails at the request's deadline (its node stalls, fails over) has spent
// that deadline: the tiers' refund must not ride on it, or every refused
// request drains its caller's and everyone's buckets.
func TestClusterStalledCheckIsRefunded(t *testing.T) {
	cl := redistest.StartCluster(t)
	rdb := cl.Client(t)
	l := limits.New(redislimit.New(rdb, cl.Nodes[0].Prefix+"rl:"), limits.WithTimeout(200*time.Millisecond))
	o := op(policy.Tier{Name: "all", Limit: 3, Window: time.Hour, Key: policy.KeyGlobal})
	for i := range 3 {
		if _, err := decide(l, o, stalled{rdb}); err == nil {
			t.Fatalf("request %d: the stalled check held", i+1)
		}
	}
	admitted := 0
	for range 3 {
		if v := l.Decide(httptest.NewRequest("GET", "/x", nil), o, limits.Caller{}); v.Allowed {
			admitted++
		}
	}
	if admitted != 3 {
		t.Errorf("a global tier of 3 admitted %d requests after 3 refused for a stalled credential check, want 3 (the refused ones refunded)", admitted)
	}
}

// A Redis Cluster node opened as one server (a one-shard Cluster behind a
// redis:// URL) refuses scripts of keys in several slots: every request
// with two tiers, or a credential and a tier, would fail. Preload refuses
// it; a Cluster client on the same nodes is fine.
func TestClusterNodeAsOneRedisIsRefused(t *testing.T) {
	cl := redistest.StartCluster(t)
	one := redis.NewClient(&redis.Options{Addr: cl.Nodes[0].Addr})
	t.Cleanup(func() { one.Close() })
	err := redislimit.New(one, cl.Nodes[0].Prefix).Preload(context.Background())
	if err == nil || !strings.Contains(err.Error(), "cluster_enabled:1") {
		t.Errorf("a Cluster node as one Redis: Preload = %v, want refused", err)
	}
	if err := redislimit.New(cl.Client(t), cl.Nodes[0].Prefix).Preload(context.Background()); err != nil {
		t.Errorf("the Cluster as a Cluster: %v", err)
	}
	// A user not allowed INFO (an ACL, a managed service) is taken for
	// what it was opened as: one Redis.
	srv := redistest.StartOwn(t) // its users are changed: never a shared server
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { admin.Close() })
	if err := admin.Do(context.Background(), "ACL", "SETUSER", "noinfo", "on", "nopass", "~*", "+@all", "-info").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Do(context.Background(), "ACL", "DELUSER", "noinfo") })
	noinfo := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: "noinfo", Password: "any"}) // nopass: any password
	t.Cleanup(func() { noinfo.Close() })
	if err := noinfo.Info(context.Background(), "cluster").Err(); err == nil {
		t.Fatal("INFO allowed to a user denied it")
	}
	if err := redislimit.New(noinfo, srv.Prefix).Preload(context.Background()); err != nil {
		t.Errorf("one Redis whose user may not run INFO: Preload = %v, want nil", err)
	}
}

// A client that goes away (a reset stream, a half-closed connection)
// cancels its request's context, but not the store call: it is decided
// and charged, not taken for a store failure that a tier with
// on-store-error: allow would let through uncharged.
func TestCancelledRequestIsStillCharged(t *testing.T) {
	srv := redistest.Start(t)
	l := limits.New(redislimit.New(srv.Client(t), srv.Prefix+"rl:"), limits.WithTimeout(time.Second))
	o := op(policy.Tier{Name: "one", Limit: 1, Window: time.Hour, Key: policy.KeyIP, AllowOnStoreError: true})
	ok := 0
	for range 20 {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // the client went away
		r := httptest.NewRequest("GET", "/x", nil).WithContext(ctx)
		if v := l.Decide(r, o, limits.Caller{}); v.Allowed {
			ok++
		}
	}
	if ok != 1 || l.StoreErrors() != 0 {
		t.Errorf("limit 1: %d of 20 cancelled requests admitted, %d store errors counted; want 1 and 0", ok, l.StoreErrors())
	}
}

// seenStore admits every request and keeps the context of its last call,
// and its error then.
type seenStore struct {
	ctx context.Context
	err error
}

func (s *seenStore) Allow(ctx context.Context, _ []limits.Request, results []limits.Result) (bool, error) {
	s.ctx, s.err = ctx, ctx.Err()
	for i := range results {
		results[i] = limits.Result{Allowed: true}
	}
	return true, nil
}

// The store call outlives its client, but not the request's deadline (the
// server's), nor the limiter's timeout: the nearer of the two bounds it.
func TestStoreCallBounds(t *testing.T) {
	o := op(policy.Tier{Name: "t", Limit: 10, Window: time.Minute, Key: policy.KeyIP})
	var s *seenStore
	call := func(timeout time.Duration, ctx context.Context) context.Context {
		s = &seenStore{}
		limits.New(s, limits.WithTimeout(timeout)).Decide(httptest.NewRequest("GET", "/x", nil).WithContext(ctx), o, limits.Caller{})
		return s.ctx
	}
	soon, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	want, _ := soon.Deadline()
	for _, timeout := range []time.Duration{0, time.Hour} {
		if got, ok := call(timeout, soon).Deadline(); !ok || !got.Equal(want) {
			t.Errorf("timeout %v, the request's deadline a minute away: the store's is %v (%v), want the request's", timeout, got, ok)
		}
	}
	if got, ok := call(time.Second, soon).Deadline(); !ok || !got.Before(want) {
		t.Errorf("timeout 1s, the request's deadline a minute away: the store's is %v (%v), want the timeout's", got, ok)
	}
	gone, cancelGone := context.WithCancel(context.Background())
	cancelGone()
	if call(time.Second, gone); s.err != nil {
		t.Errorf("a client gone: the store's context is done: %v", s.err)
	}
	if _, ok := call(0, context.Background()).Deadline(); ok {
		t.Error("no timeout, no deadline: the store's call has one")
	}
}

// A Ring of Redis shards routes each key on its own, as a Cluster does:
// its tiers are decided one call each, so a global bucket is counted on one
// shard, not on whichever shard another tier's key picked.
func TestRingCountsABucketOnce(t *testing.T) {
	a, b := redistest.Start(t), redistest.Start(t)
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": a.Addr, "b": b.Addr}})
	t.Cleanup(func() { ring.Close() })
	l := limits.New(redislimit.New(ring, a.Prefix+"rl:"), limits.WithTimeout(time.Second))
	o := op(policy.Tier{Name: "per-ip", Limit: 100, Window: time.Hour, Key: policy.KeyIP},
		policy.Tier{Name: "all", Limit: 2, Window: time.Hour, Key: policy.KeyGlobal})
	admitted := 0
	for i := range 40 {
		r := httptest.NewRequest("GET", "/x", nil)
		r.RemoteAddr = fmt.Sprintf("198.51.100.%d:1234", i+1)
		v := l.Decide(r, o, limits.Caller{})
		if v.StoreErr != nil {
			t.Fatal(v.StoreErr)
		}
		if v.Allowed {
			admitted++
		}
	}
	if admitted != 2 {
		t.Errorf("a global tier of 2 admitted %d requests on a Ring of two shards", admitted)
	}
}
