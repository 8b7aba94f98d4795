package conform_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// A correct server whose answer is over 1 MiB (a long list, declared as
// such): conform reads 1 MiB of it and checks the cut body against the
// schema, failing the response case of a server that broke nothing.
// An answer over the 1 MiB conform reads was checked cut, and failed as
// no JSON: its status and headers are checked, not its body (helper-177).
func TestLargeAnswerIsNotAViolation(t *testing.T) {
	const doc = `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /a:
    get:
      operationId: getA
      security: []
      x-rate-limit: false
      responses:
        '200': {description: ok, content: {application/json: {schema: {type: array, items: {type: string}}}}}
`
	items := make([]string, 20000)
	for i := range items {
		items[i] = strings.Repeat("x", 100)
	}
	big, _ := json.Marshal(items) // about 2 MB
	srv := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/a" || r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET")
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(big)
	})
	rep := runAgainst(t, doc, srv, nil, "response")
	if rep.Failed != 0 {
		t.Fatalf("a %d-byte answer as declared: %s", len(big), verdicts(rep))
	}
	// Its status is still checked.
	teapot := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTeapot)
		_, _ = w.Write(big)
	})
	rep = runAgainst(t, doc, teapot, nil, "response")
	if got := verdicts(rep); !strings.Contains(got, "response:418=fail (status 418 is not declared and there is no default") {
		t.Errorf("a %d-byte answer of an undeclared 418: %s", len(big), got)
	}
}
