package limits_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/specguard/specguard/internal/onetrip"
	"github.com/specguard/specguard/internal/redislua"
	"github.com/specguard/specguard/internal/redistest"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/limits/redislimit"
	"github.com/specguard/specguard/policy"
)

// decide asks l for an anonymous request to o, with pre checked first.
func decide(l *limits.Limiter, o *policy.Operation, pre onetrip.Precheck) (limits.Verdict, error) {
	return limits.DecidePrechecked(l, httptest.NewRequest("GET", "/x", nil), o, limits.Caller{}, pre)
}

// flag is a precheck on one Redis key, as the credential check of
// internal/redislua reads an API key's mark: it holds while the key's hash
// has an expiry (field e) in the future. Down, the script's code is
// redislua.Unmarked.
type flag struct {
	rdb    redis.UniversalClient
	key    string
	checks int // calls of Check: the precheck run on its own
}

var errFlagDown = errors.New("flag down")

func (f *flag) Check(ctx context.Context, _ time.Time) error {
	f.checks++
	e, err := f.rdb.HGet(ctx, f.key, "e").Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	if e <= time.Now().UnixMicro() {
		return errFlagDown
	}
	return nil
}

func (f *flag) Script() (any, []string, []any) {
	return f.rdb, []string{f.key, f.key + ":account"}, []any{"k", "", ""}
}

func (f *flag) Failed(code int64) error {
	if code != redislua.Unmarked {
		return fmt.Errorf("the check returned code %d, want %d (no mark)", code, redislua.Unmarked)
	}
	return errFlagDown
}

// up raises the flag for an hour.
func (f *flag) up(t *testing.T) {
	t.Helper()
	if err := f.rdb.HSet(context.Background(), f.key, "e", time.Now().Add(time.Hour).UnixMicro()).Err(); err != nil {
		t.Fatal(err)
	}
}

// countedLimiter is a limiter on a new Redis, whose client counts its
// round trips.
func countedLimiter(t *testing.T) (*redistest.Server, *redis.Client, *redistest.RoundTrips, *limits.Limiter) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	trips := &redistest.RoundTrips{}
	rdb.AddHook(trips)
	return srv, rdb, trips, limits.New(redislimit.New(rdb, srv.Prefix+"rl:"), limits.WithTimeout(time.Second))
}

// On one Redis the precheck rides in the rate-limit script: one round trip;
// when it fails nothing is charged.
func TestPrecheckFoldsIntoTheScript(t *testing.T) {
	srv, rdb, trips, l := countedLimiter(t)
	if !limits.CanPrecheck(l) {
		t.Fatal("a limiter on one Redis must precheck")
	}
	o := op(policy.Tier{Name: "two", Limit: 2, Window: time.Hour, Key: policy.KeyIP})
	pre := &flag{rdb: rdb, key: srv.Prefix + "flag"}
	if _, err := decide(l, o, pre); !errors.Is(err, errFlagDown) {
		t.Fatalf("flag unset: precheck error = %v, want the flag's error", err)
	}
	pre.up(t)
	for i := range 2 {
		before := trips.N.Load()
		v, err := decide(l, o, pre)
		if !v.Allowed || err != nil {
			t.Fatalf("request %d: %+v, want allowed (the failed precheck charged nothing)", i+1, v)
		}
		if n := trips.N.Load() - before; n != 1 {
			t.Errorf("request %d: %d round trips, want 1", i+1, n)
		}
	}
	if v, _ := decide(l, o, pre); v.Allowed || v.Denied != 1 {
		t.Errorf("third request: %+v, want refused by the tier", v)
	}
	if pre.checks != 0 {
		t.Errorf("Check ran %d times on its own; the script should have decided", pre.checks)
	}
}

// revokedFlag is a flag whose key was revoked (field x): the check finds
// the credential gone for good (redislua.Dead).
type revokedFlag struct{ flag }

var errRevoked = errors.New("revoked")

func (f *revokedFlag) Failed(code int64) error {
	if code != redislua.Dead {
		return fmt.Errorf("the check returned code %d, want %d (gone for good)", code, redislua.Dead)
	}
	return errRevoked
}

