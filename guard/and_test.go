package guard_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/internal/guardtest"
	"github.com/specguard/specguard/internal/redistest"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/limits/redislimit"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
)

// fakeCredential takes "good" in its place as alice's, refuses anything
// else there, and says nothing when it is absent. outbound: verifying it
// reads a database (an API key this instance has not cached).
type fakeCredential struct {
	read     func(*http.Request) string
	outbound bool
	calls    *atomic.Int32 // counts Authenticate, when not nil
}

func (f fakeCredential) Authenticate(_ context.Context, r *http.Request, s *policy.Scheme) (*security.Principal, error) {
	if f.calls != nil {
		f.calls.Add(1)
	}
	switch f.read(r) {
	case "":
		return nil, nil
	case "good":
		return &security.Principal{Subject: "alice", Scheme: s.Name}, nil
	}
	return nil, fmt.Errorf("%w: bad credential", security.ErrInvalid)
}

func (f fakeCredential) Outbound(r *http.Request, _ *policy.Scheme) bool {
	return f.outbound && f.read(r) != ""
}

// An AND alternative with one credential missing is not met: the request
// is let in as anonymous when the document allows it, but every credential
// presented is still verified, and a bad one is refused whichever scheme
// name sorts first. A credential verified with an outside call is charged
// to the anonymous tier before the call: a request let in as anonymous is
// charged there once, not twice.
func TestAndAlternativeMissingACredential(t *testing.T) {
	table, err := policy.Compile("and.yaml", []byte(guardtest.AndOrAnonymous))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Get("/x", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "anonymous=%v", security.FromContext(r.Context()) == nil)
	})
	key := func(r *http.Request) string { return r.Header.Get("X-Key") }
	cookie := func(r *http.Request) string {
		c, err := r.Cookie("__Host-session")
		if err != nil {
			return ""
		}
		return c.Value
	}
	g, err := guard.New(table, r,
		guard.WithAuthenticator(policy.SchemeAPIKeyHeader, fakeCredential{read: key, outbound: true}),
		guard.WithAuthenticator(policy.SchemeAPIKeyCookie, fakeCredential{read: cookie}),
		guard.WithLimiter(limits.New(limits.NewMemoryStore(nil))),
		guard.WithoutRequestValidation())
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		name, key, cookie string
		code              int
		body, limit       string
	}{
		{"a bad cookie, no key", "", "forged", 401, "", `"anon";r=9;t=360`},
		{"a bad key, no cookie", "forged", "", 401, "", `"anon";r=9;t=360`},
		{"a good key, a bad cookie", "good", "forged", 401, "", `"anon";r=9;t=360`},
		{"a good key alone", "good", "", 200, "anonymous=true", `"anon";r=9;t=360`},
		{"a good cookie alone", "", "good", 200, "anonymous=true", `"anon";r=9;t=360`},
		{"both", "good", "good", 200, "anonymous=false", `"user";r=9;t=360`},
	} {
		req := httptest.NewRequest("GET", "/x", nil)
		req.RemoteAddr = fmt.Sprintf("192.0.2.%d:1234", i+1) // a bucket of its own
		if c.key != "" {
			req.Header.Set("X-Key", c.key)
		}
		if c.cookie != "" {
			req.AddCookie(&http.Cookie{Name: "__Host-session", Value: c.cookie})
		}
		w := httptest.NewRecorder()
		g.ServeHTTP(w, req)
		if w.Code != c.code || c.body != "" && w.Body.String() != c.body {
			t.Errorf("%s: %d %q, want %d %q", c.name, w.Code, w.Body, c.code, c.body)
		}
		if got := w.Header().Get("RateLimit"); got != c.limit {
			t.Errorf("%s: RateLimit %q, want %q", c.name, got, c.limit)
		}
	}
}

