package service

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// /readyz is open to anyone: however often it is asked, the database and
// Redis are checked at most once a second, one check at a time, each on a
// context of its own (a caller that went away does not make the next
// second's answer unready).
func TestReadinessChecksAtMostOnceASecond(t *testing.T) {
	var runs, running atomic.Int32
	c := &readiness{check: func(ctx context.Context) map[string]error {
		if running.Add(1) > 1 {
			t.Error("two checks at once")
		}
		defer running.Add(-1)
		runs.Add(1)
		time.Sleep(20 * time.Millisecond)
		return map[string]error{"database": ctx.Err()}
	}}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			ctx := context.Background()
			if i == 0 {
				ctx = gone
			}
			if got := c.ready(ctx); got["database"] != nil {
				t.Errorf("checks %v, want the database ready", got)
			}
		})
	}
	wg.Wait()
	if n := runs.Load(); n != 1 {
		t.Errorf("50 callers at once ran %d checks, want 1", n)
	}
	c.ready(context.Background())["database"] = errors.New("a caller's edit")
	if got := c.ready(context.Background()); got["database"] != nil || runs.Load() != 1 {
		t.Errorf("within the second: %v after %d checks, want the first answer, unedited", got, runs.Load())
	}
	time.Sleep(readyFor)
	c.ready(context.Background())
	if n := runs.Load(); n != 2 {
		t.Errorf("a second later: %d checks, want 2", n)
	}
}
