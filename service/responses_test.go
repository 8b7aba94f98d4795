package service_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/service"
)

const brokenOps = `  /broken:
    get:
      operationId: broken
      security: []
      x-rate-limit: false
      responses:
        '200':
          description: A thing.
          content:
            application/json:
              schema: {type: object, required: [id, secret], properties: {id: {type: string}, secret: {type: string}}}
`

// A handler's answer that breaks the document: with
// SPECGUARD_VALIDATE_RESPONSES=report (the default) it is sent as it is,
// counted (specguard_response_violations_total) and logged with the JSON
// pointer, never a value; with enforce it is answered 500 instead; off
// checks nothing.
func TestAnswersCheckedAgainstTheDocument(t *testing.T) {
	for _, mode := range []string{"", "report", "enforce", "off"} {
		t.Run("mode="+mode, func(t *testing.T) {
			env := map[string]string{"SPECGUARD_DATA_DIR": t.TempDir(), "SPECGUARD_ADMIN_ADDR": "off", "SPECGUARD_LOG_REQUESTS": "false", "SPECGUARD_VALIDATE_RESPONSES": mode}
			app := service.App{
				Name: "broken", SpecSource: "broken.yaml",
				Spec: []byte(strings.Replace(string(credentials.Fragment), "\npaths:\n", "\npaths:\n"+brokenOps, 1)),
				Routes: func(r chi.Router, _ *service.Deps) error {
					r.Get("/broken", func(w http.ResponseWriter, _ *http.Request) {
						w.Header().Set("Content-Type", "application/json")
						_, _ = io.WriteString(w, `{"id":"hunter2-value"}`) // no secret
					})
					return nil
				},
			}
			logs := &syncBuffer{}
			srv, err := service.Build(context.Background(), app, nil, func(k string) string { return env[k] }, logs, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(srv.Close)
			w := httptest.NewRecorder()
			srv.Handler.ServeHTTP(w, httptest.NewRequest("GET", "/broken", nil))
			metrics := httptest.NewRecorder()
			srv.Deps.Metrics.AdminHandler(false).ServeHTTP(metrics, httptest.NewRequest("GET", "/metrics", nil))
			counted := strings.Contains(metrics.Body.String(), `specguard_response_violations_total{operation="broken",reason="body"} 1`)
			logged := strings.Contains(logs.String(), `"pointer":"/secret"`)
			switch mode {
			case "off":
				if w.Code != 200 || counted || logged {
					t.Errorf("off: %d, counted %v, logged %v", w.Code, counted, logged)
				}
			case "enforce":
				if w.Code != 500 || !strings.Contains(w.Body.String(), "response-invalid") || strings.Contains(w.Body.String(), "hunter2") {
					t.Errorf("enforce: %d %s, want a 500 response-invalid with nothing of the answer", w.Code, w.Body.String())
				}
			default:
				if w.Code != 200 || w.Body.String() != `{"id":"hunter2-value"}` {
					t.Errorf("report: %d %s, want the answer unchanged", w.Code, w.Body.String())
				}
			}
			if mode != "off" && (!counted || !logged) {
				t.Errorf("%s: counted %v, logged %v:\n%s", mode, counted, logged, logs.String())
			}
			if strings.Contains(logs.String(), "hunter2") {
				t.Errorf("the log holds a value of the answer:\n%s", logs.String())
			}
		})
	}
	// A misspelt mode stops start-up, naming the variable.
	env := map[string]string{"SPECGUARD_DATA_DIR": t.TempDir(), "SPECGUARD_VALIDATE_RESPONSES": "strict"}
	if _, err := service.Build(context.Background(), testApp(), nil, func(k string) string { return env[k] }, io.Discard, io.Discard); err == nil ||
		err.Error() != `SPECGUARD_VALIDATE_RESPONSES: "strict": want off, report or enforce` {
		t.Errorf("SPECGUARD_VALIDATE_RESPONSES=strict: %v", err)
	}
}
