package limits_test

import (
	"context"
	"net/http/httptest"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/specguard/specguard/internal/redistest"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/limits/redislimit"
	"github.com/specguard/specguard/policy"
)

// BenchmarkMemoryAllow is one decision of one tier in the memory store.
func BenchmarkMemoryAllow(b *testing.B) {
	s := limits.NewMemoryStore(nil)
	reqs := []limits.Request{req("bench", 1_000_000, time.Second)}
	res := make([]limits.Result, 1)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Allow(ctx, reqs, res); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemoryAllowThreeTiers decides three tiers at once, as the guard
// does for an operation with anon, user and global tiers.
func BenchmarkMemoryAllowThreeTiers(b *testing.B) {
	s := limits.NewMemoryStore(nil)
	reqs := []limits.Request{req("a", 1_000_000, time.Second), req("b", 1_000_000, time.Second), req("c", 1_000_000, time.Second)}
	res := make([]limits.Result, 3)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Allow(ctx, reqs, res); err != nil {
			b.Fatal(err)
		}
	}
}

func heapMiB() float64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc) / (1 << 20)
}

// BenchmarkMemoryMillionKeys reports the heap that 1,000,000 distinct live
// buckets hold (metric MiB), and that they are reclaimed once idle (metric
// left: buckets remaining after a full sweep pass).
func BenchmarkMemoryMillionKeys(b *testing.B) {
	for b.Loop() {
		c := &clock{t: time.Unix(1_800_000_000, 0)}
		before := heapMiB()
		s := limits.NewMemoryStore(c.now)
		res := make([]limits.Result, 1)
		ctx := context.Background()
		keys := make([]string, 1_000_000)
		for i := range keys {
			keys[i] = "getMe/anon|ip:10." + strconv.Itoa(i>>16) + "." + strconv.Itoa(i>>8&255) + "." + strconv.Itoa(i&255)
		}
		for _, k := range keys {
			_, _ = s.Allow(ctx, []limits.Request{req(k, 60, time.Minute)}, res)
		}
		keys = nil
		used := heapMiB() - before
		if n := s.Len(); n != 1_000_000 {
			b.Fatalf("Len = %d, want 1000000", n)
		}
		c.add(2 * time.Minute)
		for range 64 * 4096 {
			_, _ = s.Allow(ctx, []limits.Request{req("tick", 1_000_000, time.Second)}, res)
		}
		b.ReportMetric(used, "MiB")
		b.ReportMetric(used*(1<<20)/1_000_000, "B/key")
		b.ReportMetric(float64(s.Len()), "left")
		runtime.KeepAlive(s)
	}
}

// BenchmarkMemoryAllowKeys is one decision on a store holding 1,000 or
// 1,000,000 live buckets, cycling through all of them: the cost per
// decision must not grow with the number of clients.
func BenchmarkMemoryAllowKeys(b *testing.B) {
	for _, n := range []int{1_000, 1_000_000} {
		b.Run("keys="+strconv.Itoa(n), func(b *testing.B) {
			s := limits.NewMemoryStore(nil)
			ctx := context.Background()
			reqs := make([][]limits.Request, n)
			res := make([]limits.Result, 1)
			for i := range reqs {
				reqs[i] = []limits.Request{req("getMe/anon|ip:10."+strconv.Itoa(i>>16)+"."+strconv.Itoa(i>>8&255)+"."+strconv.Itoa(i&255), 1_000_000, time.Second)}
				_, _ = s.Allow(ctx, reqs[i], res)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := s.Allow(ctx, reqs[i], res); err != nil {
					b.Fatal(err)
				}
				if i++; i == n {
					i = 0
				}
			}
		})
	}
}

// BenchmarkRedisPrecheckedDecide is the guard's decision on one Redis for
// a live credential: its check, three tiers, and the anonymous fallback
// in one script call.
func BenchmarkRedisPrecheckedDecide(b *testing.B) {
	srv := redistest.Start(b)
	rdb := srv.Client(b)
	l := limits.New(redislimit.New(rdb, srv.Prefix+"rl:"), limits.WithTimeout(time.Second))
	o := op(policy.Tier{Name: "user", Limit: 1e9, Window: time.Hour, Key: policy.KeyPrincipal, Who: policy.WhoAuthenticated},
		policy.Tier{Name: "anon", Limit: 1e9, Window: time.Hour, Key: policy.KeyIP, Who: policy.WhoAnonymous},
		policy.Tier{Name: "all", Limit: 1e9, Window: time.Hour, Key: policy.KeyGlobal})
	pre := &flag{rdb: rdb, key: srv.Prefix + "flag"}
	if err := rdb.HSet(context.Background(), pre.key, "e", time.Now().Add(time.Hour).UnixMicro()).Err(); err != nil {
		b.Fatal(err)
	}
	alice := limits.Caller{Authenticated: true, Subject: "alice"}
	r := httptest.NewRequest("GET", "/x", nil)
	b.ReportAllocs()
	for b.Loop() {
		if v, err, _ := limits.DecideWithFallback(l, r, o, alice, pre); err != nil || !v.Allowed {
			b.Fatal(v, err)
		}
	}
}
