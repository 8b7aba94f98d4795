package conform_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/specguard/specguard/conform"
	"github.com/specguard/specguard/policy"
)

const twoTiersDoc = `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /a:
    get:
      operationId: getA
      security: []
      x-rate-limit: {name: a, limit: 3, window: 1m, key: ip}
      responses:
        '200': {description: ok, content: {application/json: {schema: {type: array, items: {type: string}}}}}
        '429': {description: slow down}
  /b:
    get:
      operationId: getB
      security: []
      x-rate-limit: {name: b, limit: 3, window: 1m, key: ip}
      responses:
        '200': {description: ok, content: {application/json: {schema: {type: array, items: {type: string}}}}}
        '429': {description: slow down}
`

// --skip names cases by the start of their names: skipping one tier's
// case leaves the other tiers' cases in (it used to drop the whole limit
// family, silently), and sends nothing for the skipped one.
func TestSkipOneCaseOfAFamily(t *testing.T) {
	runWith := func(skip []string) (names string, calls int) {
		table, err := policy.Compile("spec.yaml", []byte(twoTiersDoc))
		if err != nil {
			t.Fatal(err)
		}
		g := guarded(t, table, "/a", "/b")
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/a" {
				calls++
			}
			g.ServeHTTP(w, r)
		}))
		defer srv.Close()
		rep, err := conform.Run(context.Background(), table, conform.Options{Base: srv.URL, Only: []string{"limit"}, Skip: skip})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, res := range rep.Results {
			got = append(got, res.Case+"="+res.Verdict)
		}
		return strings.Join(got, " "), calls
	}
	all, allCalls := runWith(nil)
	if all != "limit:a=pass limit:b=pass" {
		t.Fatalf("every limit case: %s", all)
	}
	got, calls := runWith([]string{"limit:a"})
	if got != "limit:b=pass" {
		t.Errorf("--skip limit:a: %s, want limit:b alone", got)
	}
	if allCalls-calls < 3 { // the case spends a's 3 calls, then one more
		t.Errorf("--skip limit:a sent GET /a %d times, every case %d: the skipped case ran", calls, allCalls)
	}

	// A tier misspelt is refused before anything is sent: it spared
	// nothing, and the tier it was meant to spare was spent.
	table, err := policy.Compile("spec.yaml", []byte(twoTiersDoc))
	if err != nil {
		t.Fatal(err)
	}
	sent := 0
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { sent++ }))
	defer srv.Close()
	for _, o := range []conform.Options{{Skip: []string{"limit:aa"}}, {Only: []string{"limit:c"}}} {
		o.Base = srv.URL
		if _, err := conform.Run(context.Background(), table, o); !errors.Is(err, conform.ErrNoSuchCase) || sent != 0 {
			t.Errorf("only %v skip %v: %v and %d requests, want ErrNoSuchCase before any", o.Only, o.Skip, err, sent)
		}
	}
}
