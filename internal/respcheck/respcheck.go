// Package respcheck checks one answer against what an OpenAPI document
// declares for its operation (kin-openapi's ValidateResponse), and says
// what breaks it in findings that name the JSON pointer of a body at
// fault, never a value of the answer. The guard (at run time) and conform
// (from outside) share it.
package respcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/specguard/specguard/internal/formats"
	"github.com/specguard/specguard/internal/ijson"
)

// Finding is one way an answer breaks the document.
type Finding struct {
	Reason  string // "status", "header", "content-type" or "body"
	Pointer string // the body's JSON pointer at fault ("/" for all of it); empty unless Reason is "body"
	Detail  string // what the document asks there
}

var options = &openapi3filter.Options{
	IncludeResponseStatus:   true,
	MultiError:              true,
	AuthenticationFunc:      openapi3filter.NoopAuthenticationFunc,
	SchemaValidationOptions: formats.Options,
}

// Check checks an answer of req's operation (route) against the document:
// its status (or default), the headers it declares required, and body
// against its media type's schema.
func Check(ctx context.Context, req *http.Request, route *routers.Route, status int, header http.Header, body []byte) []Finding {
	var out []Finding
	head := req.Method == http.MethodHead
	unread := len(body) > 0 && !Readable(header)
	out = append(out, TypeParameters(header)...)
	out = append(out, repeated(Declared(route.Operation, status), header)...)
	if !head && !unread && len(body) > 0 && IsJSON(header.Get("Content-Type")) && ijson.Check(body) != "" {
		// openapi3filter decodes the first value alone, and keeps the last
		// of a repeated name: {"id":"a"}{"secret":1} passed as {"id":"a"}.
		out = append(out, Finding{Reason: "body", Pointer: "/", Detail: notOneValue})
	}
	if unread && !unvalidated(status) {
		return append(out, checkUnread(ctx, req, route, status, header)...)
	}
	if head || unread || unvalidated(status) {
		return append(out, checkItself(ctx, req, route, status, header, body, head, unread)...)
	}
	if declared := Declared(route.Operation, status); declared != nil && len(declared.Content) == 0 && len(body) > 0 {
		// openapi3filter passes any body of a status declared without
		// content.
		out = append(out, Finding{Reason: "body", Pointer: "/", Detail: NoContent})
	}
	return append(out, validate(ctx, req, route, status, header, body, options)...)
}

// bodySchema is the schema of the answer's media type, nil when the
// document gives none.
func bodySchema(route *routers.Route, status int, header http.Header) *openapi3.Schema {
	declared := Declared(route.Operation, status)
	if declared == nil {
		return nil
	}
	mt := declared.Content.Get(header.Get("Content-Type"))
	if mt == nil || mt.Schema == nil {
		return nil
	}
	return mt.Schema.Value
}

// validate is openapi3filter's check of the answer with opts.
func validate(ctx context.Context, req *http.Request, route *routers.Route, status int, header http.Header, body []byte, opts *openapi3filter.Options) []Finding {
	err := openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, Route: route, Options: opts},
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                opts,
	})
	if err == nil {
		return nil
	}
	var v any
	if IsJSON(header.Get("Content-Type")) {
		_ = json.Unmarshal(body, &v) // nil when it is not JSON after all
	}
	return findings(err, bodySchema(route, status, header), v)
}

// checkUnread is Check for a body it cannot read (see Readable): the
// status, the media type, and the headers, values included, by
// openapi3filter without the body.
func checkUnread(ctx context.Context, req *http.Request, route *routers.Route, status int, header http.Header) []Finding {
	declared := Declared(route.Operation, status)
	if declared == nil {
		return []Finding{{Reason: "status", Detail: fmt.Sprintf("status %d is not declared and there is no default", status)}}
	}
	var out []Finding
	switch {
	case len(declared.Content) == 0:
		out = append(out, Finding{Reason: "body", Pointer: "/", Detail: NoContent})
	case declared.Content.Get(header.Get("Content-Type")) == nil:
		out = append(out, Finding{Reason: "content-type", Detail: "a media type this status does not declare"})
	}
	return append(out, validate(ctx, req, route, status, header, nil, headersOnly)...)
}

