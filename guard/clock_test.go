package guard

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/internal/clock"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/apikeys"
	"github.com/specguard/specguard/security/sessions"
	"github.com/specguard/specguard/security/tokens"
)

// testClock stands in for the system clock (clock.System) in these tests:
// it counts its readings, and says the time it was set to.
type testClock struct {
	mu    sync.Mutex
	at    time.Time
	reads int
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads++
	return c.at
}

func (c *testClock) set(at time.Time) (reads int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at = at
	return c.reads
}

// useTestClock makes the system clock c until the test ends. Tests that
// call it do not run in parallel.
func useTestClock(t *testing.T, c *testClock) {
	saved := clock.System
	clock.System = c.now
	t.Cleanup(func() { clock.System = saved })
}

// clockStack is specguard's own memory stack behind a guard, on a test
// system clock: tokens (alice), API keys (bob) and sessions (carol), each
// on the given clock (nil: the system's), their store and the limiter's
// on the system's.
type clockStack struct {
	g                  *Guard
	clock              *testClock
	token, key, cookie string
}

func newClockStack(t *testing.T, own func() time.Time) *clockStack {
	t.Helper()
	table, err := policy.Compile("t.yaml", threeKindsSpec("{name: per-caller, limit: 1, window: 1h, key: principal, who: authenticated}"))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Get("/things", func(http.ResponseWriter, *http.Request) {})
	ctx := context.Background()
	s := &clockStack{clock: &testClock{at: time.Now()}}
	useTestClock(t, s.clock)
	store := security.NewMemoryStore(nil)
	signing, err := tokens.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ts, err := tokens.New("i", "a", signing, store, tokens.WithClock(own))
	if err != nil {
		t.Fatal(err)
	}
	keys := apikeys.New(store, security.NewMemoryKeyRecords(nil), apikeys.WithClock(own))
	sess := sessions.New(store, table.RoleScopes, sessions.WithClock(own))
	pair, err := ts.Login(ctx, "alice", "user", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	s.token = pair.Access
	if s.key, _, err = keys.Create(ctx, "bob", "test", nil); err != nil {
		t.Fatal(err)
	}
	issued, err := sess.Create(ctx, "carol", "user", "test")
	if err != nil {
		t.Fatal(err)
	}
	s.cookie = issued.Cookie
	if s.g, err = New(table, r, WithoutRequestValidation(),
		WithAuthenticator(policy.SchemeBearer, tokens.Bearer{Tokens: ts}),
		WithAuthenticator(policy.SchemeAPIKeyHeader, keys),
		WithAuthenticator(policy.SchemeAPIKeyCookie, sess),
		WithLimiter(limits.New(limits.NewMemoryStore(nil)))); err != nil {
		t.Fatal(err)
	}
	return s
}

// get sends one request with the credential of kind at time at, and
// returns its status and the readings of the system clock it took.
func (s *clockStack) get(kind string, at time.Time) (status, reads int) {
	req := httptest.NewRequest("GET", "/things", nil)
	switch kind {
	case "token":
		req.Header.Set("Authorization", "Bearer "+s.token)
	case "key":
		req.Header.Set("X-API-Key", s.key)
	case "session":
		req.AddCookie(&http.Cookie{Name: "sid", Value: s.cookie})
	}
	before := s.clock.set(at)
	w := httptest.NewRecorder()
	s.g.ServeHTTP(w, req)
	return w.Code, s.clock.set(at) - before
}

// A request through specguard's own memory stack reads the clock once: the
// guard reads it, and the token cache, the API key and session lookups
// (and its last-use note), the security store's check and the limiter's
// store take that time rather than read their own (about 55 ns a reading
// on a virtual machine). The readings are counted, and each component is
// shown to go by the system clock's time.
func TestOneClockReadPerRequest(t *testing.T) {
	s := newClockStack(t, nil)
	now := time.Now()
	for _, kind := range []string{"token", "key", "session"} {
		// The first presentation verifies the credential (a token's
		// signature, a key's record), which may read the clock again.
		if status, _ := s.get(kind, now); status != 200 {
			t.Fatalf("%s: status %d, want 200", kind, status)
		}
		// One per hour: refused at the same time.
		if status, reads := s.get(kind, now.Add(time.Minute)); status != http.StatusTooManyRequests || reads != 1 {
			t.Fatalf("%s again: status %d with %d clock readings, want 429 with 1", kind, status, reads)
		}
	}
	// Admitted an hour later by the system clock, which the limiter's
	// store took from the guard.
	if status, reads := s.get("session", now.Add(61*time.Minute)); status != 200 || reads != 1 {
		t.Fatalf("session, an hour later by the system clock: %d with %d readings, want 200 with 1 (the limiter read a clock of its own?)", status, reads)
	}
	// The token expired (15 minutes) by the system clock.
	if status, _ := s.get("token", now.Add(16*time.Minute)); status != http.StatusUnauthorized {
		t.Fatalf("token 16 minutes later by the system clock: %d, want 401", status)
	}
	// The session expired (12 hours) by the system clock.
	if status, _ := s.get("session", now.Add(13*time.Hour)); status != http.StatusUnauthorized {
		t.Fatalf("session 13 hours later by the system clock: %d, want 401", status)
	}
	// The key expired by the system clock.
	if status, _ := s.get("key", now.Add(apikeys.DefaultTTL+time.Hour)); status != http.StatusUnauthorized {
		t.Fatalf("key past its lifetime by the system clock: %d, want 401", status)
	}
}

// A component given a clock of its own keeps reading it, and one on the
// system's goes by that. Here the credentials' services read the real
// time, and only the security store's check, on the system clock, can see
// that they expired.
func TestOwnClockIsKept(t *testing.T) {
	s := newClockStack(t, time.Now)
	now := time.Now()
	if status, _ := s.get("token", now.Add(16*time.Minute)); status != 200 {
		t.Fatalf("token 16 minutes later by the system clock, live by its service's: %d, want 200", status)
	}
	// The login (30 days) and the session (12 hours) expired in the
	// store by the system clock.
	if status, _ := s.get("token", now.Add(31*24*time.Hour)); status != http.StatusUnauthorized {
		t.Fatalf("token's login 31 days later by the system clock: %d, want 401 (the store is on the system clock)", status)
	}
	if status, _ := s.get("session", now.Add(13*time.Hour)); status != http.StatusUnauthorized {
		t.Fatalf("session 13 hours later by the system clock: %d, want 401 (the store is on the system clock)", status)
	}
}
