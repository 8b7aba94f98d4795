// Package respcheck checks one answer against what an OpenAPI document
// declares for its operation (kin-openapi's ValidateResponse), and says
// what breaks it in findings that name the JSON pointer of a body at
// fault, never a value of the answer. The guard (at run time) and conform
// (from outside) share it.
package respcheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
)

// Finding is one way an answer breaks the document.
type Finding struct {
	Reason  string // "status", "header", "content-type" or "body"
	Pointer string // the body's JSON pointer at fault ("/" for all of it); empty unless Reason is "body"
	Detail  string // what the document asks there
}

var options = &openapi3filter.Options{
	IncludeResponseStatus: true,
	MultiError:            true,
	AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
}

// Check checks an answer of req's operation (route) against the document:
// its status (or default), the headers it declares required, and body
// against its media type's schema.
func Check(ctx context.Context, req *http.Request, route *routers.Route, status int, header http.Header, body []byte) []Finding {
	err := openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, Route: route, Options: options},
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                options,
	})
	if err == nil {
		return nil
	}
	return findings(err)
}

// MissingHeaders checks only the headers declared marks required: for an
// answer whose body is not checked (Check checks them too).
func MissingHeaders(declared *openapi3.Response, header http.Header) []Finding {
	var out []Finding
	for name, h := range declared.Headers {
		if h.Value != nil && h.Value.Required && header.Get(name) == "" {
			out = append(out, Finding{Reason: "header", Detail: fmt.Sprintf("response header %q missing", name)})
		}
	}
	return out
}

func findings(err error) []Finding {
	var multi openapi3.MultiError
	if errors.As(err, &multi) {
		var out []Finding
		for _, e := range multi {
			out = append(out, findings(e)...)
		}
		return out
	}
	var se *openapi3.SchemaError
	if errors.As(err, &se) {
		return []Finding{{Reason: "body", Pointer: Pointer(se.JSONPointer()), Detail: se.Reason}}
	}
	var re *openapi3filter.ResponseError
	if errors.As(err, &re) {
		if re.Err != nil && !errors.Is(re.Err, re) {
			if inner := findings(re.Err); len(inner) > 0 && inner[0].Reason == "body" {
				return inner
			}
		}
		f := Finding{Reason: "body", Detail: strings.TrimSpace(re.Reason)}
		switch lower := strings.ToLower(re.Reason); {
		case strings.Contains(lower, "status"):
			f.Reason = "status"
		case strings.Contains(lower, "content-type") || strings.Contains(lower, "content type"):
			f.Reason = "content-type"
		case strings.Contains(lower, "header"):
			f.Reason = "header"
		default:
			f.Pointer = "/"
		}
		return []Finding{f}
	}
	return []Finding{{Reason: "body", Pointer: "/", Detail: "the body cannot be read as its media type"}}
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
