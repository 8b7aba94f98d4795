package limits_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/specguard/specguard/internal/redistest"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/policy"
)

// flag is a Precheck on one Redis key: it holds while the key is "ok".
// Its script returns 7 otherwise.
type flag struct {
	rdb    redis.UniversalClient
	key    string
	checks int // calls of Check: the precheck run on its own
}

var errFlagDown = errors.New("flag down")

func (f *flag) Check(ctx context.Context) error {
	f.checks++
	v, err := f.rdb.Get(ctx, f.key).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	if v != "ok" {
		return errFlagDown
	}
	return nil
}

func (f *flag) Script() (any, string, []string, []any) {
	return f.rdb, `local function gate(gk, ga, now)
  if redis.call('GET', gk[1]) == ga[1] then return 0 end
  return 7
end
`, []string{f.key}, []any{"ok"}
}

func (f *flag) Failed(code int64) error { return fmt.Errorf("%w (code %d)", errFlagDown, code) }

// On one Redis the precheck rides in the rate-limit script: one round trip;
// when it fails nothing is charged.
func TestPrecheckFoldsIntoTheScript(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	trips := &redistest.RoundTrips{}
	rdb.AddHook(trips)
	l := limits.New(limits.NewRedisStore(rdb, srv.Prefix+"rl:"), limits.WithTimeout(time.Second))
	if !l.CanPrecheck() {
		t.Fatal("a limiter on one Redis must precheck")
	}
	o := op(policy.Tier{Name: "two", Limit: 2, Window: time.Hour, Key: policy.KeyIP})
	pre := &flag{rdb: rdb, key: srv.Prefix + "flag"}
	ctx := context.Background()
	if err := l.Decide(httptest.NewRequest("GET", "/x", nil), o, limits.Caller{}, pre); err.PrecheckErr == nil || !errors.Is(err.PrecheckErr, errFlagDown) {
		t.Fatalf("flag unset: PrecheckErr = %v, want the flag's error", err.PrecheckErr)
	}
	rdb.Set(ctx, pre.key, "ok", time.Hour)
	for i := range 2 {
		before := trips.N.Load()
		v := l.Decide(httptest.NewRequest("GET", "/x", nil), o, limits.Caller{}, pre)
		if !v.Allowed || v.PrecheckErr != nil {
			t.Fatalf("request %d: %+v, want allowed (the failed precheck charged nothing)", i+1, v)
		}
		if n := trips.N.Load() - before; n != 1 {
			t.Errorf("request %d: %d round trips, want 1", i+1, n)
		}
	}
	if v := l.Decide(httptest.NewRequest("GET", "/x", nil), o, limits.Caller{}, pre); v.Allowed || v.Denied != 1 {
		t.Errorf("third request: %+v, want refused by the tier", v)
	}
	if pre.checks != 0 {
		t.Errorf("Check ran %d times on its own; the script should have decided", pre.checks)
	}
}

// A precheck on another Redis than the limiter's, or a limiter on a Redis
// Cluster, cannot fold it: it runs on its own first, and still decides.
func TestPrecheckElsewhereRunsOnItsOwn(t *testing.T) {
	srv := redistest.Start(t)
	other := redistest.Start(t)
	l := limits.New(limits.NewRedisStore(srv.Client(t), srv.Prefix+"rl:"), limits.WithTimeout(time.Second))
	o := op(policy.Tier{Name: "two", Limit: 2, Window: time.Hour, Key: policy.KeyIP})
	rdb := other.Client(t)
	pre := &flag{rdb: rdb, key: other.Prefix + "flag"}
	if v := l.Decide(httptest.NewRequest("GET", "/x", nil), o, limits.Caller{}, pre); !errors.Is(v.PrecheckErr, errFlagDown) || pre.checks != 1 {
		t.Fatalf("flag down elsewhere: %+v after %d checks", v, pre.checks)
	}
	rdb.Set(context.Background(), pre.key, "ok", time.Hour)
	if v := l.Decide(httptest.NewRequest("GET", "/x", nil), o, limits.Caller{}, pre); !v.Allowed || pre.checks != 2 {
		t.Fatalf("flag up elsewhere: %+v after %d checks", v, pre.checks)
	}
}

// When the store cannot answer, a precheck is refused for it, whatever the
// tiers' on-store-error says: a credential that could not be checked never
// passes.
func TestPrecheckFailsClosedWhenTheStoreIsDown(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	l := limits.New(limits.NewRedisStore(rdb, srv.Prefix+"rl:"), limits.WithTimeout(200*time.Millisecond))
	o := op(policy.Tier{Name: "lenient", Limit: 2, Window: time.Hour, Key: policy.KeyIP, AllowOnStoreError: true})
	pre := &flag{rdb: rdb, key: srv.Prefix + "flag"}
	srv.Stop()
	v := l.Decide(httptest.NewRequest("GET", "/x", nil), o, limits.Caller{}, pre)
	if !errors.Is(v.PrecheckErr, limits.ErrPrecheck) || v.StoreErr == nil {
		t.Fatalf("store down: %+v, want PrecheckErr wrapping ErrPrecheck", v)
	}
}
