package service_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/service"
)

// A handler's panic is answered 500, counted and logged (with its stack)
// as any request; one after its answer began cuts the connection, as
// net/http does, instead of ending the answer's 200 with a problem glued
// to its body.
func TestHandlerPanics(t *testing.T) {
	app := testApp()
	routes := app.Routes
	app.Routes = func(r chi.Router, d *service.Deps) error {
		if err := routes(r, d); err != nil {
			return err
		}
		r.Get("/healthz", func(w http.ResponseWriter, req *http.Request) {
			if req.URL.Query().Has("fail") {
				d.Errors.Response(w, req, errors.New("disk on fire"))
				return
			}
			w.Header().Set("Set-Cookie", "leak=1")
			if req.URL.Query().Has("late") {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"status":`)
				http.NewResponseController(w).Flush()
			}
			panic("boom")
		})
		return nil
	}
	var logs syncBuffer
	env := map[string]string{"SPECGUARD_DATA_DIR": t.TempDir(), "SPECGUARD_ADMIN_ADDR": "off"}
	srv, err := service.Build(context.Background(), app, nil, func(k string) string { return env[k] }, &logs, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ts := httptest.NewServer(srv.Handler)
	defer ts.Close()

	resp, err := http.Get(ts.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || !strings.Contains(string(body), "urn:specguard:problem:internal") || resp.Header.Get("Set-Cookie") != "" {
		t.Errorf("a panic before the answer: %d %v %s, want a 500 problem without the handler's headers", resp.StatusCode, resp.Header, body)
	}
	panicID := resp.Header.Get("X-Request-Id")
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(panicID) {
		t.Errorf("a panic's 500: X-Request-Id %q, want its request's id", panicID)
	}
	if resp, err := http.Get(ts.URL + "/healthz?late"); err == nil {
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Errorf("a panic after the answer began: %d %q read whole, want the connection cut", resp.StatusCode, body)
		}
	}
	var metrics strings.Builder
	rec := httptest.NewRecorder()
	srv.Deps.Metrics.AdminHandler(false).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	metrics.WriteString(rec.Body.String())
	if !strings.Contains(metrics.String(), `specguard_http_requests_total{operation="healthz",status="500"} 2`) {
		t.Errorf("the two panics are not counted as 500s:\n%s", grepLines(metrics.String(), "specguard_http_requests_total"))
	}
	out := logs.String()
	if n := strings.Count(out, `"msg":"request"`); n != 2 || strings.Count(out, `"status":500`) != 2 {
		t.Errorf("%d request lines, want both panics logged with status 500:\n%s", n, out)
	}
	if !strings.Contains(out, `"msg":"panic","request_id":"`+panicID+`"`) || !strings.Contains(out, `"msg":"request","request_id":"`+panicID+`"`) {
		t.Errorf("no panic line and request line with the id the client got, %s:\n%.2000s", panicID, out)
	}
	panics := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, `"msg":"panic"`) {
			panics++
			if !strings.Contains(line, `"stack":"goroutine`) || !strings.Contains(line, `"operation":"healthz"`) || !strings.Contains(line, `"method":"GET"`) {
				t.Errorf("a panic line without the method, operation and stack: %.300s", line)
			}
		}
	}
	if panics != 2 {
		t.Errorf("%d panic lines, want 2:\n%.2000s", panics, out)
	}

	// A handler's error: its log line names the request the client can
	// quote, and two requests have two ids.
	resp, err = http.Get(ts.URL + "/healthz?fail")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	failID := resp.Header.Get("X-Request-Id")
	if resp.StatusCode != 500 || failID == "" || failID == panicID {
		t.Errorf("a handler's error: %d, X-Request-Id %q (the panic's was %q), want 500 with an id of its own", resp.StatusCode, failID, panicID)
	}
	if out := logs.String(); !strings.Contains(out, `"msg":"handler failed","request_id":"`+failID+`"`) {
		t.Errorf("no handler-failed line with the id the client got, %s:\n%.3000s", failID, out)
	}
}

// grepLines returns the lines of s that start with prefix.
func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// An operation at /docs or under it is refused before anything is
// written: the docs page answered those paths before the guard, and the
// operation's handler was never reached (a plain-text 404).
func TestOperationUnderDocsRefused(t *testing.T) {
	app := testApp()
	app.Spec = []byte(strings.Replace(string(app.Spec), "\npaths:\n", `
paths:
  /docs/{id}:
    get:
      operationId: getDoc
      security: []
      x-rate-limit: false
      parameters:
        - { name: id, in: path, required: true, schema: { type: string } }
      responses:
        '200': { description: A document., content: { application/json: { schema: { type: object } } } }
`, 1))
	routes := app.Routes
	app.Routes = func(r chi.Router, d *service.Deps) error {
		r.Get("/docs/{id}", func(http.ResponseWriter, *http.Request) {})
		return routes(r, d)
	}
	dir := t.TempDir()
	env := map[string]string{"SPECGUARD_DATA_DIR": dir, "SPECGUARD_ADMIN_ADDR": "off"}
	srv, err := service.Build(context.Background(), app, nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil {
		srv.Close()
		t.Fatal("Build served an operation under /docs that the docs page shadows")
	}
	if want := "GET /docs/{id} (getDoc): /docs and the paths under it are the docs page's"; !strings.Contains(err.Error(), want) {
		t.Errorf("Build: %v, want an error with %q", err, want)
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Errorf("the refused start wrote %d entries into the data directory", len(entries))
	}
}
