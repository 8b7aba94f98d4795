package security

import (
	"context"
	"testing"
	"time"

	"github.com/specguard/specguard/internal/onetrip"
)

// atWrapper is a store wrapper that checks at the guard's reading.
type atWrapper struct {
	Checker
	calls int
}

func (w *atWrapper) CheckAt(context.Context, Check, time.Time) (bool, error) {
	w.calls++
	return true, nil
}

// The hook runs a memory store's check at the guard's reading, or at its
// own clock without one; a wrapper's CheckAt only with a reading (a zero
// time would be year 1, by which nothing has expired); any other store
// not at all.
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
	w := &atWrapper{Checker: m}
	if ran, _ := checkAt(ctx, w, c, time.Time{}); ran || w.calls != 0 {
		t.Fatalf("wrapper, no reading: ran %v after %d calls; want left to its Check", ran, w.calls)
	}
	if ran, _ := checkAt(ctx, w, c, now); !ran || w.calls != 1 {
		t.Fatalf("wrapper, a reading: ran %v after %d calls; want its CheckAt", ran, w.calls)
	}
	if ran, _ := checkAt(ctx, struct{ Checker }{m}, c, now); ran {
		t.Fatal("a store of one's own was run by the hook")
	}
}
