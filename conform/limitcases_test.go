package conform_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/conform"
	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/policy"
)

// limitDoc is a document of one operation, GET /a, open to anyone, limited
// by limit.
func limitDoc(limit string) string {
	return `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /a:
    get:
      operationId: getA
      security: []
      x-rate-limit: ` + limit + `
      responses:
        '200': {description: ok, content: {application/json: {schema: {type: array, items: {type: string}}}}}
        '429': {description: slow down}
`
}

// runLimits runs the limit cases of doc against h, or against the guard
// on doc when h is nil.
func runLimits(t *testing.T, doc string, h http.Handler, maxCalls int) (*conform.Report, error) {
	t.Helper()
	table := compiled(t, doc)
	if h == nil {
		h = guarded(t, table, "/a")
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return conform.Run(ctx, table, conform.Options{Base: srv.URL, Only: []string{"limit"}, MaxCalls: maxCalls})
}

// guarded is the guard on table (a memory store's limits) in front of a
// GET route per path, each answering ["a"].
func guarded(t *testing.T, table *policy.Table, paths ...string) *guard.Guard {
	t.Helper()
	r := chi.NewRouter()
	for _, path := range paths {
		r.Get(path, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`["a"]`))
		})
	}
	g, err := guard.New(table, r, guard.WithLimiter(limits.New(limits.NewMemoryStore(nil))))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func verdicts(rep *conform.Report) string {
	var got []string
	for _, res := range rep.Results {
		got = append(got, res.Case+"="+res.Verdict+" ("+res.Detail+")")
	}
	return strings.Join(got, "; ")
}

// RateLimit's r counts units of cost (draft-ietf-httpapi-ratelimit-headers):
// a tier whose calls cost 4 refuses with r=2 left, and conforms.
func TestCostlyTierConforms(t *testing.T) {
	rep, err := runLimits(t, limitDoc(`{name: a, limit: 10, window: 1m, cost: 4, key: ip}`), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Passed != 1 {
		t.Fatalf("a tier with cost 4, enforced as declared: %s", verdicts(rep))
	}
}

// An operation with x-rate-limit: false has nothing to check: no case of
// it passes, so a run that checks nothing else is not OK.
func TestUnlimitedPassesNothing(t *testing.T) {
	rep, err := runLimits(t, limitDoc(`false`), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.Passed != 0 {
		t.Fatalf("x-rate-limit: false, nothing sent: OK=%v, %s", rep.OK(), verdicts(rep))
	}
}

// A server that says a tier's numbers but never refuses (a limiter left
// in a report-only mode). Answering faster than the tier refills, it
// fails. Answering slower (as a correct server may, under load), the case
// cannot tell it from a correct one: it is skipped, after at most MaxCalls
// calls more than the tier should admit, rather than run for ever.
func TestLimitCaseAgainstAServerThatNeverRefuses(t *testing.T) {
	for _, c := range []struct {
		name, tier, policy string
		answer             time.Duration
		want               string
	}{
		{"answering faster than the tier refills", `{name: a, limit: 10, window: 10s, burst: 6, key: ip}`, `"a";q=10;w=10`, 0, conform.Fail},
		{"answering slower than the tier refills", `{name: a, limit: 1000, window: 1s, burst: 6, key: ip}`, `"a";q=1000;w=1`, 3 * time.Millisecond, conform.Skip},
	} {
		t.Run(c.name, func(t *testing.T) {
			calls := 0
			never := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				calls++
				time.Sleep(c.answer)
				w.Header().Set("RateLimit-Policy", c.policy)
				w.Header().Set("RateLimit", `"a";r=5;t=1`)
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`["a"]`))
			})
			rep, err := runLimits(t, limitDoc(c.tier), never, 50)
			if err != nil {
				t.Fatalf("after %d calls: %v", calls, err)
			}
			if len(rep.Results) != 1 || rep.Results[0].Verdict != c.want || !strings.Contains(rep.Results[0].Detail, "still admitted") {
				t.Fatalf("a tier never refused: %s, want %s", verdicts(rep), c.want)
			}
			if calls > 100 {
				t.Errorf("%d calls for a case bounded by MaxCalls 50", calls)
			}
		})
	}
}

// A RateLimit value the suite does not expect for another tier (a
// decimal r) is not a panic: the case goes on.
func TestOddRemainingOfAnotherTier(t *testing.T) {
	odd := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("RateLimit-Policy", `"a";q=10;w=10, "b";q=10;w=10`)
		w.Header().Set("RateLimit", `"a";r=5;t=1, "b";r=1.5;t=1`)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`["a"]`))
	})
	rep, err := runLimits(t, limitDoc(`[{name: a, limit: 10, window: 10s, burst: 6, key: ip}, {name: b, limit: 10, window: 10s, burst: 6, key: ip}]`), odd, 50)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 2 {
		t.Fatalf("two tiers: %s", verdicts(rep))
	}
}

// A 429 by a tier the document applies to anonymous callers only, given to
// a request carrying a credential the operation admits, fails: the server
// counted an authenticated caller as anonymous (it was skipped as "429 by
// another tier before this one could be tried"). And the reverse.
func TestLimitRefusedByATierOfOtherCallersFails(t *testing.T) {
	const doc = `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /me:
    get:
      operationId: getMe
      x-credential: me
      security: [{key: []}]
      x-rate-limit: false
      responses: {'200': {description: ok}, '401': {description: no}}
  /a:
    get:
      operationId: getA
      security: [{key: []}, {}]
      x-rate-limit:
        - {name: users, limit: 100, window: 1m, key: principal, who: authenticated}
        - {name: anon, limit: 100, window: 1m, key: ip, who: anonymous}
      responses:
        '200': {description: ok, content: {application/json: {schema: {type: array, items: {type: string}}}}}
        '429': {description: slow down}
components:
  securitySchemes:
    key: {type: apiKey, in: header, name: X-API-Key}
`
	table := compiled(t, doc)
	for _, c := range []struct {
		refusedBy, tier string
		ended           bool // the credential no longer works: anonymous, rightly
		want            string
	}{{"anon", "limit:users", false, conform.Fail}, {"users", "limit:anon", false, conform.Fail}, {"anon", "limit:users", true, conform.Skip}} {
		// Every request refused by one tier, whoever sends it.
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/me" {
				if c.ended {
					w.Header().Set("WWW-Authenticate", `ApiKey realm="t"`)
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"id":"k"}`))
				return
			}
			w.Header().Set("Content-Type", "application/problem+json")
			w.Header().Set("Retry-After", "60")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"type":"about:blank","status":429,"violated-policies":["` + c.refusedBy + `"]}`))
		}))
		rep, err := conform.Run(context.Background(), table, conform.Options{Base: srv.URL, Only: []string{c.tier},
			Credentials: []conform.Credential{{Name: "k", Scheme: "key", Value: "good"}}})
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Results) != 1 || rep.Results[0].Verdict != c.want || c.want == conform.Fail && !strings.Contains(rep.Results[0].Detail, "counted as") {
			t.Errorf("%s, every call refused by %s, the credential ended %v: %s; want %s", c.tier, c.refusedBy, c.ended, verdicts(rep), c.want)
		}
	}
}

// compiled is doc compiled, the test stopped when it does not compile.
func compiled(t *testing.T, doc string) *policy.Table {
	t.Helper()
	table, err := policy.Compile("spec.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return table
}
