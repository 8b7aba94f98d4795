package guard_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
)

const presentedSpec = `
openapi: 3.0.3
info: {title: notes, version: "1"}
paths:
  /notes:
    get:
      operationId: listNotes
      security: [{apiKey: []}]
      x-rate-limit:
        - {name: per-key, limit: 2, window: 1m, key: apikey, who: authenticated}
      responses: {'200': {description: ok}}
  /drafts:
    get:
      operationId: listDrafts
      security: [{cookie: []}]
      x-rate-limit:
        - {name: per-session, limit: 2, window: 1m, key: session, who: authenticated}
      responses: {'200': {description: ok}}
components:
  securitySchemes:
    apiKey: {type: apiKey, in: header, name: X-Notes-Key}
    cookie: {type: apiKey, in: cookie, name: __Host-notes}
`

// ownCredentials is an Authenticator of the app's own, as guard's ExampleNew
// writes one: its principals name no credential.
type ownCredentials map[string]string // credential → subject

func (k ownCredentials) Authenticate(_ context.Context, r *http.Request, s *policy.Scheme) (*security.Principal, error) {
	v := r.Header.Get(s.Param)
	if s.Type == policy.SchemeAPIKeyCookie {
		c, err := r.Cookie(s.Param)
		if err != nil {
			return nil, nil
		}
		v = c.Value
	}
	if v == "" {
		return nil, nil
	}
	sub, ok := k[v]
	if !ok {
		return nil, fmt.Errorf("%w: unknown credential", security.ErrInvalid)
	}
	return &security.Principal{Subject: sub}, nil
}

// A tier that counts by API key or by session skipped a caller whose
// principal names neither, so an authenticator of the app's own that names
// no credential had every request let through by it (helper-147). Such a
// caller is counted by the credential it presented.
func TestTierByKeyCountsWhatAnOwnAuthenticatorAdmitted(t *testing.T) {
	table, err := policy.Compile("notes.yaml", []byte(presentedSpec))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Get("/notes", func(http.ResponseWriter, *http.Request) {})
	r.Get("/drafts", func(http.ResponseWriter, *http.Request) {})
	auth := ownCredentials{"k-alice": "alice", "k-alice-2": "alice", "s-bob": "bob", "s-bob-2": "bob"}
	g, err := guard.New(table, r,
		guard.WithAuthenticator(policy.SchemeAPIKeyHeader, auth),
		guard.WithAuthenticator(policy.SchemeAPIKeyCookie, auth),
		guard.WithLimiter(limits.New(limits.NewMemoryStore(nil))))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path      string
		with      func(v string) func(*http.Request)
		one, more string
	}{
		{"/notes", func(v string) func(*http.Request) { return withHeader("X-Notes-Key", v) }, "k-alice", "k-alice-2"},
		{"/drafts", func(v string) func(*http.Request) {
			return func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "__Host-notes", Value: v}) }
		}, "s-bob", "s-bob-2"},
	} {
		var got []int
		for _, v := range []string{c.one, c.one, c.one, c.more} {
			w := serve(g, "GET", c.path, c.with(v))
			got = append(got, w.Code)
			if w.Header().Get("RateLimit-Policy") == "" {
				t.Errorf("GET %s: no RateLimit-Policy: the tier did not apply", c.path)
			}
		}
		// Two a minute for each credential: the third of one is refused,
		// another of the same account has its own.
		if want := []int{200, 200, 429, 200}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("GET %s with %s three times, then %s: %v, want %v", c.path, c.one, c.more, got, want)
		}
	}
	// A second value beside the one the authenticator reads, varied, is no
	// fresh budget: requests with several values share one.
	got := []int{}
	for i := range 3 {
		w := serve(g, "GET", "/notes", func(r *http.Request) {
			r.Header.Add("X-Notes-Key", "k-alice")
			r.Header.Add("X-Notes-Key", fmt.Sprintf("varied-%d", i))
		})
		got = append(got, w.Code)
	}
	if want := []int{200, 200, 429}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("GET /notes with k-alice and a varied second key, three times: %v, want %v", got, want)
	}
}
