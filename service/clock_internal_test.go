package service

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/specguard/specguard/internal/onetrip"
	"github.com/specguard/specguard/security"
)

// plainStore is a security store of one's own: it has no Unwrap.
type plainStore struct{ security.Store }

// The metered store lets the guard reach the memory store it wraps, which
// then checks at the guard's one reading of the clock for the request
// (see internal/clock); a store of one's own under it is left to its own
// Check.
func TestMeteredStoreChecksAtTheGuardsReading(t *testing.T) {
	checkAt, ok := onetrip.CheckAt.(func(context.Context, security.Checker, security.Check, time.Time) (bool, error))
	if !ok {
		t.Fatal("onetrip.CheckAt is not package security's hook")
	}
	ctx := context.Background()
	mem := security.NewMemoryStore(nil)
	now := time.Now()
	if err := mem.CreateSession(ctx, &security.Session{ID: "s1", Subject: "alice", Created: now, Expires: now.Add(time.Hour)}, 0); err != nil {
		t.Fatal(err)
	}
	c := security.Check{Kind: security.SessionCredential, Subject: "alice", ID: "s1"}
	metered := &meteredStore{next: mem, store: "memory"}
	if ran, err := checkAt(ctx, metered, c, now); !ran || err != nil {
		t.Fatalf("a live session at the guard's time: ran %v, %v; want it run and live", ran, err)
	}
	if ran, err := checkAt(ctx, metered, c, now.Add(2*time.Hour)); !ran || !errors.Is(err, security.ErrNotFound) {
		t.Fatalf("the session two hours later by the guard's time: ran %v, %v; want it run and not found", ran, err)
	}
	if ran, err := checkAt(ctx, &meteredStore{next: plainStore{mem}, store: "memory"}, c, now.Add(2*time.Hour)); ran || err != nil {
		t.Fatalf("a store of one's own: ran %v, %v; want it left to its Check", ran, err)
	}
}
