package security

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// ProblemTypePrefix starts the type URI of every problem specguard writes,
// except quota-exceeded, which uses the IANA-registered URI.
const ProblemTypePrefix = "urn:specguard:problem:"

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

// WriteProblem writes p as application/problem+json with p.Status.
func WriteProblem(w http.ResponseWriter, p *Problem) {
	body, err := json.Marshal(p)
	if err != nil { // a Problem always marshals; keep the status regardless
		body = []byte(`{"type":"about:blank","title":"error","status":` + strconv.Itoa(p.Status) + `}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_, _ = w.Write(body)
}

// challenge formats an RFC 6750 WWW-Authenticate value. code is empty when
// credentials were simply absent.
func challenge(realm, code, description, scope string) string {
	var b strings.Builder
	b.WriteString(`Bearer realm="`)
	b.WriteString(quoteSafe(realm))
	b.WriteByte('"')
	if code != "" {
		b.WriteString(`, error="`)
		b.WriteString(code)
		b.WriteByte('"')
	}
	if description != "" {
		b.WriteString(`, error_description="`)
		b.WriteString(quoteSafe(description))
		b.WriteByte('"')
	}
	if scope != "" {
		b.WriteString(`, scope="`)
		b.WriteString(quoteSafe(scope))
		b.WriteByte('"')
	}
	return b.String()
}

// quoteSafe keeps only the characters RFC 6750 allows inside
// error_description and scope (%x20-21 / %x23-5B / %x5D-7E).
func quoteSafe(s string) string {
	ok := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x20 && c <= 0x7e && c != '"' && c != '\\' {
			b.WriteByte(c)
		}
	}
	return b.String()
}
