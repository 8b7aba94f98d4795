package conform

// The response family: every answer a case gets is checked against what
// the document declares for its operation: the status (or default), the
// headers a client must act on (WWW-Authenticate on 401, Retry-After,
// RateLimit and RateLimit-Policy on 429, Allow on 405, and every header
// the document marks required), and the body against its media type's
// schema.

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/routers"

	"github.com/specguard/specguard/internal/respcheck"
	"github.com/specguard/specguard/policy"
)

// answers are what the response family learned of one operation.
type answers struct {
	checked    int
	violations []string // "STATUS\tdetail", each once, in the order found
}

// mustHave are the headers an answer of a status carries whatever the
// document says: a client acts on them.
var mustHave = map[int][]string{
	http.StatusUnauthorized:     {"WWW-Authenticate"},
	http.StatusTooManyRequests:  {"Retry-After", "RateLimit", "RateLimit-Policy"},
	http.StatusMethodNotAllowed: {"Allow"},
}

// checkAnswer checks one answer to a request of op, sent by the case
// named from, and records what breaks the document.
func (r *runner) checkAnswer(ctx context.Context, op *policy.Operation, req *http.Request, resp *response, from string) {
	a := r.answers[op]
	if a == nil {
		a = &answers{}
		r.answers[op] = a
	}
	a.checked++
	found := func(format string, args ...any) {
		v := fmt.Sprintf("%d\t", resp.status) + fmt.Sprintf(format, args...) + " (the answer to " + from + ")"
		if !slices.Contains(a.violations, v) {
			a.violations = append(a.violations, v)
		}
	}
	for _, h := range mustHave[resp.status] {
		if resp.header.Get(h) == "" {
			found("no %s header", h)
		}
	}
	route := &routers.Route{Spec: r.table.Doc, Path: op.Path, PathItem: op.PathItem, Method: op.Method, Operation: op.Spec}
	var findings []respcheck.Finding
	switch {
	case !resp.cut:
		findings = respcheck.Check(ctx, req, route, resp.status, resp.header, resp.body)
	case respcheck.Declared(op.Spec, resp.status) == nil:
		found("status %d is not declared and there is no default", resp.status)
	default:
		// Read in part: its status and headers, not its body.
		findings = respcheck.Headers(ctx, req, route, resp.status, resp.header)
	}
	for _, f := range findings {
		if f.Reason == "body" {
			found("body %s: %s", f.Pointer, f.Detail)
		} else {
			found("%s", f.Detail)
		}
	}
}

// responseCases report, per operation, the answers that broke the
// document, each its own failing case (response:STATUS), or that every
// answer was as declared.
func (r *runner) responseCases(ops []*policy.Operation) {
	for _, op := range ops {
		a := r.answers[op]
		switch {
		case a == nil || a.checked == 0:
			r.report(op, "response", Skip, "no case got an answer from it")
		case len(a.violations) == 0:
			r.report(op, "response", Pass, "%d answers as the document declares them (status, headers, body)", a.checked)
		default:
			for _, v := range a.violations {
				status, detail, _ := strings.Cut(v, "\t")
				r.report(op, "response:"+status, Fail, "%s", detail)
			}
		}
	}
}
