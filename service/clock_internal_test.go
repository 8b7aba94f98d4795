package service

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/specguard/specguard/security"
)

// plainStore is a security store of one's own: it has no CheckAt.
type plainStore struct{ security.Store }

// The metered store lets the memory store it wraps check at the guard's
// one reading of the clock for the request (see internal/clock), and
// leaves any other store to its own Check.
func TestMeteredStoreChecksAtTheGuardsReading(t *testing.T) {
	ctx := context.Background()
	mem := security.NewMemoryStore(nil)
	now := time.Now()
	if err := mem.CreateSession(ctx, &security.Session{ID: "s1", Subject: "alice", Created: now, Expires: now.Add(time.Hour)}, 0); err != nil {
		t.Fatal(err)
	}
	c := security.Check{Kind: security.SessionCredential, Subject: "alice", ID: "s1"}
	metered := &meteredStore{next: mem, store: "memory"}
	if ran, err := metered.CheckAt(ctx, c, now); !ran || err != nil {
		t.Fatalf("a live session at the guard's time: ran %v, %v; want it run and live", ran, err)
	}
	if ran, err := metered.CheckAt(ctx, c, now.Add(2*time.Hour)); !ran || !errors.Is(err, security.ErrNotFound) {
		t.Fatalf("the session two hours later by the guard's time: ran %v, %v; want it run and not found", ran, err)
	}
	if ran, err := (&meteredStore{next: plainStore{mem}, store: "memory"}).CheckAt(ctx, c, now.Add(2*time.Hour)); ran || err != nil {
		t.Fatalf("a store of one's own: ran %v, %v; want it left to its Check", ran, err)
	}
}
