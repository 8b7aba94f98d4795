package limits_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/dunglas/httpsfv"

	"github.com/specguard/specguard/e2e/redistest"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
)

func op(tiers ...policy.Tier) *policy.Operation {
	for i := range tiers {
		if tiers[i].Bucket == "" {
			tiers[i].Bucket = "op/" + tiers[i].Name
		}
		if tiers[i].Cost == 0 {
			tiers[i].Cost = 1
		}
		if tiers[i].Burst == 0 {
			tiers[i].Burst = tiers[i].Limit
		}
	}
	return &policy.Operation{ID: "op", Method: "GET", Path: "/x", Limits: tiers}
}

func call(l *limits.Limiter, o *policy.Operation, p *security.Principal, remote string) (*httptest.ResponseRecorder, bool) {
	r := httptest.NewRequest("GET", "/x", nil)
	r.RemoteAddr = remote
	w := httptest.NewRecorder()
	ok := l.Limit(w, r, o, p)
	return w, ok
}

func TestHeadersAreStructuredFields(t *testing.T) {
	l := limits.New(limits.NewMemoryStore(nil))
	o := op(
		policy.Tier{Name: "anon", Limit: 3, Window: time.Minute, Key: policy.KeyIP, Who: policy.WhoAnonymous},
		policy.Tier{Name: "global", Limit: 100, Window: time.Hour, Key: policy.KeyGlobal},
	)
	w, ok := call(l, o, nil, "192.0.2.1:1234")
	if !ok {
		t.Fatal("first request denied")
	}
	pol, err := httpsfv.UnmarshalList(w.Header().Values("RateLimit-Policy"))
	if err != nil {
		t.Fatalf("RateLimit-Policy %q: %v", w.Header().Get("RateLimit-Policy"), err)
	}
	want := []struct {
		name string
		q, w int64
	}{{"anon", 3, 60}, {"global", 100, 3600}}
	if len(pol) != len(want) {
		t.Fatalf("RateLimit-Policy has %d items, want %d", len(pol), len(want))
	}
	for i, item := range pol {
		it := item.(httpsfv.Item)
		q, _ := it.Params.Get("q")
		win, _ := it.Params.Get("w")
		if it.Value != want[i].name || q != want[i].q || win != want[i].w {
			t.Errorf("policy %d = %v q=%v w=%v, want %+v", i, it.Value, q, win, want[i])
		}
	}
	lim, err := httpsfv.UnmarshalList(w.Header().Values("RateLimit"))
	if err != nil {
		t.Fatalf("RateLimit %q: %v", w.Header().Get("RateLimit"), err)
	}
	first := lim[0].(httpsfv.Item)
	r, _ := first.Params.Get("r")
	tt, _ := first.Params.Get("t")
	if first.Value != "anon" || r != int64(2) || tt.(int64) < 1 {
		t.Errorf("RateLimit first item = %v r=%v t=%v, want anon r=2 t>=1", first.Value, r, tt)
	}
}

func TestTooManyRequests(t *testing.T) {
	l := limits.New(limits.NewMemoryStore(nil))
	o := op(policy.Tier{Name: "login", Limit: 5, Window: 15 * time.Minute, Key: policy.KeyIP})
	for i := range 5 {
		if _, ok := call(l, o, nil, "192.0.2.7:1"); !ok {
			t.Fatalf("request %d denied", i+1)
		}
	}
	w, ok := call(l, o, nil, "192.0.2.7:1")
	if ok || w.Code != http.StatusTooManyRequests {
		t.Fatalf("sixth request: ok=%v status=%d, want 429", ok, w.Code)
	}
	retry, err := strconv.Atoi(w.Header().Get("Retry-After"))
	if err != nil || retry < 1 {
		t.Fatalf("Retry-After = %q, want whole seconds >= 1", w.Header().Get("Retry-After"))
	}
	lim, _ := httpsfv.UnmarshalList(w.Header().Values("RateLimit"))
	tt, _ := lim[0].(httpsfv.Item).Params.Get("t")
	if int64(retry) < tt.(int64) {
		t.Errorf("Retry-After %d is earlier than t=%v", retry, tt)
	}
	if retry != 180 {
		t.Errorf("Retry-After = %d, want 180 (15m / 5)", retry)
	}
	var body security.Problem
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if w.Header().Get("Content-Type") != "application/problem+json" || body.Type != limits.ProblemQuotaExceeded ||
		body.Status != 429 || len(body.ViolatedPolicies) != 1 || body.ViolatedPolicies[0] != "login" {
		t.Errorf("429 body = %+v (content type %q)", body, w.Header().Get("Content-Type"))
	}
	// Another client is not affected.
	if _, ok := call(l, o, nil, "192.0.2.8:1"); !ok {
		t.Error("another IP was denied")
	}
}