// When an alternative lets the request in, a credential of an earlier
// alternative that stopped at a missing credential is not looked at: no
// outside lookup charged to the anonymous tier, no store check of its own.
func TestAndAlternativeSkippedWhenAnotherLetsIn(t *testing.T) {
	spec := strings.Replace(guardtest.AndOrAnonymous, "        - {}\n", "        - {bearerAuth: []}\n", 1)
	spec = strings.Replace(spec, "    keyAuth:", "    bearerAuth: {type: http, scheme: bearer}\n    keyAuth:", 1)
	// The cookie's scheme sorts first: the alternative stops at it.
	spec = strings.Replace(spec, "cookieAuth", "aCookieAuth", -1)
	table, err := policy.Compile("and.yaml", []byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Get("/x", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, security.FromContext(r.Context()).Scheme) })
	var keyCalls atomic.Int32
	g, err := guard.New(table, r,
		guard.WithAuthenticator(policy.SchemeAPIKeyHeader, fakeCredential{read: func(r *http.Request) string { return r.Header.Get("X-Key") }, outbound: true, calls: &keyCalls}),
		guard.WithAuthenticator(policy.SchemeAPIKeyCookie, fakeCredential{read: func(*http.Request) string { return "" }}),
		guard.WithAuthenticator(policy.SchemeBearer, fakeCredential{read: func(r *http.Request) string { return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") }}),
		guard.WithLimiter(limits.New(limits.NewMemoryStore(nil))),
		guard.WithoutRequestValidation())
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/x", nil)
	req.Header.Set("Authorization", "Bearer good")
	req.Header.Set("X-Key", "forged")
	w := httptest.NewRecorder()
	g.ServeHTTP(w, req)
	if w.Code != 200 || w.Body.String() != "bearerAuth" || keyCalls.Load() != 0 {
		t.Errorf("a good token beside a key of an unmet alternative: %d %q, the key looked at %d times; want 200 as bearerAuth and 0",
			w.Code, w.Body, keyCalls.Load())
	}
	if got := w.Header().Get("RateLimit"); got != `"user";r=9;t=360` {
		t.Errorf("RateLimit %q: want the user's tier alone charged", got)
	}
}

// A credential verified with an outside call is charged to the anonymous
// tiers before the call. Once verified, the tiers that count it the same
// way (who: any, by client address or globally) are not charged again:
// one request costs one, so a tier of one an hour admits it. The
// RateLimit fields report the caller's tiers, each once (not those for
// anonymous callers alone, though they were charged).
func TestOutboundChargesEachTierOnce(t *testing.T) {
	do := outboundKeyGuard(t, `
        - {name: per-ip, limit: 1, window: 1h, key: ip}
        - {name: everyone, limit: 100, window: 1h, key: global}
        - {name: guessers, limit: 10, window: 1h, key: ip, who: anonymous}
        - {name: user, limit: 5, window: 1h, key: principal, who: authenticated}`, limits.NewMemoryStore(nil))
	w := do()
	got := strings.Join(w.Header().Values("RateLimit"), ", ")
	want := `"per-ip";r=0;t=3600, "everyone";r=99;t=36, "user";r=4;t=720`
	if w.Code != 200 || got != want {
		t.Errorf("the first request with a good key: %d RateLimit %q, want 200 %q", w.Code, got, want)
	}
	if got, want := strings.Join(w.Header().Values("RateLimit-Policy"), ", "), `"per-ip";q=1;w=3600, "everyone";q=100;w=3600, "user";q=5;w=3600`; got != want {
		t.Errorf("RateLimit-Policy %q, want %q", got, want)
	}
	if w := do(); w.Code != 429 {
		t.Errorf("the second: %d, want 429 (per-ip spent)", w.Code)
	}
}

// flakyStore fails the calls fail says, and passes the others on.
type flakyStore struct {
	next limits.Store
	n    atomic.Int32
	fail func(n int32) bool
}

func (s *flakyStore) Allow(ctx context.Context, reqs []limits.Request, results []limits.Result) (bool, error) {
	if s.fail(s.n.Add(1)) {
		return false, errors.New("store down for this call")
	}
	return s.next.Allow(ctx, reqs, results)
}

// When the anonymous charge made before an outside check fails in the
// store (on-store-error: allow lets the request on), nothing was charged:
// the verified caller's charge counts the tier, not skips it as charged.
func TestOutboundChargeTheStoreMissed(t *testing.T) {
	// Call 1 (the first request's anonymous charge) fails; every other works.
	store := &flakyStore{next: limits.NewMemoryStore(nil), fail: func(n int32) bool { return n == 1 }}
	do := outboundKeyGuard(t, `
        - {name: per-ip, limit: 1, window: 1h, key: ip, on-store-error: allow}`, store)
	var codes []int
	for range 3 {
		codes = append(codes, do().Code)
	}
	if codes[1] != 429 {
		t.Errorf("codes %v: the second request with per-ip limit 1 was admitted: the first was never charged", codes)
	}
}

// On a Redis Cluster with the node of one tier down, the anonymous
// charge made before an outside check is kept where a node answered,
// when on-store-error lets the request on: the verified caller is not
// charged to those tiers again (a tier of one admits the request).
func TestOutboundChargeOnAClusterWithANodeDown(t *testing.T) {
	cl := redistest.StartCluster(t)
	rdb := cl.Client(t)
	prefix := cl.Nodes[0].Prefix + "rl:"
	cl.Partial(t, rdb)
	nodeOf := func(shared string) string { return redistest.NodeOf(t, rdb, prefix+"{shared:"+shared+"|ip:192.0.2.1}") }
	live, down := "live", ""
	for i := 0; down == ""; i++ {
		if b := "b" + strconv.Itoa(i); nodeOf(b) != nodeOf(live) {
			down = b
		}
	}
	do := outboundKeyGuard(t, `
        - {name: per-ip, limit: 1, window: 1h, key: ip, shared: `+live+`, on-store-error: allow}
        - {name: other, limit: 100, window: 1h, key: ip, shared: `+down+`, on-store-error: allow}`,
		redislimit.New(rdb, prefix), limits.WithTimeout(time.Second))
	cl.StopNode(nodeOf(down))
	if w := do(); w.Code != 200 {
		t.Errorf("the first request with a good key, other's node down: %d %s, want 200 (per-ip charged once)", w.Code, w.Body)
	}
	if w := do(); w.Code != 429 {
		t.Errorf("the second: %d, want 429 (per-ip, whose node answers, spent)", w.Code)
	}
}

// outboundKeyGuard guards GET /x, limited by tiers (x-rate-limit's list
// items) in store, for a key verified with an outside call
// (fakeCredential); do sends one request with the good key.
func outboundKeyGuard(t *testing.T, tiers string, store limits.Store, opts ...limits.Option) (do func() *httptest.ResponseRecorder) {
	t.Helper()
	spec := `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /x:
    get:
      operationId: getX
      security:
        - {keyAuth: []}
      x-rate-limit:` + tiers + `
      responses: {'200': {description: ok}}
components:
  securitySchemes:
    keyAuth: {type: apiKey, in: header, name: X-Key}
`
	table, err := policy.Compile("t.yaml", []byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Get("/x", func(http.ResponseWriter, *http.Request) {})
	g, err := guard.New(table, r,
		guard.WithAuthenticator(policy.SchemeAPIKeyHeader, fakeCredential{read: func(r *http.Request) string { return r.Header.Get("X-Key") }, outbound: true}),
		guard.WithLimiter(limits.New(store, opts...)),
		guard.WithoutRequestValidation())
	if err != nil {
		t.Fatal(err)
	}
	return func() *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/x", nil)
		req.Header.Set("X-Key", "good")
		w := httptest.NewRecorder()
		g.ServeHTTP(w, req)
		return w
	}
}
