package problem

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// DefaultPrefix starts the type URI of a problem whose Type is a bare name,
// when the Writer sets none.
const DefaultPrefix = "urn:specguard:problem:"

// QuotaExceeded is the type of a 429: the URI IANA registered
// (draft-ietf-httpapi-ratelimit-headers).
const QuotaExceeded = "https://iana.org/assignments/http-problem-types#quota-exceeded"

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type             string       `json:"type"`
	Title            string       `json:"title"`
	Status           int          `json:"status"`
	Detail           string       `json:"detail,omitempty"`
	ViolatedPolicies []string     `json:"violated-policies,omitempty"`
	Errors           []FieldError `json:"errors,omitempty"`
}

// FieldError names one invalid field of a request.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Writer writes problems. The zero Writer uses DefaultPrefix.
type Writer struct {
	// Prefix starts the type URI of a problem whose Type has no ':'.
	Prefix string
}

// TypeURI returns the type URI of t as w writes it.
func (w Writer) TypeURI(t string) string {
	if strings.Contains(t, ":") {
		return t
	}
	if w.Prefix == "" {
		return DefaultPrefix + t
	}
	return w.Prefix + t
}

// Write writes p with status p.Status. A problem is never cached.
func (w Writer) Write(rw http.ResponseWriter, p *Problem) {
	out := *p
	out.Type = w.TypeURI(p.Type)
	body, err := json.Marshal(&out)
	if err != nil { // a Problem always marshals; keep the status regardless
		body = []byte(`{"type":"about:blank","title":"error","status":` + strconv.Itoa(p.Status) + `}`)
	}
	h := rw.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	rw.WriteHeader(p.Status)
	_, _ = rw.Write(body)
}

// Unavailable is the 503 of a store or database that did not answer: the
// request may be retried (Retry-After: 1), and nothing was decided with it.
func (w Writer) Unavailable(rw http.ResponseWriter, detail string) {
	rw.Header().Set("Retry-After", "1")
	w.Write(rw, &Problem{Type: "store-unavailable", Title: "Service unavailable", Status: http.StatusServiceUnavailable, Detail: detail})
}

// Internal is the 500 of a handler that failed; it says nothing more.
func (w Writer) Internal(rw http.ResponseWriter) {
	w.Write(rw, &Problem{Type: "internal", Title: "Internal error", Status: http.StatusInternalServerError})
}

// NotFound is the 404 of a path no operation has.
func (w Writer) NotFound(rw http.ResponseWriter) {
	w.Write(rw, &Problem{Type: "not-found", Title: "Not found", Status: http.StatusNotFound, Detail: "No operation has this path."})
}

// MethodNotAllowed is the 405 of a path that has operations, none with the
// request's method; allow lists those it has.
func (w Writer) MethodNotAllowed(rw http.ResponseWriter, allow []string) {
	if len(allow) > 0 {
		rw.Header().Set("Allow", strings.Join(allow, ", "))
	}
	w.Write(rw, &Problem{Type: "method-not-allowed", Title: "Method not allowed", Status: http.StatusMethodNotAllowed,
		Detail: "The path exists, but not with this method."})
}

// InvalidRequest is the 400 of a request that does not match the API
// description; errors name the fields.
func (w Writer) InvalidRequest(rw http.ResponseWriter, detail string, errors []FieldError) {
	w.Write(rw, Invalid(detail, errors))
}

// Invalid is the problem InvalidRequest writes.
func Invalid(detail string, errors []FieldError) *Problem {
	return &Problem{Type: "invalid-request", Title: "Invalid request", Status: http.StatusBadRequest, Detail: detail, Errors: errors}
}
