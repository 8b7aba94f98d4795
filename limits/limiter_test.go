package limits_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/dunglas/httpsfv"

	"github.com/specguard/specguard/internal/onetrip"
	"github.com/specguard/specguard/internal/redistest"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/limits/redislimit"
	"github.com/specguard/specguard/policy"
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

func call(l *limits.Limiter, o *policy.Operation, c *limits.Caller, remote string) (limits.Verdict, bool) {
	r := httptest.NewRequest("GET", "/x", nil)
	r.RemoteAddr = remote
	var caller limits.Caller
	if c != nil {
		caller = *c
	}
	v := l.Decide(r, o, caller)
	return v, v.Allowed
}

// header is a verdict's header values as a response carries them.
func header(v limits.Verdict) http.Header {
	return http.Header{"Ratelimit-Policy": v.Policy, "Ratelimit": v.Limit}
}

func TestHeadersAreStructuredFields(t *testing.T) {
	l := limits.New(limits.NewMemoryStore(nil))
	o := op(
		policy.Tier{Name: "anon", Limit: 3, Window: time.Minute, Key: policy.KeyIP, Who: policy.WhoAnonymous},
		policy.Tier{Name: "global", Limit: 100, Window: time.Hour, Key: policy.KeyGlobal},
	)
	v, ok := call(l, o, nil, "192.0.2.1:1234")
	if !ok {
		t.Fatal("first request denied")
	}
	h := header(v)
	pol, err := httpsfv.UnmarshalList(h.Values("RateLimit-Policy"))
	if err != nil {
		t.Fatalf("RateLimit-Policy %q: %v", h.Get("RateLimit-Policy"), err)
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
	lim, err := httpsfv.UnmarshalList(h.Values("RateLimit"))
	if err != nil {
		t.Fatalf("RateLimit %q: %v", h.Get("RateLimit"), err)
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
	v, ok := call(l, o, nil, "192.0.2.7:1")
	if ok || v.Denied != 1 || v.StoreErr != nil {
		t.Fatalf("sixth request: %+v, want refused by tier 0", v)
	}
	lim, _ := httpsfv.UnmarshalList(header(v).Values("RateLimit"))
	tt, _ := lim[0].(httpsfv.Item).Params.Get("t")
	if v.RetryAfter < tt.(int64) {
		t.Errorf("RetryAfter %d is earlier than t=%v", v.RetryAfter, tt)
	}
	if v.RetryAfter != 180 {
		t.Errorf("RetryAfter = %d, want 180 (15m / 5)", v.RetryAfter)
	}
	if got := v.Violated(o); len(got) != 1 || got[0] != "login" {
		t.Errorf("Violated = %v, want [login]", got)
	}
	// Another client is not affected.
	if _, ok := call(l, o, nil, "192.0.2.8:1"); !ok {
		t.Error("another IP was denied")
	}
}

// On a 429, a tier that admitted reports what stays in it: the refused
// request charged nothing, in memory and in Redis alike.
func TestRefusedRequestReportsAdmittingTiersUncharged(t *testing.T) {
	srv := redistest.Start(t)
	for name, store := range map[string]limits.Store{
		"memory": limits.NewMemoryStore(nil),
		"redis":  redislimit.New(srv.Client(t), srv.Prefix+"uncharged:"),
	} {
		l := limits.New(store, limits.WithTimeout(time.Second))
		o := op(policy.Tier{Name: "wide", Limit: 10, Window: time.Hour, Key: policy.KeyIP},
			policy.Tier{Name: "narrow", Limit: 1, Window: time.Hour, Key: policy.KeyIP})
		if _, ok := call(l, o, nil, "192.0.2.1:1"); !ok {
			t.Fatalf("%s: the first request refused", name)
		}
		v, ok := call(l, o, nil, "192.0.2.1:1")
		if got, want := strings.Join(v.Limit, ", "), `"wide";r=9;t=360, "narrow";r=0;t=3600`; ok || got != want {
			t.Errorf("%s: the second request: allowed %v, RateLimit %q, want refused %q", name, ok, got, want)
		}
	}
}

func TestWhoAndKeys(t *testing.T) {
	l := limits.New(limits.NewMemoryStore(nil))
	o := op(
		policy.Tier{Name: "anon", Limit: 1, Window: time.Hour, Key: policy.KeyIP, Who: policy.WhoAnonymous},
		policy.Tier{Name: "user", Limit: 2, Window: time.Hour, Key: policy.KeyPrincipal, Who: policy.WhoAuthenticated},
		policy.Tier{Name: "key", Limit: 1, Window: time.Hour, Key: policy.KeyAPIKey, Who: policy.WhoAuthenticated},
	)
	alice := &limits.Caller{Authenticated: true, Subject: "alice"}
	bob := &limits.Caller{Authenticated: true, Subject: "bob"}
	carol := &limits.Caller{Authenticated: true, Subject: "carol", KeyID: "k1"}
	for i, c := range []struct {
		p    *limits.Caller
		ip   string
		want bool
	}{
		{nil, "192.0.2.1:1", true},
		{nil, "192.0.2.1:1", false},  // anon tier spent for this IP
		{alice, "192.0.2.1:1", true}, // authenticated: the anon tier does not apply
		{alice, "192.0.2.1:1", true},
		{alice, "192.0.2.1:1", false}, // alice's own tier spent
		{bob, "192.0.2.1:1", true},    // bob's is not
		{carol, "192.0.2.9:1", true},
		{carol, "192.0.2.9:1", false}, // key tier spent
	} {
		if _, ok := call(l, o, c.p, c.ip); ok != c.want {
			t.Fatalf("step %d: allowed=%v, want %v", i+1, ok, c.want)
		}
	}
}

// A caller authenticated without a subject (an authenticator of the
// app's that sets none) is counted by its client address under a
// principal tier, never let through uncounted.
func TestPrincipalWithoutSubject(t *testing.T) {
	l := limits.New(limits.NewMemoryStore(nil))
	o := op(policy.Tier{Name: "user", Limit: 2, Window: time.Hour, Key: policy.KeyPrincipal, Who: policy.WhoAuthenticated})
	nobody := &limits.Caller{Authenticated: true}
	var got []bool
	for range 3 {
		_, ok := call(l, o, nobody, "192.0.2.1:1")
		got = append(got, ok)
	}
	if _, ok := call(l, o, nobody, "192.0.2.2:1"); !ok || !got[0] || !got[1] || got[2] {
		t.Errorf("three calls from one address on a limit of 2: %v, then another address %v; want [true true false], true", got, ok)
	}
}

func TestStoreDown(t *testing.T) {
	srv := redistest.StartOwn(t) // stopped and restarted
	store := redislimit.New(srv.Client(t), srv.Prefix)
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
	v, ok := call(l, deny, nil, "192.0.2.1:1")
	elapsed := time.Since(start)
	if ok || v.StoreErr == nil || v.Denied != 0 {
		t.Fatalf("deny mode with Redis down: %+v, want refused for the store's failure", v)
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

// An address in the well-known prefix 64:ff9b::/96 (RFC 6052) is an IPv4
// host as a NAT64 or SIIT translator presents it to an IPv6-only service:
// counted as that IPv4 address, not per /64, where every IPv4 client behind
// the translator spent one budget (helper-145).
func TestTranslatedIPv4CountedAsItsAddress(t *testing.T) {
	l := limits.New(limits.NewMemoryStore(nil))
	o := op(policy.Tier{Name: "anon", Limit: 1, Window: time.Hour, Key: policy.KeyIP, Who: policy.WhoAnonymous})
	addr := func(remote string) netip.Addr {
		r := httptest.NewRequest("GET", "/x", nil)
		r.RemoteAddr = remote
		return l.ClientAddr(r)
	}
	if got := addr("[64:ff9b::c633:6407]:1"); got != netip.MustParseAddr("198.51.100.7") {
		t.Errorf("ClientAddr of 64:ff9b::c633:6407 = %v, want 198.51.100.7", got)
	}
	if _, ok := call(l, o, nil, "[64:ff9b::c000:201]:1"); !ok {
		t.Fatal("192.0.2.1, translated, refused")
	}
	if _, ok := call(l, o, nil, "[64:ff9b::c633:6407]:1"); !ok {
		t.Error("198.51.100.7, translated, refused after 192.0.2.1 spent its budget")
	}
	// The same host, translated or not, is one caller.
	if _, ok := call(l, o, nil, "192.0.2.1:2"); ok {
		t.Error("192.0.2.1 admitted again, natively, after its translated request spent its budget")
	}
	// Another prefix of the translator's own choosing is IPv6 as any.
	if got := addr("[64:ff9b:1::c000:201]:1"); got != netip.MustParseAddr("64:ff9b:1::") {
		t.Errorf("ClientAddr of 64:ff9b:1::c000:201 = %v, want its /64", got)
	}
}

// The guard's decision formats the RateLimit value into the field it keeps,
// and never into one that holds a value already: a string given out stays
// as it was.
func TestDecideIntoKeepsEarlierValues(t *testing.T) {
	l := limits.New(limits.NewMemoryStore(nil))
	o := op(policy.Tier{Name: "ten", Limit: 10, Window: time.Hour, Key: policy.KeyIP})
	var f onetrip.Field
	first := limits.DecideInto(l, httptest.NewRequest("GET", "/x", nil), o, &f)
	before := first.Limit[0]
	second := limits.DecideInto(l, httptest.NewRequest("GET", "/x", nil), o, &f)
	if first.Limit[0] != before || first.Limit[0] == second.Limit[0] {
		t.Fatalf("first %q (was %q), second %q: want the first unchanged and the two different", first.Limit[0], before, second.Limit[0])
	}
	if want := `"ten";r=8;t=720`; second.Limit[0] != want {
		t.Errorf("second = %q, want %q", second.Limit[0], want)
	}
}

// A memory-only user of limits compiles no Redis client: the Redis store
// is limits/redislimit.
func TestLimitsDependsOnNoRedisClient(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.Contains(dep, "redis") {
			t.Errorf("limits depends on %s", dep)
		}
	}
}
