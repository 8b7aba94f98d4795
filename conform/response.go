package conform

// The response family: every answer a case gets is checked against what
// the document declares for its operation: the status (or default), the
// headers a client must act on (WWW-Authenticate on 401, Retry-After,
// RateLimit and RateLimit-Policy on 429, Allow on 405, and every header
// the document marks required), and the body against its media type's
// schema.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/specguard/specguard/policy"
)

// answers are what the response family learned of one operation.
type answers struct {
	checked    int
	violations []string // "STATUS\tdetail", each once, in the order found
}

var responseOptions = &openapi3filter.Options{
	IncludeResponseStatus: true,
	MultiError:            true,
	AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
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
	if declared := op.Spec.Responses.Status(resp.status); declared != nil && declared.Value != nil {
		for name, h := range declared.Value.Headers {
			if h.Value != nil && h.Value.Required && resp.header.Get(name) == "" {
				found("no %s header, which the document requires", name)
			}
		}
	}
	route := &routers.Route{Spec: r.table.Doc, Path: op.Path, PathItem: op.PathItem, Method: op.Method, Operation: op.Spec}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, Route: route, Options: responseOptions},
		Status:                 resp.status,
		Header:                 resp.header,
		Body:                   io.NopCloser(bytes.NewReader(resp.body)),
		Options:                responseOptions,
	}
	if err := openapi3filter.ValidateResponse(ctx, in); err != nil {
		for _, msg := range responseFindings(err) {
			found("%s", msg)
		}
	}
}

// responseFindings says what a response validation error found, one line
// each, naming the JSON pointer of a body that breaks its schema.
func responseFindings(err error) []string {
	var multi openapi3.MultiError
	if errors.As(err, &multi) {
		var out []string
		for _, e := range multi {
			out = append(out, responseFindings(e)...)
		}
		return out
	}
	var se *openapi3.SchemaError
	if errors.As(err, &se) {
		return []string{fmt.Sprintf("body %s: %s", pointer(se.JSONPointer()), se.Reason)}
	}
	var re *openapi3filter.ResponseError
	if errors.As(err, &re) {
		if re.Err != nil && !errors.Is(re.Err, re) {
			if inner := responseFindings(re.Err); len(inner) > 0 {
				return inner
			}
		}
		return []string{strings.TrimSpace(re.Reason)}
	}
	return []string{err.Error()}
}

// pointer is a JSON pointer (RFC 6901): "/" for the whole body.
func pointer(parts []string) string {
	if len(parts) == 0 {
		return "/"
	}
	esc := make([]string, len(parts))
	for i, p := range parts {
		esc[i] = strings.NewReplacer("~", "~0", "/", "~1").Replace(p)
	}
	return "/" + strings.Join(esc, "/")
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
