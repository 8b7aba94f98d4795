package guard_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/problem"
)

const malformedSpec = `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /token:
    post:
      operationId: token
      security: []
      x-rate-limit: false
      requestBody:
        required: true
        content:
          application/x-www-form-urlencoded:
            schema:
              type: object
              required: [grant_type]
              properties:
                grant_type: {type: string, enum: [password]}
      responses: {'200': {description: ok}, '400': {description: refused}}
  /other:
    post:
      operationId: other
      security: []
      x-rate-limit: false
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, required: [name], properties: {name: {type: string}}}
      responses: {'200': {description: ok}}
`

// An operation whose protocol fixes the form of its errors answers what
// request validation refuses its own way (WithMalformedAnswer), given the
// problem the guard would have written; the other operations keep the
// problem, and an answer for an operation the document lacks is refused.
func TestMalformedAnswer(t *testing.T) {
	table, err := policy.Compile("t.yaml", []byte(malformedSpec))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	ok := func(w http.ResponseWriter, _ *http.Request) {}
	r.Post("/token", ok)
	r.Post("/other", ok)
	var got []*problem.Problem
	answer := func(w http.ResponseWriter, _ *http.Request, p *problem.Problem) {
		got = append(got, p)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"invalid_request"}`))
	}
	if _, err := guard.New(table, r, guard.WithMalformedAnswer("tokn", answer)); err == nil || !strings.Contains(err.Error(), `WithMalformedAnswer("tokn"): t.yaml has no such operation`) {
		t.Errorf("an answer for no operation: %v", err)
	}
	g, err := guard.New(table, r, guard.WithMalformedAnswer("token", answer), guard.WithMaxBodyBytes(64))
	if err != nil {
		t.Fatal(err)
	}
	send := func(path, contentType, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", path, strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		w := httptest.NewRecorder()
		g.ServeHTTP(w, req)
		return w
	}
	for _, c := range []struct{ contentType, body, field string }{
		{"application/x-www-form-urlencoded", "grant_type=code", "body.grant_type"},
		{"application/x-www-form-urlencoded", "grant_type=password&grant_type=password", "body.grant_type"},
		{"application/json", `{"grant_type":"password"}`, "body"},
		{"application/x-www-form-urlencoded", "grant_type=password&x=" + strings.Repeat("a", 100), ""},
	} {
		got = nil
		w := send("/token", c.contentType, c.body)
		if w.Code != 400 || w.Header().Get("Content-Type") != "application/json" || len(got) != 1 {
			t.Errorf("%s %.40s: %d %s %s, answered %d times; want the operation's answer once", c.contentType, c.body, w.Code, w.Header().Get("Content-Type"), w.Body, len(got))
			continue
		}
		if c.field == "" {
			if got[0].Status != http.StatusRequestEntityTooLarge {
				t.Errorf("a body over the limit: the problem given %+v, want 413", got[0])
			}
		} else if got[0].Status != 400 || len(got[0].Errors) == 0 || got[0].Errors[0].Field != c.field {
			t.Errorf("%s %.40s: the problem given %+v, want 400 naming %s", c.contentType, c.body, got[0], c.field)
		}
	}
	got = nil
	if w := send("/other", "application/json", `{}`); w.Code != 400 || w.Header().Get("Content-Type") != "application/problem+json" || len(got) != 0 {
		t.Errorf("another operation: %d %s, want its problem", w.Code, w.Header().Get("Content-Type"))
	}
}
