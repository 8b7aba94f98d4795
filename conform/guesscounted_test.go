package conform_test

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/specguard/specguard/conform"
)

func guessDoc(burst int) string {
	return fmt.Sprintf(`openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /a:
    get:
      operationId: getA
      security: [{bearer: []}]
      x-rate-limit: {name: anon, limit: %d, window: 1m, key: ip, who: anonymous}
      responses:
        '200': {description: ok}
        '401': {description: no}
        '429': {description: slow down}
  /b:
    get:
      operationId: getB
      security: [{key: []}]
      x-rate-limit: false
      responses:
        '200': {description: ok}
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
    key: {type: apiKey, in: header, name: X-Key}
`, burst)
}

// guessingServer enforces the anonymous tier of guessDoc (limit calls a
// minute, no refill within the test) for callers without a credential,
// but counts each wrong credential in a bucket of its own, by its value:
// credentials can be guessed without end. The valid token is "good".
func guessingServer(limit int) http.Handler {
	var mu sync.Mutex
	used := map[string]int{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/a" || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
			w.Header().Set("Allow", "GET, HEAD")
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		auth := r.Header.Get("Authorization")
		if auth == "Bearer good" {
			w.WriteHeader(http.StatusOK)
			return
		}
		key := "ip"
		if auth != "" {
			key = "guess:" + auth // the defect: a wrong credential counted apart
		}
		mu.Lock()
		n := used[key]
		if n < limit {
			used[key] = n + 1
		}
		mu.Unlock()
		w.Header().Set("RateLimit-Policy", fmt.Sprintf(`"anon";q=%d;w=60`, limit))
		if n >= limit {
			w.Header().Set("RateLimit", `"anon";r=0;t=30`)
			w.Header().Set("Retry-After", "30")
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"title":"slow down","status":429,"violated-policies":["anon"]}`))
			return
		}
		w.Header().Set("RateLimit", fmt.Sprintf(`"anon";r=%d;t=30`, limit-n-1))
		if auth == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="x"`)
		} else {
			w.Header().Set("WWW-Authenticate", `Bearer realm="x", error="invalid_token"`)
		}
		w.WriteHeader(http.StatusUnauthorized)
	})
}

// A server that counts each wrong credential in a bucket of its own lets
// credentials be guessed without end: limit:anon fails it whatever its
// burst, and when its bucket was spent before the case. The guess resent
// the forged case's value, whose bucket that spent (r=0 read as counted),
// and the 429-at-once path sent none (helper-177).
func TestGuessCheckNotFooled(t *testing.T) {
	tok := conform.Credential{Name: "tok", Scheme: "bearer", Value: "good"}
	key := conform.Credential{Name: "k", Scheme: "key", Value: "k1"} // a scheme /a does not accept
	for _, c := range []struct {
		burst int
		creds []conform.Credential
		only  []string
	}{
		{5, []conform.Credential{tok}, []string{"limit:anon"}},
		{1, []conform.Credential{tok}, []string{"limit:anon"}},
		{2, []conform.Credential{tok}, []string{"limit:anon"}},
		{3, []conform.Credential{tok, key}, []string{"limit:anon", "no-credential"}},
	} {
		rep := runAgainst(t, guessDoc(c.burst), guessingServer(c.burst), c.creds, c.only...)
		t.Logf("burst %d: %s", c.burst, verdicts(rep))
		for _, res := range rep.Results {
			if res.Case == "limit:anon" && res.Verdict != conform.Fail {
				t.Errorf("burst %d: a server counting each wrong credential apart: limit:anon %s: %s", c.burst, res.Verdict, res.Detail)
			}
		}
	}
}

// dripServer enforces an anonymous tier of limit calls a second, a token
// bucket of burst limit refilled one call every second/limit, as the
// document declares: a wrong credential is counted as none, in the same
// bucket (correct). Only its credential check is slow (verify, before the
// count, as an introspection or a database lookup of a key is).
func dripServer(limit int, verify time.Duration) http.Handler {
	var mu sync.Mutex
	per := time.Second / time.Duration(limit)
	tokens, last := float64(limit), time.Now()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/a" || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
			w.Header().Set("Allow", "GET, HEAD")
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		auth := r.Header.Get("Authorization")
		if auth == "Bearer good" {
			w.WriteHeader(http.StatusOK)
			return
		}
		if auth != "" {
			time.Sleep(verify) // the credential is looked up, found wrong
		}
		mu.Lock()
		now := time.Now()
		tokens = math.Min(float64(limit), tokens+float64(now.Sub(last))/float64(per))
		last = now
		admitted := tokens >= 1
		if admitted {
			tokens--
		}
		left := int(tokens)
		mu.Unlock()
		w.Header().Set("RateLimit-Policy", fmt.Sprintf(`"anon";q=%d;w=1`, limit))
		if !admitted {
			w.Header().Set("RateLimit", `"anon";r=0;t=1`)
			w.Header().Set("Retry-After", "1")
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"title":"slow down","status":429,"violated-policies":["anon"]}`))
			return
		}
		w.Header().Set("RateLimit", fmt.Sprintf(`"anon";r=%d;t=1`, left))
		if auth == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="x"`)
		} else {
			w.Header().Set("WWW-Authenticate", `Bearer realm="x", error="invalid_token"`)
		}
		w.WriteHeader(http.StatusUnauthorized)
	})
}

// A server that counts a wrong credential as none, in the anonymous
// bucket, but whose bucket earns a call back while it checks the wrong
// credential (a tier of 20 a second, 50ms a call; a check of 60ms): the
// first guess is admitted with r=0, rightly, and so is the second. The
// guess check must not fail a correct server for the calls it earned back.
// A correct server whose tier earns a call back while a wrong credential
// is checked admits both guesses: not told apart from a count of their
// own, it is no failure (helper-181, on 73f2176).
func TestGuessCheckAllowsCallsEarnedBack(t *testing.T) {
	doc := strings.Replace(guessDoc(20), "window: 1m", "window: 1s", 1)
	tok := conform.Credential{Name: "tok", Scheme: "bearer", Value: "good"}
	rep := runAgainst(t, doc, dripServer(20, 60*time.Millisecond), []conform.Credential{tok}, "limit:anon")
	for _, res := range rep.Results {
		if res.Case == "limit:anon" && res.Verdict == conform.Fail {
			t.Errorf("a server that counts a wrong credential as none: limit:anon %s: %s", res.Verdict, res.Detail)
		}
	}
	t.Log(verdicts(rep))
}