// When the precheck finds the credential gone for good, the same script
// counts the request as anonymous instead, when asked to: one round trip,
// the caller's own buckets untouched. Without being asked, or for a check
// that is not final (no mark), nothing is charged.
func TestPrecheckGoneForGoodCountsAsAnonymous(t *testing.T) {
	srv, rdb, trips, l := countedLimiter(t)
	o := op(policy.Tier{Name: "user", Limit: 5, Window: time.Hour, Key: policy.KeyPrincipal, Who: policy.WhoAuthenticated},
		policy.Tier{Name: "anon", Limit: 2, Window: time.Hour, Key: policy.KeyIP, Who: policy.WhoAnonymous},
		policy.Tier{Name: "all", Limit: 100, Window: time.Hour, Key: policy.KeyGlobal})
	alice := limits.Caller{Authenticated: true, Subject: "alice"}
	req := func() *http.Request {
		r := httptest.NewRequest("GET", "/x", nil)
		r.RemoteAddr = "198.51.100.7:1234"
		return r
	}
	revoked := &revokedFlag{flag{rdb: rdb, key: srv.Prefix + "revoked"}}
	if err := rdb.HSet(context.Background(), revoked.key, "x", 1, "e", time.Now().Add(time.Hour).UnixMicro()).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := limits.DecidePrechecked(l, req(), o, alice, revoked); !errors.Is(err, errRevoked) || v.Applied != 0b101 || v.Limit != nil {
		t.Fatalf("revoked, no fallback asked: %+v, %v; want the check's error and nothing decided", v, err)
	}
	for i, want := range []struct {
		allowed bool
		limit   string
	}{{true, `"anon";r=1;t=1800, "all";r=99;t=36`}, {true, `"anon";r=0;t=3600, "all";r=98;t=72`}, {false, `"anon";r=0;t=1800, "all";r=98;t=72`}} { // refused (the third): "all" stays as it was
		before := trips.N.Load()
		v, err, anon := limits.DecideWithFallback(l, req(), o, alice, revoked)
		if !errors.Is(err, errRevoked) || !anon || v.Allowed != want.allowed || v.Applied != 0b110 || strings.Join(v.Limit, "") != want.limit {
			t.Fatalf("revoked, attempt %d: %+v, %v, anon %v; want the check's error and the anonymous tiers charged (allowed %v, RateLimit %s)",
				i+1, v, err, anon, want.allowed, want.limit)
		}
		if !want.allowed && v.Denied != 0b010 {
			t.Errorf("revoked, attempt %d: denied by %b, want the anonymous tier", i+1, v.Denied)
		}
		if n := trips.N.Load() - before; n != 1 {
			t.Errorf("revoked, attempt %d: %d round trips, want 1", i+1, n)
		}
	}
	// The refused attempt charged nothing (what "all" shows is what an
	// admitted request would have left). Alice's own bucket was never
	// charged, and a check that is not final (no mark: the guard
	// authenticates again) charges nothing either.
	unmarked := &flag{rdb: rdb, key: srv.Prefix + "unmarked"}
	if v, err, anon := limits.DecideWithFallback(l, req(), o, alice, unmarked); !errors.Is(err, errFlagDown) || anon || v.Limit != nil {
		t.Fatalf("unmarked: %+v, %v, anon %v; want the check's error and nothing decided", v, err, anon)
	}
	unmarked.up(t)
	if v, err, anon := limits.DecideWithFallback(l, req(), o, alice, unmarked); err != nil || anon || !v.Allowed ||
		strings.Join(v.Limit, "") != `"user";r=4;t=720, "all";r=97;t=108` {
		t.Fatalf("live: %+v, %v, anon %v; want alice's tiers charged, her own for the first time", v, err, anon)
	}

	// An operation whose tiers count anonymous callers only: nothing to
	// charge alice, the fallback still rides with her check.
	anonOnly := op(policy.Tier{Name: "anon-only", Limit: 2, Window: time.Hour, Key: policy.KeyIP, Who: policy.WhoAnonymous})
	before := trips.N.Load()
	if v, err, anon := limits.DecideWithFallback(l, req(), anonOnly, alice, unmarked); err != nil || anon || !v.Allowed || v.Applied != 0 || v.Limit != nil {
		t.Fatalf("anonymous tiers only, live: %+v, %v, anon %v; want admitted, no tier applied", v, err, anon)
	}
	if v, err, anon := limits.DecideWithFallback(l, req(), anonOnly, alice, revoked); !errors.Is(err, errRevoked) || !anon ||
		strings.Join(v.Limit, "") != `"anon-only";r=1;t=1800` {
		t.Fatalf("anonymous tiers only, revoked: %+v, %v, anon %v; want the anonymous tier charged", v, err, anon)
	}
	if n := trips.N.Load() - before; n != 2 {
		t.Errorf("anonymous tiers only: %d round trips for two requests, want 2", n)
	}
}

