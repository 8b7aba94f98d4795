package redislimit_test

import (
	"context"
	"testing"
	"time"

	"github.com/specguard/specguard/internal/redistest"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/limits/redislimit"
)

// The store's behaviour as a limits.Store is tested with the memory
// store's, by the same suite, in package limits; these are its own.

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
