package guard_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/policy"
)

const hijackDoc = `openapi: 3.0.3
info: {title: ws, version: "1"}
paths:
  /ws:
    get:
      operationId: socket
      security: []
      x-rate-limit: false
      responses:
        '101': {description: upgraded}
        '200':
          description: ok
          headers:
            X-Version: {required: true, schema: {type: string}}
`

// upgradeOrFail is what a WebSocket library does: it asserts
// http.Hijacker, and when Hijack fails (HTTP/2, a writer that cannot)
// answers an error itself.
func upgradeOrFail(w http.ResponseWriter, _ *http.Request) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "no hijacker", http.StatusInternalServerError)
		return
	}
	if _, _, err := hj.Hijack(); err != nil {
		http.Error(w, "upgrade failed", http.StatusTeapot) // 418: not declared
		return
	}
}

// A handler whose hijack fails answers the failure itself: that status
// is the one traced and checked, not a 200 fixed by the attempt
// (helper-174).
func TestFailedHijackKeepsTheStatus(t *testing.T) {
	table, err := policy.Compile("ws.yaml", []byte(hijackDoc))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Get("/ws", upgradeOrFail)

	t.Run("traced", func(t *testing.T) {
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		g, err := guard.New(table, r, guard.WithTracerProvider(tp))
		if err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder() // cannot hijack
		g.ServeHTTP(w, httptest.NewRequest("GET", "/ws", nil))
		if w.Code != http.StatusTeapot {
			t.Fatalf("answered %d", w.Code)
		}
		seen := false
		for _, s := range rec.Ended() {
			if s.Name() != "GET /ws" {
				continue
			}
			for _, a := range s.Attributes() {
				if a.Key == attribute.Key("http.response.status_code") {
					seen = true
					if a.Value.AsInt64() != http.StatusTeapot {
						t.Errorf("span http.response.status_code = %d, the answer was %d", a.Value.AsInt64(), w.Code)
					}
				}
			}
		}
		if !seen {
			t.Error("no span GET /ws with http.response.status_code")
		}
	})

	t.Run("reported, body not sampled", func(t *testing.T) {
		g, reported := checking(t, table, r, guard.ResponsesReport, guard.WithResponseSample(2))
		for range 2 { // the first answer's body is checked, the second's not
			w := httptest.NewRecorder()
			g.ServeHTTP(w, httptest.NewRequest("GET", "/ws", nil))
			if w.Code != http.StatusTeapot {
				t.Fatalf("answered %d", w.Code)
			}
		}
		got := strings.Join(reported(), "\n")
		want := "socket 418 status: the document declares neither this status nor a default\n" +
			"socket 418 status: the document declares neither this status nor a default"
		if got != want {
			t.Errorf("reported:\n%s\nwant:\n%s", got, want)
		}
	})
}
