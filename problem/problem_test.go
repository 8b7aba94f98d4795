package problem_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/specguard/specguard/problem"
)

func TestWriterPrefixesBareTypes(t *testing.T) {
	for _, c := range []struct {
		prefix, typ, want string
	}{
		{"", "invalid-token", "urn:specguard:problem:invalid-token"},
		{"https://errors.example.com/", "invalid-token", "https://errors.example.com/invalid-token"},
		{"https://errors.example.com/", problem.QuotaExceeded, problem.QuotaExceeded},
		{"", "about:blank", "about:blank"},
	} {
		w := httptest.NewRecorder()
		problem.Writer{Prefix: c.prefix}.Write(w, &problem.Problem{Type: c.typ, Title: "t", Status: http.StatusTeapot})
		var got problem.Problem
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if got.Type != c.want || w.Code != http.StatusTeapot || got.Status != http.StatusTeapot {
			t.Errorf("prefix %q, type %q: wrote %d %+v, want type %q", c.prefix, c.typ, w.Code, got, c.want)
		}
		h := w.Header()
		if h.Get("Content-Type") != "application/problem+json" || h.Get("Cache-Control") != "no-store" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("headers %v", h)
		}
	}
}

func TestNamedProblems(t *testing.T) {
	var pw problem.Writer
	w := httptest.NewRecorder()
	pw.Unavailable(w, "try again")
	if w.Code != 503 || w.Header().Get("Retry-After") != "1" {
		t.Errorf("Unavailable: %d %v", w.Code, w.Header())
	}
	w = httptest.NewRecorder()
	pw.MethodNotAllowed(w, []string{"GET", "POST"})
	if w.Code != 405 || w.Header().Get("Allow") != "GET, POST" {
		t.Errorf("MethodNotAllowed: %d %v", w.Code, w.Header())
	}
	w = httptest.NewRecorder()
	pw.InvalidRequest(w, "bad", []problem.FieldError{{Field: "body.title", Message: "too long"}})
	var p problem.Problem
	_ = json.Unmarshal(w.Body.Bytes(), &p)
	if w.Code != 400 || len(p.Errors) != 1 || p.Errors[0].Field != "body.title" {
		t.Errorf("InvalidRequest: %d %+v", w.Code, p)
	}
}

func TestChallenge(t *testing.T) {
	for _, c := range []struct {
		c    problem.Challenge
		want string
	}{
		{problem.Challenge{Scheme: "Bearer", Realm: "api"}, `Bearer realm="api"`},
		{problem.Challenge{Scheme: "Bearer", Realm: "api", Error: "insufficient_scope", Description: "needs more", Scope: "a b"},
			`Bearer realm="api", error="insufficient_scope", error_description="needs more", scope="a b"`},
		{problem.Challenge{Scheme: "ApiKey", Realm: "api", Param: "X-Key", Error: "invalid_token"}, `ApiKey realm="api", header="X-Key", error="invalid_token"`},
		{problem.Challenge{Scheme: "Cookie", Realm: "api", Param: "sid"}, `Cookie realm="api", cookie="sid"`},
		// A quote, a backslash or a control character would end the value
		// or forge a parameter: they are dropped.
		{problem.Challenge{Scheme: "Bearer", Realm: `a"b`, Description: "x\", error=\"forged\\\r\n"},
			`Bearer realm="ab", error_description="x, error=forged"`},
	} {
		if got := c.c.String(); got != c.want {
			t.Errorf("%+v:\n got %s\nwant %s", c.c, got, c.want)
		}
	}
}