func TestWhoAndKeys(t *testing.T) {
	l := limits.New(limits.NewMemoryStore(nil))
	o := op(
		policy.Tier{Name: "anon", Limit: 1, Window: time.Hour, Key: policy.KeyIP, Who: policy.WhoAnonymous},
		policy.Tier{Name: "user", Limit: 2, Window: time.Hour, Key: policy.KeyPrincipal, Who: policy.WhoAuthenticated},
		policy.Tier{Name: "key", Limit: 1, Window: time.Hour, Key: policy.KeyAPIKey, Who: policy.WhoAuthenticated},
	)
	alice := &security.Principal{Subject: "alice"}
	bob := &security.Principal{Subject: "bob"}
	for i, c := range []struct {
		p    *security.Principal
		ip   string
		want bool
	}{
		{nil, "192.0.2.1:1", true},
		{nil, "192.0.2.1:1", false},  // anon tier spent for this IP
		{alice, "192.0.2.1:1", true}, // authenticated: the anon tier does not apply
		{alice, "192.0.2.1:1", true},
		{alice, "192.0.2.1:1", false}, // alice's own tier spent
		{bob, "192.0.2.1:1", true},    // bob's is not
		{&security.Principal{Subject: "carol", KeyID: "k1"}, "192.0.2.9:1", true},
		{&security.Principal{Subject: "carol", KeyID: "k1"}, "192.0.2.9:1", false}, // key tier spent
	} {
		if _, ok := call(l, o, c.p, c.ip); ok != c.want {
			t.Fatalf("step %d: allowed=%v, want %v", i+1, ok, c.want)
		}
	}
}

func TestStoreDown(t *testing.T) {
	srv := redistest.Start(t)
	store := limits.NewRedisStore(srv.Client(t), srv.Prefix)
	logged := 0
	l := limits.New(store, limits.WithTimeout(200*time.Millisecond),
		limits.WithStoreErrorLog(func(*policy.Operation, error) { logged++ }))
	deny := op(policy.Tier{Name: "strict", Limit: 10, Window: time.Minute, Key: policy.KeyIP})
	allow := op(policy.Tier{Name: "lenient", Limit: 10, Window: time.Minute, Key: policy.KeyIP, AllowOnStoreError: true})
	if _, ok := call(l, deny, nil, "192.0.2.1:1"); !ok {
		t.Fatal("denied while Redis is up")
	}
	srv.Stop()
	start := time.Now()
	w, ok := call(l, deny, nil, "192.0.2.1:1")
	elapsed := time.Since(start)
	if ok || w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("deny mode with Redis down: ok=%v status=%d Retry-After=%q, want 503 with Retry-After", ok, w.Code, w.Header().Get("Retry-After"))
	}
	t.Logf("store failure answered in %s (timeout 200ms)", elapsed)
	if _, ok := call(l, allow, nil, "192.0.2.1:1"); !ok {
		t.Fatal("allow mode with Redis down: denied")
	}
	for range 8 {
		call(l, allow, nil, "192.0.2.1:1")
	}
	// Logging is limited to one line a second.
	maxLines := int(time.Since(start)/time.Second) + 1
	if l.StoreErrors() != 10 || logged < 1 || logged > maxLines {
		t.Errorf("StoreErrors = %d, logged = %d; want 10 failures and 1..%d log lines", l.StoreErrors(), logged, maxLines)
	}

	srv.Restart(t)
	if _, ok := call(l, deny, nil, "192.0.2.1:1"); !ok {
		t.Fatal("after Redis restarted: still denied")
	}
}

// IPv6 clients are counted per /64 by default: anyone holds a whole /64,
// and per address would have 2^64 buckets. The prefix is configurable.
func TestIPv6CountedPerPrefix(t *testing.T) {
	tier := policy.Tier{Name: "anon", Limit: 2, Window: time.Hour, Key: policy.KeyIP, Who: policy.WhoAnonymous}
	for _, tc := range []struct {
		name  string
		opts  []limits.Option
		other string // the third request's address
		want  bool   // whether it is admitted
	}{
		{"same /64, default", nil, "[2001:db8:1:2:ffff::9]:1", false},
		{"another /64, default", nil, "[2001:db8:1:3::1]:1", true},
		{"same /64, prefix 128", []limits.Option{limits.WithIPv6Prefix(128)}, "[2001:db8:1:2:ffff::9]:1", true},
		{"same /48, prefix 48", []limits.Option{limits.WithIPv6Prefix(48)}, "[2001:db8:1:3::1]:1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := limits.New(limits.NewMemoryStore(nil), tc.opts...)
			o := op(tier)
			for _, a := range []string{"[2001:db8:1:2::1]:1", "[2001:db8:1:2::2]:1"} {
				if _, ok := call(l, o, nil, a); !ok {
					t.Fatalf("%s refused", a)
				}
			}
			if _, ok := call(l, o, nil, tc.other); ok != tc.want {
				t.Errorf("%s admitted = %v, want %v", tc.other, ok, tc.want)
			}
			if _, ok := call(l, o, nil, "192.0.2.7:1"); !ok {
				t.Errorf("an IPv4 client shares the IPv6 bucket")
			}
		})
	}
}
