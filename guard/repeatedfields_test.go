package guard_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/policy"
)

// An answer with two Content-Type (or Content-Encoding) fields was
// checked by the first, application/json, and went out with both: a
// browser takes the last, text/html. It breaks the document, as a
// parameter given twice does (helper-174).
func TestRepeatedContentFields(t *testing.T) {
	table, err := policy.Compile("answers.yaml", []byte(answersDoc))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, second, want string
	}{
		{"Content-Type", "text/html", "getThing 200 content-type: Content-Type given more than once"},
		{"Content-Encoding", "identity", "getThing 200 header: Content-Encoding given more than once"},
	} {
		r := chi.NewRouter()
		r.Get("/things/{id}", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Version", "1")
			w.Header().Set("Content-Type", "application/json")
			if c.name == "Content-Encoding" {
				w.Header().Set("Content-Encoding", "identity")
			}
			w.Header().Add(c.name, c.second)
			_, _ = w.Write([]byte(`{"id":"<script>alert(1)</script>","count":1}`))
		})
		for _, mode := range []guard.ResponseMode{guard.ResponsesReport, guard.ResponsesEnforce} {
			g, reported := checking(t, table, r, mode)
			w := httptest.NewRecorder()
			g.ServeHTTP(w, httptest.NewRequest("GET", "/things/a", nil))
			if got := strings.Join(reported(), "\n"); got != c.want {
				t.Errorf("%s twice, %v: reported %q, want %q", c.name, mode, got, c.want)
			}
			if mode == guard.ResponsesEnforce && w.Code != http.StatusInternalServerError {
				t.Errorf("%s twice, enforced: answered %d with %q, want 500", c.name, w.Code, w.Header().Values(c.name))
			}
		}
	}
	// The control: one of each passes.
	r := chi.NewRouter()
	r.Get("/things/{id}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Version", "1")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"a","count":1}`))
	})
	g, reported := checking(t, table, r, guard.ResponsesEnforce)
	w := httptest.NewRecorder()
	g.ServeHTTP(w, httptest.NewRequest("GET", "/things/a", nil))
	if got := reported(); len(got) > 0 || w.Code != 200 {
		t.Errorf("one Content-Type: %d, reported %q", w.Code, got)
	}
}
