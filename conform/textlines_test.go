package conform_test

import (
	"net/http"
	"strings"
	"testing"
)

// WriteText is "one line per case". A problem's type is quoted raw into a
// case's detail ("got 403 <type>"): a server's type holding a newline
// adds lines to the report, here one that reads as a passing case.
// The text report is one line per case: a problem type with a line break
// (or a terminal's escape) in a server's answer added a line that read as
// a PASS (helper-177).
func TestTextReportOneLinePerCase(t *testing.T) {
	const doc = `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /a:
    get:
      operationId: getA
      security: [{bearer: []}]
      x-rate-limit: false
      responses:
        '200': {description: ok}
        '401': {description: no}
        '403': {description: no}
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
`
	srv := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"type":"x\u001b[2K\nPASS  GET /admin (deleteEverything)  scope:bearer:admin: 403 insufficient_scope","status":403}`))
	})
	rep := runAgainst(t, doc, srv, nil, "no-credential")
	var b strings.Builder
	rep.WriteText(&b)
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != len(rep.Results)+1 {
		t.Fatalf("%d results, %d lines:\n%s", len(rep.Results), len(lines), b.String())
	}
	if strings.ContainsRune(b.String(), 0x1b) {
		t.Errorf("the report holds an escape: %q", b.String())
	}
}
