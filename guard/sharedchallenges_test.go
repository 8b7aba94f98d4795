package guard_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
)

// addChallenge is a middleware outside the guard that adds a challenge of
// its own, per request, to every 401 (a DPoP nonce, say): an ordinary
// http.Header.Add on the guard's answer.
type addChallenge struct {
	http.ResponseWriter
	value string
}

func (a *addChallenge) WriteHeader(code int) {
	if code == http.StatusUnauthorized {
		a.Header().Add("WWW-Authenticate", a.value)
	}
	a.ResponseWriter.WriteHeader(code)
}

// The challenges of a 401 for missing credentials are the operation's,
// shared by every request: a header added by one request's middleware
// showed in another request's answer, as the slice had room for it.
func TestMissingChallengesAreNotSharedAcrossRequests(t *testing.T) {
	g := newEdges(t, nil).guard(t)
	do := func(nonce string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/either", nil)
		req.RemoteAddr = "192.0.2.1:1234"
		g.ServeHTTP(&addChallenge{ResponseWriter: rec, value: `DPoP algs="ES256", nonce="` + nonce + `"`}, req)
		return rec
	}
	first := do("first-request-nonce")
	want := slices.Clone(first.Header().Values("WWW-Authenticate"))
	do("second-request-nonce")
	if got := first.Header().Values("WWW-Authenticate"); !slices.Equal(got, want) {
		t.Errorf("the first answer's WWW-Authenticate changed when a second request was answered:\n was %q\n now %q", want, got)
	}
}

// The same, concurrently, as a server answers: go test -race reports the
// writes of two requests to one array.
func TestMissingChallengesAddedToConcurrently(t *testing.T) {
	g := newEdges(t, nil).guard(t)
	done := make(chan struct{})
	for i := range 2 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 200 {
				rec := httptest.NewRecorder()
				req := httptest.NewRequest("GET", "/either", nil)
				req.RemoteAddr = "192.0.2.1:1234"
				g.ServeHTTP(&addChallenge{ResponseWriter: rec, value: "DPoP nonce=\"" + string(rune('a'+i)) + "\""}, req)
			}
		}()
	}
	<-done
	<-done
}
