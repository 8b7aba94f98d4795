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
	table, err := policy.Compile("spec.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if h == nil {
		r := chi.NewRouter()
		r.Get("/a", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`["a"]`))
		})
		if h, err = guard.New(table, r, guard.WithLimiter(limits.New(limits.NewMemoryStore(nil)))); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return conform.Run(ctx, table, conform.Options{Base: srv.URL, Only: []string{"limit"}, MaxCalls: maxCalls})
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
// in a report-only mode), answering slower than the tier refills: the case
// fails after MaxCalls calls more than it expected, rather than run for
// ever.
func TestLimitCaseEndsAgainstAServerThatNeverRefuses(t *testing.T) {
	calls := 0
	never := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls++
		time.Sleep(3 * time.Millisecond) // three of the tier's intervals
		w.Header().Set("RateLimit-Policy", `"a";q=1000;w=1`)
		w.Header().Set("RateLimit", `"a";r=5;t=1`)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`["a"]`))
	})
	rep, err := runLimits(t, limitDoc(`{name: a, limit: 1000, window: 1s, burst: 6, key: ip}`), never, 50)
	if err != nil {
		t.Fatalf("after %d calls: %v", calls, err)
	}
	if rep.Failed != 1 || !strings.Contains(rep.Results[0].Detail, "still admitted") {
		t.Fatalf("a tier never refused: %s", verdicts(rep))
	}
	if calls > 100 {
		t.Errorf("%d calls for a case bounded by MaxCalls 50", calls)
	}
}