// A precheck on another Redis than the limiter's cannot fold into its
// script: it is checked alongside the tiers, and still decides.
func TestPrecheckElsewhereRunsOnItsOwn(t *testing.T) {
	srv := redistest.Start(t)
	other := redistest.Start(t)
	l := limits.New(redislimit.New(srv.Client(t), srv.Prefix+"rl:"), limits.WithTimeout(time.Second))
	o := op(policy.Tier{Name: "two", Limit: 2, Window: time.Hour, Key: policy.KeyIP})
	rdb := other.Client(t)
	pre := &flag{rdb: rdb, key: other.Prefix + "flag"}
	if _, err := decide(l, o, pre); !errors.Is(err, errFlagDown) || pre.checks != 1 {
		t.Fatalf("flag down elsewhere: %v after %d checks", err, pre.checks)
	}
	pre.up(t)
	if v, _ := decide(l, o, pre); !v.Allowed || pre.checks != 2 {
		t.Fatalf("flag up elsewhere: %+v after %d checks", v, pre.checks)
	}
}

// When the store cannot answer, a precheck is refused for it, whatever the
// tiers' on-store-error says: a credential that could not be checked never
// passes.
func TestPrecheckFailsClosedWhenTheStoreIsDown(t *testing.T) {
	srv := redistest.StartOwn(t) // stopped
	rdb := srv.Client(t)
	l := limits.New(redislimit.New(rdb, srv.Prefix+"rl:"), limits.WithTimeout(200*time.Millisecond))
	o := op(policy.Tier{Name: "lenient", Limit: 2, Window: time.Hour, Key: policy.KeyIP, AllowOnStoreError: true})
	pre := &flag{rdb: rdb, key: srv.Prefix + "flag"}
	srv.Stop()
	v, err := decide(l, o, pre)
	if !errors.Is(err, onetrip.ErrUndecided) || v.StoreErr == nil {
		t.Fatalf("store down: %+v, %v: want a precheck error wrapping ErrUndecided", v, err)
	}
}

// flagAfterCharge is a flag whose Check first waits until a tier's bucket
// exists: it holds only when the tiers are sent while the check is in
// flight, not after it.
type flagAfterCharge struct {
	flag
	bucket string
}

func (f *flagAfterCharge) Check(ctx context.Context, at time.Time) error {
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		keys, err := f.rdb.(*redis.ClusterClient).Keys(ctx, "*"+f.bucket+"*").Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("the tiers were not sent while the precheck was in flight")
		}
	}
	return f.flag.Check(ctx, at)
}

// On a Redis Cluster the credential's key and the tiers' live in different
// slots: the precheck and the tiers are sent at the same time (one round
// trip of wall time), and when the precheck fails the charges are refunded.
func TestClusterPrecheckRunsAlongsideTheTiers(t *testing.T) {
	l, rdb, prefix := clusterLimiter(t)
	if !limits.CanPrecheck(l) {
		t.Fatal("a limiter on a Cluster must take prechecks: it sends them alongside the tiers")
	}
	o := op(policy.Tier{Name: "two", Limit: 2, Window: time.Hour, Key: policy.KeyIP},
		policy.Tier{Name: "three", Limit: 3, Window: time.Hour, Key: policy.KeyIP})
	pre := &flagAfterCharge{flag: flag{rdb: rdb, key: prefix + "flag"}, bucket: "op/two"}

	// Down: refused for the flag, ten times; every charge is given back.
	for i := range 10 {
		if _, err := decide(l, o, pre); !errors.Is(err, errFlagDown) {
			t.Fatalf("flag down, request %d: precheck error = %v, want the flag's error", i+1, err)
		}
	}
	if pre.checks != 10 {
		t.Fatalf("Check ran %d times, want 10", pre.checks)
	}
	pre.up(t)
	for i := range 2 {
		if v, err := decide(l, o, pre); !v.Allowed || err != nil {
			t.Fatalf("flag up, request %d: %+v, want admitted (the refused requests were refunded)", i+1, v)
		}
	}
	if v, _ := decide(l, o, pre); v.Allowed || v.Denied != 1 {
		t.Errorf("third request: %+v, want refused by the tier of two", v)
	}
}

