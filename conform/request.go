package conform

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/specguard/specguard/internal/formats"
	"github.com/specguard/specguard/internal/text"
	"github.com/specguard/specguard/policy"
)

// response is what the server answered.
type response struct {
	status int
	header http.Header
	body   []byte
	// cut: the body was longer than maxBody, and body is its beginning.
	cut bool
	// problem is the decoded body when it is application/problem+json.
	problem map[string]any
}

// maxBody is the most of an answer's body read: a longer one's status and
// headers are checked, not its body.
const maxBody = 1 << 20

func (resp *response) String() string {
	s := fmt.Sprintf("%d", resp.status)
	if t, ok := resp.problem["type"].(string); ok {
		s += " " + quoted([]byte(t))
	}
	return s
}

// quoted is an answer's body as a report quotes it: on one line (the text
// report is one line per case), and cut after about 200 bytes.
func quoted(body []byte) string {
	s := text.OneLine(string(body))
	if len(s) <= 200 {
		return s
	}
	cut := 200
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// violation is a way to break the document's schema for an operation's
// request, and the field the 400 must name.
type violation struct {
	what  string // "a body missing its required properties"
	field string // the field errors[] must name, or its prefix ("body")
	path  map[string]string
	query url.Values
	body  []byte
	// contentType of body: application/json when empty.
	contentType string
}

// validValue is a value p's schema accepts, or "1" when none of those
// tried is (any value routes; only validation would refuse it).
func validValue(p *openapi3.Parameter) string {
	var s *openapi3.Schema
	if p.Schema != nil {
		s = p.Schema.Value
	}
	if s == nil {
		return "1"
	}
	var tries []any
	if p.Example != nil {
		tries = append(tries, p.Example)
	}
	if s.Example != nil {
		tries = append(tries, s.Example)
	}
	if s.Default != nil {
		tries = append(tries, s.Default)
	}
	tries = append(tries, s.Enum...)
	tries = append(tries, 1, "1", "abc", "a1b2c3", "00000000-0000-4000-8000-000000000000", "2026-01-01", "x")
	if v, ok := formatSamples[s.Format]; ok {
		tries = append(tries, v)
	}
	for _, v := range tries {
		str := fmt.Sprint(v)
		var candidate any = str
		if s.Type.Is("integer") || s.Type.Is("number") {
			var n float64
			if _, err := fmt.Sscan(str, &n); err != nil {
				continue
			}
			candidate = n
		}
		if s.VisitJSON(candidate, formats.Options...) == nil {
			return str
		}
	}
	return "1"
}

// breakParam returns a value p's schema refuses, or "" when it finds none
// that still routes (a path value must not be empty or hold a slash).
func breakParam(p *openapi3.Parameter) string {
	if p.Schema == nil || p.Schema.Value == nil {
		return ""
	}
	s := p.Schema.Value
	tries := []any{"not-a-number", "!", "~~", strings.Repeat("x", 300), "zzzz-not-in-the-enum"}
	if s.MaxLength != nil {
		tries = append(tries, strings.Repeat("x", int(*s.MaxLength)+1))
	}
	for _, v := range tries {
		str := v.(string)
		var candidate any = str
		if s.Type.Is("integer") || s.Type.Is("number") {
			var n float64
			if _, err := fmt.Sscan(str, &n); err == nil {
				candidate = n
			}
		}
		if s.VisitJSON(candidate, formats.Options...) != nil {
			return str
		}
	}
	return ""
}

// violate finds a request op's schema refuses: a body without its
// required properties (or of the wrong type), then a path or query
// parameter out of its schema, then a required query parameter left out.
func violate(op *policy.Operation) *violation {
	if rb := op.Spec.RequestBody; rb != nil && rb.Value != nil {
		if mt := rb.Value.Content.Get("application/json"); mt != nil && mt.Schema != nil && mt.Schema.Value != nil {
			s := mt.Schema.Value
			switch {
			case len(s.Required) > 0:
				return &violation{what: "a JSON body without its required properties", field: "body", body: []byte("{}")}
			case s.Type.Is("object"):
				return &violation{what: "a JSON array where an object is declared", field: "body", body: []byte("[]")}
			default:
				return &violation{what: "a JSON object where another type is declared", field: "body", body: []byte(`{"conform":true}`)}
			}
		}
		if mt := rb.Value.Content.Get("application/x-www-form-urlencoded"); mt != nil && mt.Schema != nil && mt.Schema.Value != nil && len(mt.Schema.Value.Required) > 0 {
			return &violation{what: "a form without its required fields", field: "body", body: []byte{}, contentType: "application/x-www-form-urlencoded"}
		}
	}
	for _, p := range op.Parameters() {
		if p.In != "path" && p.In != "query" {
			continue
		}
		if bad := breakParam(p); bad != "" {
			v := &violation{what: fmt.Sprintf("%s parameter %s = %q", p.In, p.Name, bad), field: p.In + "." + p.Name}
			if p.In == "path" {
				v.path = map[string]string{p.Name: bad}
			} else {
				v.query = url.Values{p.Name: {bad}}
			}
			return v
		}
	}
	for _, p := range op.Parameters() {
		if p.In == "query" && p.Required {
			return &violation{what: "required query parameter " + p.Name + " left out", field: "query." + p.Name, query: url.Values{p.Name: nil}}
		}
	}
	return nil
}

// send makes one request to op for the case named name: with cred when
// not nil, breaking its schema as v says when v is not nil, then edited by
// edit. The answer is checked against the document (the response family)
// unless name is empty (a request to no operation of the document).
func (r *runner) send(ctx context.Context, name string, op *policy.Operation, cred *credential, v *violation, edit func(*http.Request)) (*response, error) {
	path := op.Path
	query := url.Values{}
	for _, p := range op.Parameters() {
		value := validValue(p)
		switch p.In {
		case "path":
			if v != nil && v.path[p.Name] != "" {
				value = v.path[p.Name]
			}
			path = strings.ReplaceAll(path, "{"+p.Name+"}", url.PathEscape(value))
		case "query":
			if p.Required {
				query.Set(p.Name, value)
			}
		}
	}
	var body io.Reader
	contentType := "application/json"
	if v != nil {
		if v.contentType != "" {
			contentType = v.contentType
		}
		for k, vals := range v.query {
			if vals == nil {
				query.Del(k)
			} else {
				query[k] = vals
			}
		}
		if v.body != nil {
			body = bytes.NewReader(v.body)
		}
	} else if op.Spec.RequestBody != nil {
		body = strings.NewReader("{}")
	}
	target := r.base + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, op.Method, target, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if cred != nil {
		cred.apply(req)
	}
	if edit != nil {
		edit(req)
	}
	resp, err := r.opts.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	out := &response{status: resp.StatusCode, header: resp.Header, body: raw}
	if len(raw) > maxBody {
		out.body, out.cut = raw[:maxBody], true
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
		_ = json.Unmarshal(raw, &out.problem)
	}
	if name != "" {
		r.checkAnswer(ctx, op, req, out, name)
	}
	return out, nil
}
