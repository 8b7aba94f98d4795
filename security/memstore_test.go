package security_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/storetest"
)

func TestMemoryStore(t *testing.T) {
	storetest.Run(t, func(*testing.T) security.Store { return security.NewMemoryStore(nil) })
}

// The store forgets account state after AccountTTL and API-key marks after
// MarkTTL, so that the database is read again: a state it never committed,
// or a write a Redis failover lost, cannot outlive them.
func TestStoreForgetsMirrors(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := security.NewMemoryStore(clock)
	ctx := context.Background()
	held, _ := s.PutAccount(ctx, "alice", security.Account{Version: 1, Role: "user"})
	_, _ = s.MarkKey(ctx, &security.APIKey{ID: "k", Subject: "alice", AccountVersion: 1, Expires: now.Add(365 * 24 * time.Hour)}, false, 0)
	if err := s.Check(ctx, security.Check{Kind: security.KeyCredential, Subject: "alice", ID: "k"}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(security.AccountTTL + security.MarkTTL)
	mu.Unlock()
	if _, err := s.Account(ctx, "alice"); !errors.Is(err, security.ErrNotFound) {
		t.Errorf("Account after AccountTTL = %v, want ErrNotFound", err)
	}
	if err := s.Check(ctx, security.Check{Kind: security.KeyCredential, Subject: "alice", ID: "k", AccountStamp: held.Stamp}); !errors.Is(err, security.ErrUnmarked) {
		t.Errorf("a key after MarkTTL: Check = %v, want ErrUnmarked", err)
	}
}

// BenchmarkRevokeSubject ends one subject's records while other subjects
// hold none or 100,000: its cost is what the subject holds.
func BenchmarkRevokeSubject(b *testing.B) {
	for _, others := range []int{0, 100000} {
		b.Run(fmt.Sprint("others=", others), func(b *testing.B) {
			s := security.NewMemoryStore(nil)
			ctx := context.Background()
			exp := time.Now().Add(time.Hour)
			for i := range others {
				_ = s.CreateSession(ctx, &security.Session{ID: fmt.Sprint("o", i), Subject: fmt.Sprint("user", i), SecretHash: []byte("h"), Expires: exp}, 0)
			}
			for b.Loop() {
				for i := range 5 {
					_ = s.CreateSession(ctx, &security.Session{ID: fmt.Sprint("a", i), Subject: "alice", SecretHash: []byte("h"), Expires: exp}, 0)
				}
				_ = s.RevokeSubject(ctx, "alice")
			}
		})
	}
}

// BenchmarkMemoryMillionSessions holds 1,000,000 sessions (of 100,000
// subjects, realistic ids and hashes) in the memory store: heap per session
// (metric B/session) and a lookup's cost across all of them.
func BenchmarkMemoryMillionSessions(b *testing.B) {
	const n = 1_000_000
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	s := security.NewMemoryStore(nil)
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	ids, subjects := make([]string, n), make([]string, n)
	for i := range n {
		ids[i], subjects[i] = security.NewID(), fmt.Sprintf("u%06d", i%100_000)
		sum := sha256.Sum256([]byte(ids[i]))
		csrf := sha256.Sum256([]byte(subjects[i] + ids[i]))
		if err := s.CreateSession(ctx, &security.Session{ID: ids[i], Subject: subjects[i], Role: "user", Device: "Firefox on Linux",
			SecretHash: sum[:], CSRFHash: csrf[:], AccountVersion: 1, Expires: exp}, 0); err != nil {
			b.Fatal(err)
		}
	}
	// The ids and subjects the benchmark keeps are not the store's.
	held := heap() - before - uint64(n)*uint64(len(ids[0])+len(subjects[0])+32)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.Session(ctx, subjects[i], ids[i]); err != nil {
			b.Fatal(err)
		}
		if i++; i == n {
			i = 0
		}
	}
	b.ReportMetric(float64(held)/n, "B/session")
}

// Revoked API keys were kept for their whole lifetime (a year) outside any
// cap, and the memory store's once-a-minute sweep of a million of them
// stalled every check for about 100 ms. A revocation lasts
// KeyRevocationTTL now, and each write drops a bounded batch of what
// expired, so no write (and no check waiting on its lock) pays for all.
func TestRevokedKeysAreDroppedInBatches(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	s := security.NewMemoryStore(clock)
	ctx := context.Background()
	const n = 10_000
	exp := now.Add(365 * 24 * time.Hour)
	for i := range n {
		k := &security.APIKey{ID: fmt.Sprint("k", i), Subject: "alice", Expires: exp}
		if _, err := s.MarkKey(ctx, k, false, 0); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeKey(ctx, "alice", k.ID, exp); err != nil {
			t.Fatal(err)
		}
	}
	check := func(id string) error {
		return s.Check(ctx, security.Check{Kind: security.KeyCredential, Subject: "alice", ID: id})
	}
	if err := check("k1"); !errors.Is(err, security.ErrNotFound) {
		t.Fatalf("a revoked key: Check = %v, want ErrNotFound", err)
	}
	if got := security.MemoryRecords(s); got != n {
		t.Fatalf("%d records, want %d revocations", got, n)
	}
	advance(security.KeyRevocationTTL)
	// Past the revocation the store holds nothing of the key: the record
	// in the database decides (and says revoked).
	if err := check("k1"); !errors.Is(err, security.ErrUnmarked) {
		t.Fatalf("a key past its revocation: Check = %v, want ErrUnmarked", err)
	}
	write := func() {
		if _, err := s.PutAccount(ctx, "bob", security.Account{Version: 1, Role: "user"}); err != nil {
			t.Fatal(err)
		}
	}
	write()
	dropped := n + 1 - security.MemoryRecords(s)
	if dropped < 1 || dropped > 32 {
		t.Errorf("one write dropped %d expired records, want 1 to 32 (a bounded batch)", dropped)
	}
	for range n/32 + 1 {
		write()
	}
	if got := security.MemoryRecords(s); got != 1 {
		t.Errorf("%d records after enough writes, want 1 (bob's account)", got)
	}
}

// BenchmarkWriteAfterMillionExpired is one write right after a million
// records expired: it drops a batch of them, not all (compare
// BenchmarkWriteAfterMillionExpired/expired=0).
func BenchmarkWriteAfterMillionExpired(b *testing.B) {
	for _, expired := range []int{0, 1_000_000} {
		b.Run(fmt.Sprint("expired=", expired), func(b *testing.B) {
			now := time.Now()
			var mu sync.Mutex
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			s := security.NewMemoryStore(clock)
			ctx := context.Background()
			for i := range expired {
				_ = s.RevokeKey(ctx, fmt.Sprint("u", i%1000), fmt.Sprint("k", i), now.Add(time.Hour))
			}
			mu.Lock()
			now = now.Add(security.KeyRevocationTTL)
			mu.Unlock()
			i := 0
			for b.Loop() {
				i++
				_, _ = s.PutAccount(ctx, fmt.Sprint("a", i%1000), security.Account{Version: int64(i), Role: "user"})
			}
		})
	}
}
