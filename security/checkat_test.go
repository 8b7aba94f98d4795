package security

import (
	"context"
	"testing"
	"time"

	"github.com/specguard/specguard/internal/onetrip"
)

// wrapper is a store wrapper that lets specguard reach the store it wraps.
type wrapper struct{ Store }

func (w wrapper) Unwrap() Store { return w.Store }

// loop is a wrapper that returns itself.
type loop struct{ Store }

func (l *loop) Unwrap() Store { return l }

// The hook runs a memory store's check at the guard's reading, or at its
// own clock without one; a wrapped one (Unwrap) only with a reading (a
// zero time would be year 1, by which nothing has expired), else the
// wrapper's Check decides; any other store not at all.
func TestCheckAtHook(t *testing.T) {
	checkAt, ok := onetrip.CheckAt.(func(context.Context, Checker, Check, time.Time) (bool, error))
	if !ok {
		t.Fatal("onetrip.CheckAt is not security's hook: the guard's reading would never reach a memory store")
	}
	ctx := context.Background()
	m := NewMemoryStore(nil)
	now := time.Now()
	if err := m.CreateSession(ctx, &Session{ID: "s1", Subject: "alice", Created: now, Expires: now.Add(time.Hour)}, 0); err != nil {
		t.Fatal(err)
	}
	c := Check{Kind: SessionCredential, Subject: "alice", ID: "s1"}
	if ran, err := checkAt(ctx, m, c, time.Time{}); !ran || err != nil {
		t.Fatalf("memory store, no reading: ran %v, %v; want run at its own clock, live", ran, err)
	}
	if ran, err := checkAt(ctx, m, c, now.Add(2*time.Hour)); !ran || err != ErrNotFound {
		t.Fatalf("memory store, two hours later: ran %v, %v; want run, not found", ran, err)
	}
	w := wrapper{wrapper{m}}
	if ran, _ := checkAt(ctx, w, c, time.Time{}); ran {
		t.Fatal("wrapper, no reading: run by the hook; want left to its Check")
	}
	if ran, err := checkAt(ctx, w, c, now.Add(2*time.Hour)); !ran || err != ErrNotFound {
		t.Fatalf("wrapper of a wrapper, two hours later: ran %v, %v; want the memory store run, not found", ran, err)
	}
	if ran, _ := checkAt(ctx, &loop{m}, c, now); ran {
		t.Fatal("a wrapper that unwraps to itself was run by the hook")
	}
	if ran, _ := checkAt(ctx, wrapper{(*MemoryStore)(nil)}, c, now); ran {
		t.Fatal("a wrapper whose Unwrap returns a nil *MemoryStore was run by the hook; want left to its Check")
	}
	if ran, _ := checkAt(ctx, struct{ Checker }{m}, c, now); ran {
		t.Fatal("a store of one's own was run by the hook")
	}
}