// headersOnly is options without the body.
var headersOnly = func() *openapi3filter.Options {
	o := *options
	o.ExcludeResponseBody = true
	return &o
}()

// notOneValue is the finding of a JSON body that is not one I-JSON value
// (see internal/ijson), said without quoting the body.
const notOneValue = "the body is not one I-JSON value (RFC 7493): a name repeated in an object, text that is not UTF-8, or data after the value"

// unvalidated reports whether openapi3filter.ValidateResponse passes an
// answer of status without looking at it (as it passes any answer to
// HEAD).
func unvalidated(status int) bool {
	switch status {
	case http.StatusMovedPermanently, http.StatusNotModified, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// Declared is the response op declares for status, or its default; nil
// when it declares neither.
func Declared(op *openapi3.Operation, status int) *openapi3.Response {
	ref := op.Responses.Status(status)
	if ref == nil {
		ref = op.Responses.Default()
	}
	if ref == nil {
		return nil
	}
	return ref.Value
}

// NoContent is the finding of a body where the status declares none.
const NoContent = "the document declares no content for this status"

// checkItself is Check where openapi3filter looks at nothing, or could
// not read the body (unread): the status declared, its headers (values
// too), the media type, and, but for HEAD or a body unread, the body
// against the schema of its media type.
func checkItself(ctx context.Context, req *http.Request, route *routers.Route, status int, header http.Header, body []byte, head, unread bool) []Finding {
	declared := Declared(route.Operation, status)
	if declared == nil {
		return []Finding{{Reason: "status", Detail: fmt.Sprintf("status %d is not declared and there is no default", status)}}
	}
	out := headerValues(ctx, req, route, declared, header)
	content := declared.Content
	ct := header.Get("Content-Type")
	if head {
		// No body, but the media type the GET would have.
		if ct != "" && len(content) > 0 && content.Get(ct) == nil {
			out = append(out, Finding{Reason: "content-type", Detail: "a media type this status does not declare"})
		}
		return out
	}
	if len(body) == 0 {
		return out
	}
	if len(content) == 0 {
		return append(out, Finding{Reason: "body", Pointer: "/", Detail: NoContent})
	}
	mt := content.Get(ct)
	if mt == nil {
		return append(out, Finding{Reason: "content-type", Detail: "a media type this status does not declare"})
	}
	if unread || mt.Schema == nil || mt.Schema.Value == nil || !IsJSON(ct) {
		return out
	}
	var v any
	if json.Unmarshal(body, &v) != nil {
		return append(out, Finding{Reason: "body", Pointer: "/", Detail: "the body cannot be read as its media type"})
	}
	opts := append([]openapi3.SchemaValidationOption{openapi3.MultiErrors(), openapi3.VisitAsResponse()}, formats.Options...)
	if route.Spec != nil && route.Spec.IsOpenAPI31OrLater() {
		// JSON Schema 2020-12 (const, type lists...), as openapi3filter
		// checks the other statuses of such a document.
		opts = append(opts, openapi3.EnableJSONSchema2020())
	}
	if err := mt.Schema.Value.VisitJSON(v, opts...); err != nil {
		out = append(out, findings(err, mt.Schema.Value, v)...)
	}
	return out
}

// Readable reports whether the body of an answer with header can be
// checked: not compressed (Content-Encoding), and of a media type
// openapi3filter decodes (JSON, text/plain, a form, YAML, CSV...; not
// HTML, XML or an event stream, whose status, headers and media type are
// checked alone).
func Readable(header http.Header) bool {
	if enc := header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		return false
	}
	mt, _, ok := mediaType(header.Get("Content-Type"))
	return ok && Decodable(mt)
}

// mediaType is the media type of a Content-Type ct as openapi3filter
// reads it, lower case: the type before its parameters, whether they parse
// or not (badParams: "; charset", a parameter given twice); ok is false
// when there is no type to read.
func mediaType(ct string) (mt string, badParams, ok bool) {
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil {
		return mt, false, true
	}
	before, _, hasParams := strings.Cut(ct, ";")
	if mt, _, err := mime.ParseMediaType(before); err == nil && hasParams {
		return mt, true, true
	}
	return "", false, false
}

// Decodable reports whether openapi3filter decodes a body of the media
// type mt (lower case, without parameters) to validate it: a decoder of
// its own, a +json suffix, or a decoder of every type.
func Decodable(mt string) bool {
	return openapi3filter.RegisteredBodyDecoder(mt) != nil || strings.HasSuffix(mt, "+json") || openapi3filter.RegisteredBodyDecoder("*/*") != nil
}

// IsJSON reports whether contentType is a JSON media type (application/json
// or a +json suffix), read as openapi3filter reads it: the type before
// any parameter, parameters that do not parse ("; charset") included.
func IsJSON(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// TypeParameters finds a Content-Type whose parameters do not parse
// ("application/json; charset", a parameter given twice): the answer is
// read all the same, by the type before them. It also finds a
// Content-Type, Content-Encoding or Content-Length given twice: the check
// reads the first, a client may take the last (a browser does a type's).
func TypeParameters(header http.Header) []Finding {
	var out []Finding
	for _, name := range []string{"Content-Type", "Content-Encoding", "Content-Length"} {
		if len(header[name]) > 1 {
			reason := "header"
			if name == "Content-Type" {
				reason = "content-type"
			}
			out = append(out, Finding{Reason: reason, Detail: name + " given more than once"})
		}
	}
	if _, bad, _ := mediaType(header.Get("Content-Type")); bad {
		out = append(out, Finding{Reason: "content-type", Detail: "a Content-Type whose parameters do not parse"})
	}
	return out
}

// Headers checks the headers of an answer whose body is not checked, their
// values too (Check checks them with the body): TypeParameters, then, where
// the status declares headers, openapi3filter without the body, or, where
// it looks at nothing (HEAD, a redirect, 304), headerValues.
func Headers(ctx context.Context, req *http.Request, route *routers.Route, status int, header http.Header) []Finding {
	out := TypeParameters(header)
	declared := Declared(route.Operation, status)
	if declared == nil || len(declared.Headers) == 0 {
		return out
	}
	out = append(out, repeated(declared, header)...)
	if req.Method == http.MethodHead || unvalidated(status) {
		return append(out, headerValues(ctx, req, route, declared, header)...)
	}
	return append(out, validate(ctx, req, route, status, header, nil, headersOnly)...)
}

// repeated finds a header declared as one number or boolean given more
// than once: openapi3filter checks the first, a client may join them or
// take the last. A string may be a list whose members go on lines of
// their own (WWW-Authenticate, Link, RateLimit), and an array is one.
func repeated(declared *openapi3.Response, header http.Header) []Finding {
	if declared == nil {
		return nil
	}
	var out []Finding
	for name, h := range declared.Headers {
		key := http.CanonicalHeaderKey(name)
		if len(header[key]) < 2 || h == nil || h.Value == nil || h.Value.Schema == nil || h.Value.Schema.Value == nil {
			continue
		}
		if t := h.Value.Schema.Value.Type; t == nil || !t.Is("integer") && !t.Is("number") && !t.Is("boolean") {
			continue
		}
		out = append(out, Finding{Reason: "header", Detail: fmt.Sprintf("response header %q given more than once", name)})
	}
	if len(out) > 1 {
		sort.Slice(out, func(i, j int) bool { return out[i].Detail < out[j].Detail })
	}
	return out
}

// headerValues checks the headers declared for an answer that
// openapi3filter passes without a look (HEAD; 301, 304, 307, 308), their
// values too: it is asked about a GET answered 200 by an operation that
// declares only this response, without its body.
func headerValues(ctx context.Context, req *http.Request, route *routers.Route, declared *openapi3.Response, header http.Header) []Finding {
	if len(declared.Headers) == 0 {
		return nil
	}
	get := req.WithContext(ctx)
	get.Method = http.MethodGet
	var out []Finding
	// One at a time: openapi3filter says the first header at fault only.
	for _, name := range slices.Sorted(maps.Keys(declared.Headers)) {
		one := *declared
		one.Headers = openapi3.Headers{name: declared.Headers[name]}
		op := *route.Operation
		op.Responses = openapi3.NewResponses(openapi3.WithStatus(http.StatusOK, &openapi3.ResponseRef{Value: &one}))
		as := *route
		as.Operation = &op
		out = append(out, validate(ctx, get, &as, http.StatusOK, header, nil, headersOnly)...)
	}
	return out
}

// findings are err's, the pointers of a body (its decoded value, nil
// when it is not JSON) read along its schema root.
func findings(err error, root *openapi3.Schema, body any) []Finding {
	if re, ok := err.(*openapi3filter.ResponseError); ok && strings.HasPrefix(re.Reason, reasonType) {
		// A media type the status does not declare, as checkItself says it;
		// the reason quotes the answer's value.
		return []Finding{{Reason: "content-type", Detail: "a media type this status does not declare"}}
	}
	if re, ok := err.(*openapi3filter.ResponseError); ok && headerReason(re.Reason) {
		// A header's value, whatever the schema's error inside says.
		return []Finding{{Reason: "header", Detail: strings.TrimSpace(re.Reason)}}
	}
	var multi openapi3.MultiError
	if errors.As(err, &multi) {
		var out []Finding
		for _, e := range multi {
			out = append(out, findings(e, root, body)...)
		}
		return out
	}
	var se *openapi3.SchemaError
	if errors.As(err, &se) {
		detail := se.Reason
		if strings.HasPrefix(detail, "property ") && strings.HasSuffix(detail, " is unsupported") {
			// It quotes the answer's key, which in a map is its data (an
			// email, a key id).
			detail = "a property the schema does not allow"
		}
		if se.Schema == nil {
			// An OpenAPI 3.1 document's schemas are JSON Schema, whose
			// validator (santhosh-tekuri/jsonschema) quotes the value in
			// its reason ("'ann@example.com' does not match pattern"): the
			// keyword alone is said.
			detail = "the value breaks its schema"
			if se.SchemaField != "" {
				detail = "the value breaks the schema's " + strconv.Quote(se.SchemaField)
			}
		}
		return []Finding{{Reason: "body", Pointer: Pointer(keyless(root, body, se.JSONPointer())), Detail: detail}}
	}
	var re *openapi3filter.ResponseError
	if errors.As(err, &re) {
		// A schema's findings inside (the body's, with their pointers);
		// anything else (a header that cannot be decoded) is said by the
		// outer reason.
		var se *openapi3.SchemaError
		var multi openapi3.MultiError
		if re.Err != nil && !errors.Is(re.Err, re) && (errors.As(re.Err, &se) || errors.As(re.Err, &multi)) && !headerReason(re.Reason) {
			if inner := findings(re.Err, root, body); len(inner) > 0 && inner[0].Reason == "body" {
				return inner
			}
		}
		f := Finding{Reason: "body", Detail: strings.TrimSpace(re.Reason)}
		switch {
		case re.Reason == reasonStatus:
			f.Reason = "status"
		case strings.HasPrefix(re.Reason, reasonType):
			f.Reason = "content-type"
		case headerReason(re.Reason):
			f.Reason = "header"
		default:
			f.Pointer = "/"
		}
		return []Finding{f}
	}
	return []Finding{{Reason: "body", Pointer: "/", Detail: "the body cannot be read as its media type"}}
}

// openapi3filter's reasons for an answer (ValidateResponse), read by
// their fixed beginnings: the rest may quote a schema's name
// ("#/components/schemas/PageHeader"), which says nothing of the finding.
const (
	reasonStatus = "status is not supported"
	reasonType   = "response header Content-Type has unexpected value"
)

// headerReason reports whether an openapi3filter reason is a declared
// header's: missing, not decoded, or not matching its schema.
func headerReason(reason string) bool {
	for _, p := range []string{"response header ", "unable to decode header ", "unable to get header "} {
		if strings.HasPrefix(reason, p) {
			return true
		}
	}
	return false
}

// Pointer is a JSON pointer (RFC 6901) of parts: "/" for the whole body.
func Pointer(parts []string) string {
	if len(parts) == 0 {
		return "/"
	}
	esc := make([]string, len(parts))
	for i, p := range parts {
		esc[i] = strings.NewReplacer("~", "~0", "/", "~1").Replace(p)
	}
	return "/" + strings.Join(esc, "/")
}

// keyless returns parts, a path into v, a value of schema s, with every
// name that is the value's data written "*": a key of an object that the
// schema does not declare as a property (a map's key, matched by
// additionalProperties or patternProperties), or any name where neither
// the value nor the schema is known. An array's index is kept. A finding
// never quotes the answer, and a map's key is data (an email, a card
// number, a key id). v is the decoded body, nil when it is not JSON.
func keyless(s *openapi3.Schema, v any, parts []string) []string {
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = "*"
		n, isIndex := index(p)
		if a, ok := v.([]any); ok {
			if v = nil; isIndex && n < len(a) {
				out[i], v = p, a[n]
			}
			s = items(s, 0)
			continue
		}
		if v == nil && s != nil && s.Type.Is("array") && s.Items != nil && isIndex {
			// Not JSON: an index where the schema is an array's and
			// nothing else's (not a map's too, nor composed).
			out[i], s = p, s.Items.Value
			continue
		}
		c, declared := property(s, p, 0)
		if declared {
			out[i] = p
		}
		if o, ok := v.(map[string]any); ok {
			v = o[p]
		} else {
			v = nil
		}
		s = c
	}
	return out
}

// index reads p as an array's index, written as JSON pointers write one.
func index(p string) (int, bool) {
	n, err := strconv.Atoi(p)
	return n, err == nil && n >= 0 && strconv.Itoa(n) == p
}

// property is the schema of s's property name, and whether s (or a
// schema it is composed of) declares it; else the schema of its
// additional properties, if any.
func property(s *openapi3.Schema, name string, depth int) (*openapi3.Schema, bool) {
	if s == nil || depth > 8 {
		return nil, false
	}
	if prop := s.Properties[name]; prop != nil {
		return prop.Value, true
	}
	var extra *openapi3.Schema
	if ap := s.AdditionalProperties.Schema; ap != nil {
		extra = ap.Value
	}
	for _, list := range []openapi3.SchemaRefs{s.AllOf, s.AnyOf, s.OneOf} {
		for _, ref := range list {
			if ref == nil {
				continue
			}
			c, declared := property(ref.Value, name, depth+1)
			if declared {
				return c, true
			}
			if extra == nil {
				extra = c
			}
		}
	}
	return extra, false
}

// items is the schema of s's items, or of the first schema it is composed
// of that has them.
func items(s *openapi3.Schema, depth int) *openapi3.Schema {
	if s == nil || depth > 8 {
		return nil
	}
	if s.Items != nil {
		return s.Items.Value
	}
	for _, list := range []openapi3.SchemaRefs{s.AllOf, s.AnyOf, s.OneOf} {
		for _, ref := range list {
			if ref == nil {
				continue
			}
			if it := items(ref.Value, depth+1); it != nil {
				return it
			}
		}
	}
	return nil
}
