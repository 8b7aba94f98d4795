package guard

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/specguard/specguard/internal/ijson"
	"github.com/specguard/specguard/internal/respcheck"
	"github.com/specguard/specguard/problem"
)

// What the validator checks and what a handler decodes must be one value.
// A Content-Type whose parameters Go's mime package cannot parse
// ("application/json; charset") is JSON to the validator, which cuts it at
// ";", but not to the guard's checks that ask mime (the case-variant
// check); and a JSON body that is not one I-JSON value (see
// internal/ijson) may decode in a handler to another value than the one
// the validator checked: {"meta":{"lang":"xx"},"meta":{}} is meta {} to
// the validator, which keeps the last, and lang "xx" to encoding/json,
// which merges them. Both are refused (400) before the validator reads
// the body.

// strictBody answers 400 (or 413) and returns false when r, for an
// operation declaring rb, has a malformed Content-Type, a JSON body that
// is no I-JSON document, or a form body giving a field that is no array
// more than once. It reads such a body whole, leaving a copy in its place
// for the validator.
func (g *Guard) strictBody(w http.ResponseWriter, r *http.Request, rb *openapi3.RequestBodyRef) bool {
	if rb == nil {
		return true
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return true // the validator says whether a body was due
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		g.problems.InvalidRequest(w, "The request does not match the API description.", []problem.FieldError{{
			Field: "header.Content-Type", Message: "is not a media type: " + strings.TrimPrefix(err.Error(), "mime: ")}})
		return false
	}
	form := mt == "application/x-www-form-urlencoded"
	if !form && !respcheck.IsJSON(ct) || r.Body == nil || r.Body == http.NoBody {
		return true
	}
	body, err := io.ReadAll(r.Body)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		g.problems.Write(w, &problem.Problem{Type: "body-too-large", Title: "Request body too large", Status: http.StatusRequestEntityTooLarge,
			Detail: fmt.Sprintf("The body exceeds %d bytes.", tooLarge.Limit)})
		return false
	} else if err != nil {
		g.problems.InvalidRequest(w, "The request body could not be read.", nil)
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if form {
		if name := repeated(body, rb.Value.Content.Get(ct)); name != "" {
			g.problems.InvalidRequest(w, "The request does not match the API description.", []problem.FieldError{{
				Field: "body." + name, Message: "is given more than once, and is no array"}})
			return false
		}
		return true
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return true // no body: the validator says whether one was due
	}
	if msg := ijson.Check(body); msg != "" {
		g.problems.InvalidRequest(w, "The request does not match the API description.", []problem.FieldError{{Field: "body", Message: msg}})
		return false
	}
	return true
}

// repeated returns a field of a form body given more than once whose
// schema in mt is no array, or "". The validator checks the first value
// that is not empty, a handler reads the first (r.FormValue): title=&title=ok
// passed minLength 1 with "" handed on.
func repeated(body []byte, mt *openapi3.MediaType) string {
	values, err := url.ParseQuery(string(body))
	if err != nil {
		return "" // the validator refuses it
	}
	var props openapi3.Schemas
	if mt != nil && mt.Schema != nil && mt.Schema.Value != nil {
		props = mt.Schema.Value.Properties
	}
	for name, vs := range values {
		if len(vs) < 2 {
			continue
		}
		if p := props[name]; p == nil || p.Value == nil || !p.Value.Type.Is(openapi3.TypeArray) {
			return name
		}
	}
	return ""
}