// clusterLimiter is a limiter on a new Redis Cluster, its client, and the
// prefix of the test's keys.
func clusterLimiter(t *testing.T) (*limits.Limiter, *redis.ClusterClient, string) {
	cl := redistest.StartCluster(t)
	rdb := cl.Client(t)
	prefix := cl.Nodes[0].Prefix
	return limits.New(redislimit.New(rdb, prefix+"rl:"), limits.WithTimeout(3*time.Second)), rdb, prefix
}

// inProcess is a precheck its store decides in process (the memory
// credential store's): it holds.
type inProcess struct{ checks int }

func (p *inProcess) Check(context.Context, time.Time) error { p.checks++; return nil }
func (p *inProcess) Script() (any, []string, []any)         { return nil, nil, nil }
func (p *inProcess) Failed(int64) error                     { return nil }

// A caller no tier applies to (the operation's count anonymous callers
// only) has nothing for the rate-limit store to decide: with a check that
// cannot ride in its script, the store is not called, and its being down
// refuses nothing (it answered 503 for a moment, 75838c2).
func TestNoTierOfTheCallerNeedsNoLimitStore(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	l := limits.New(redislimit.New(rdb, "rl:"), limits.WithTimeout(time.Second))
	anonOnly := op(policy.Tier{Name: "anon-only", Limit: 2, Window: time.Hour, Key: policy.KeyIP, Who: policy.WhoAnonymous})
	pre := &inProcess{}
	v, err, anon := limits.DecideWithFallback(l, httptest.NewRequest("GET", "/x", nil), anonOnly, limits.Caller{Authenticated: true, Subject: "alice"}, pre)
	if err != nil || anon || !v.Allowed || pre.checks != 1 || l.StoreErrors() != 0 {
		t.Fatalf("%+v, %v, anon %v, %d checks, %d store errors; want admitted on the check alone", v, err, anon, pre.checks, l.StoreErrors())
	}
}

// A credential whose check was decided, and held, in a call of its own (in
// process, or alongside the tiers: another Redis, a Cluster) is good: when
// only the rate-limit store then fails, the tiers' on-store-error decides,
// as for an anonymous caller, and the request is not refused as undecided
// (503). allow lets it through; deny refuses it (a verdict not allowed,
// with the store's error).
func TestHeldCheckLeavesStoreErrorsToTheTiers(t *testing.T) {
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	t.Cleanup(func() { dead.Close() })
	live := redistest.Start(t)
	elsewhere := &flag{rdb: live.Client(t), key: live.Prefix + "flag"}
	elsewhere.up(t)
	alice := limits.Caller{Authenticated: true, Subject: "alice"}
	for _, allow := range []bool{true, false} {
		for name, pre := range map[string]interface {
			onetrip.Precheck
			count() int
		}{"in process": &inProcess{}, "alongside": elsewhere} {
			t.Run(fmt.Sprintf("%s,allow=%v", name, allow), func(t *testing.T) {
				l := limits.New(redislimit.New(dead, "rl:"), limits.WithTimeout(time.Second))
				o := op(policy.Tier{Name: "user", Limit: 5, Window: time.Hour, Key: policy.KeyPrincipal, Who: policy.WhoAuthenticated, AllowOnStoreError: allow},
					policy.Tier{Name: "ip", Limit: 5, Window: time.Hour, Key: policy.KeyIP, AllowOnStoreError: allow})
				before := pre.count()
				v, err := limits.DecidePrechecked(l, httptest.NewRequest("GET", "/x", nil), o, alice, pre)
				if pre.count() != before+1 {
					t.Fatalf("the check ran %d times, want once", pre.count()-before)
				}
				if err != nil || v.StoreErr == nil || v.Allowed != allow {
					t.Errorf("verdict %+v, error %v; want allowed %v by on-store-error, the store's error in the verdict, no error", v, err, allow)
				}
			})
		}
	}
}

func (p *inProcess) count() int { return p.checks }
func (f *flag) count() int      { return f.checks }
