package guard_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/oapi-codegen/runtime"
)

// The validator compares numbers as float64s; a generated handler binds
// an integer exactly and a number of format float into a float32. What
// the schema refuses as the handler has the number must not reach it.
func TestNumbersAreCheckedAsTheHandlerBindsThem(t *testing.T) {
	type body struct {
		Cents  *int64     `json:"cents,omitempty"`
		Floor  *int64     `json:"floor,omitempty"`
		Tens   *int64     `json:"tens,omitempty"`
		Code   *int64     `json:"code,omitempty"`
		Far    *int64     `json:"far,omitempty"`
		Rate   *float32   `json:"rate,omitempty"`
		Counts *[]int64   `json:"counts,omitempty"`
		Both   *int64     `json:"both,omitempty"`
		Either *int64     `json:"either,omitempty"`
		Rates  *[]float32 `json:"rates,omitempty"`
	}
	var got *body
	g := guarded(t, `openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit: false
paths:
  /pay:
    post:
      operationId: pay
      security: []
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              additionalProperties: false
              properties:
                cents: {type: integer, format: int64, minimum: 1, maximum: 10000000000000000}
                floor: {type: integer, format: int64, minimum: -10000000000000000}
                tens: {type: integer, format: int64, multipleOf: 10}
                code: {type: integer, format: int64, enum: [10000000000000010]}
                far: {type: integer, format: int64, enum: [10000000000000001]}
                rate: {type: number, format: float, minimum: 0, exclusiveMinimum: true, maximum: 1}
                counts: {type: array, items: {type: integer, format: int64, maximum: 10000000000000000}}
                both: {allOf: [{type: integer, format: int64, maximum: 10000000000000000}]}
                either: {anyOf: [{type: integer, format: int64}]}
                rates: {type: array, items: {type: number, format: float, maximum: 0.1}}
      responses: {"200": {description: ok}, "400": {description: no}}
`, func(w http.ResponseWriter, r *http.Request) {
		var b body
		if err := runtime.BindJSONBody(r, &b); err != nil { // as the generated strict handler
			http.Error(w, err.Error(), 400)
			return
		}
		got = &b
	})
	for _, c := range []struct {
		body  string
		code  int
		field string
	}{
		{`{"cents": 10000000000000001}`, 400, "body.cents"},
		{`{"cents": 10000000000000000}`, 200, ""},
		{`{"cents": 9007199254740993}`, 200, ""},
		{`{"floor": -10000000000000001}`, 400, "body.floor"},
		{`{"floor": -9999999999999999}`, 200, ""},
		{`{"tens": 10000000000000001}`, 400, "body.tens"},
		{`{"tens": 10000000000000010}`, 200, ""},
		{`{"code": 10000000000000010}`, 200, ""},
		// An enum value a float64 cannot hold is read as the float64 it
		// rounds to, 10000000000000000, and its digits are lost: the value
		// the document names passes, as every one that rounds to it, as
		// the validator compares them.
		{`{"far": 10000000000000001}`, 200, ""},
		{`{"far": 10000000000000000}`, 200, ""},
		{`{"far": 10000000000000002}`, 400, "body.far"},
		{`{"rate": 1e-50}`, 400, "body.rate"},
		{`{"rate": 1e-45}`, 200, ""},
		{`{"rate": 0.5}`, 200, ""},
		{`{"counts": [1, 10000000000000001]}`, 400, "body.counts.1"},
		{`{"both": 10000000000000001}`, 400, "body.both"},
		{`{"either": 10000000000000001}`, 200, ""}, // nothing bounds it
		{`{"rates": [0.1]}`, 200, ""},
		{`{"rates": [0.10000000149011612]}`, 400, "body.rates.0"}, // float32(0.1), over 0.1 as written
	} {
		got = nil
		r := httptest.NewRequest("POST", "/pay", strings.NewReader(c.body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		g.ServeHTTP(w, r)
		if !answered(w, c.code, c.field) || (got != nil) != (c.code == 200) {
			t.Errorf("%s: %d %s (handler reached: %v), want %d naming %q", c.body, w.Code, w.Body, got != nil, c.code, c.field)
		}
	}
}

// So are the parameters': the validator compares their numbers as
// float64s too, and a handler parses an integer exactly, a float into a
// float32.
func TestNumberParametersAreCheckedAsTheHandlerBindsThem(t *testing.T) {
	reached := false
	g := guarded(t, `openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit: false
paths:
  /q/{id}:
    get:
      operationId: q
      security: []
      parameters:
        - {name: id, in: path, required: true, schema: {type: integer, format: int64, minimum: -10000000000000000}}
        - {name: n, in: query, schema: {type: integer, format: int64, maximum: 10000000000000000}}
        - {name: f, in: query, schema: {type: number, format: float, minimum: 0, exclusiveMinimum: true}}
        - {name: X-N, in: header, schema: {type: integer, format: int64, maximum: 10000000000000000}}
        - {name: c, in: cookie, schema: {type: integer, format: int64, multipleOf: 10}}
        - {name: ns, in: query, schema: {type: array, items: {type: integer, format: int64, maximum: 10000000000000000}}}
        - {name: cs, in: query, explode: false, schema: {type: array, items: {type: integer, format: int64, maximum: 10000000000000000}}}
        - {name: X-NS, in: header, schema: {type: array, items: {type: integer, format: int64, maximum: 10000000000000000}}}
      responses: {"200": {description: ok}, "400": {description: no}}
`, func(http.ResponseWriter, *http.Request) { reached = true })
	for _, c := range []struct {
		target, header, cookie string
		code                   int
		field                  string
	}{
		{"/q/1?n=10000000000000001", "", "", 400, "query.n"},
		{"/q/1?n=%2B10000000000000001", "", "", 400, "query.n"},
		{"/q/1?n=10000000000000000", "", "", 200, ""},
		{"/q/1?f=1e-50", "", "", 400, "query.f"},
		{"/q/1?f=0.5", "", "", 200, ""},
		{"/q/-10000000000000001", "", "", 400, "path.id"},
		{"/q/-9999999999999999", "", "", 200, ""},
		{"/q/1", "10000000000000001", "", 400, "header.X-N"},
		{"/q/1", "", "10000000000000001", 400, "cookie.c"},
		{"/q/1", "", "10000000000000010", 200, ""},
		{"/q/1?ns=1&ns=10000000000000001", "", "", 400, "query.ns.1"},
		{"/q/1?ns=1&ns=10000000000000000", "", "", 200, ""},
		{"/q/1?cs=1,10000000000000001", "", "", 400, "query.cs.1"},
		{"/q/1?cs=1,10000000000000000", "", "", 200, ""},
	} {
		reached = false
		r := httptest.NewRequest("GET", c.target, nil)
		if c.header != "" {
			r.Header.Set("X-N", c.header)
		}
		if c.cookie != "" {
			r.AddCookie(&http.Cookie{Name: "c", Value: c.cookie})
		}
		w := httptest.NewRecorder()
		g.ServeHTTP(w, r)
		if !answered(w, c.code, c.field) || reached != (c.code == 200) {
			t.Errorf("%s (header %q, cookie %q): %d %s (handler reached: %v), want %d naming %q", c.target, c.header, c.cookie, w.Code, w.Body, reached, c.code, c.field)
		}
	}
	for value, code := range map[string]int{"1,10000000000000001": 400, "1,10000000000000000": 200} {
		reached = false
		r := httptest.NewRequest("GET", "/q/1", nil)
		r.Header.Set("X-NS", value)
		w := httptest.NewRecorder()
		g.ServeHTTP(w, r)
		if !answered(w, code, map[bool]string{true: "header.X-NS.1"}[code == 400]) || reached != (code == 200) {
			t.Errorf("X-NS: %s: %d %s (handler reached: %v), want %d", value, w.Code, w.Body, reached, code)
		}
	}
}

// And a parameter whose value is JSON, which the handler decodes as a
// body.
func TestNumbersOfJSONParametersAreCheckedAsTheHandlerBindsThem(t *testing.T) {
	reached := false
	g := guarded(t, `openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit: false
paths:
  /q:
    get:
      operationId: q
      security: []
      parameters:
        - name: filter
          in: query
          content:
            application/json:
              schema: {type: object, properties: {max: {type: integer, format: int64, maximum: 10000000000000000}}}
      responses: {"200": {description: ok}, "400": {description: no}}
`, func(http.ResponseWriter, *http.Request) { reached = true })
	for _, c := range []struct {
		filter string
		code   int
	}{
		{`{"max":10000000000000001}`, 400},
		{`{"max":10000000000000000}`, 200},
	} {
		reached = false
		r := httptest.NewRequest("GET", "/q?filter="+url.QueryEscape(c.filter), nil)
		w := httptest.NewRecorder()
		g.ServeHTTP(w, r)
		if !answered(w, c.code, map[bool]string{true: "query.filter.max"}[c.code == 400]) || reached != (c.code == 200) {
			t.Errorf("filter=%s: %d %s (handler reached: %v), want %d", c.filter, w.Code, w.Body, reached, c.code)
		}
	}
}
