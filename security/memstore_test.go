package security_test

import (
	"context"
	"errors"
	"fmt"
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
	_, _ = s.MarkKey(ctx, &security.APIKey{ID: "k", Subject: "alice", AccountVersion: 1, Expires: now.Add(365 * 24 * time.Hour)}, false)
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
