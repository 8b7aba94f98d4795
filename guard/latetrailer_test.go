package guard_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/policy"
)

// A Trailer announced after the status announces nothing (net/http sends
// the Trailer header as it was at WriteHeader): the required X-Version,
// set after it, went neither as a header nor as a trailer, and the answer
// breaks the document. Reported, it must be reported.
// A Trailer announced after the status goes nowhere, and so does the header
// it names: reported, the answer lacks it, as it does enforced
// (helper-174).
func TestTrailerAnnouncedLate(t *testing.T) {
	table, err := policy.Compile("answers.yaml", []byte(answersDoc))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Get("/things/{id}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.Header().Set("Trailer", "X-Version") // too late: goes nowhere
		w.Header().Set("X-Version", "1")
		_, _ = w.Write([]byte(`{"id":"a","count":1}`))
	})
	for _, sample := range []int{1, 2} { // body checked; then not
		g, reported := checking(t, table, r, guard.ResponsesReport, guard.WithResponseSample(sample))
		srv := httptest.NewServer(g)
		var sawHeader, sawTrailer string
		for i := range sample {
			resp, err := http.Get(srv.URL + "/things/a")
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if i == sample-1 {
				sawHeader, sawTrailer = resp.Header.Get("X-Version"), resp.Trailer.Get("X-Version")
			}
		}
		srv.Close()
		got := reported()
		if len(got) != sample || !strings.Contains(strings.Join(got, " "), `"X-Version" missing`) {
			t.Errorf("sample %d: the client got X-Version %q as a header, %q as a trailer; reported %q, want X-Version missing on each of %d answers",
				sample, sawHeader, sawTrailer, got, sample)
		}
	}
}
