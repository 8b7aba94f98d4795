package security_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/internal/guardtest"
	"github.com/specguard/specguard/internal/redistest"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/limits/redislimit"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/apikeys"
	"github.com/specguard/specguard/security/redisstore"
	"github.com/specguard/specguard/security/sessions"
)

type andEnv struct {
	srv   *redistest.Server
	store *redisstore.Store
	sess  *sessions.Service
	mint  *apikeys.Service // makes keys; the guard's own service has none cached
	h     http.Handler
	n     int
}

func newAndEnv(t *testing.T) *andEnv {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	table, err := policy.Compile("and.yaml", []byte(guardtest.AndOrAnonymous))
	if err != nil {
		t.Fatal(err)
	}
	store := redisstore.New(rdb, srv.Prefix, time.Second)
	records := security.NewMemoryKeyRecords(nil)
	sess := sessions.New(store, table.RoleScopes)
	r := chi.NewRouter()
	r.Get("/x", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "anonymous=%v", security.FromContext(r.Context()) == nil)
	})
	g, err := guard.New(table, r,
		guard.WithAuthenticator(policy.SchemeAPIKeyHeader, apikeys.New(store, records)),
		guard.WithAuthenticator(policy.SchemeAPIKeyCookie, sess),
		guard.WithLimiter(limits.New(redislimit.New(rdb, srv.Prefix+"rl:"), limits.WithTimeout(time.Second))),
		guard.WithoutRequestValidation())
	if err != nil {
		t.Fatal(err)
	}
	return &andEnv{srv: srv, store: store, sess: sess, mint: apikeys.New(store, records), h: g}
}

// do sends GET /x from an address of its own (a fresh anonymous bucket).
func (e *andEnv) do(key, cookie string) *httptest.ResponseRecorder {
	e.n++
	req := httptest.NewRequest("GET", "/x", nil)
	req.RemoteAddr = fmt.Sprintf("192.0.2.%d:1234", e.n)
	if key != "" {
		req.Header.Set("X-Key", key)
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: "__Host-session", Value: cookie})
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	return w
}

// Half of an AND on Redis: a revoked session presented alone is refused
// (its deferred check still runs though the request would be anonymous),
// and a key this instance has not cached, looked up in the database and
// so charged as anonymous first, is charged once when the request ends
// anonymous, also when its mark was lost and it is checked again.
func TestGateHalfAnAnd(t *testing.T) {
	e := newAndEnv(t)
	ctx := context.Background()
	ns, err := e.sess.Create(ctx, "alice", "user", "b")
	if err != nil {
		t.Fatal(err)
	}
	if w := e.do("", ns.Cookie); w.Code != 200 || w.Body.String() != "anonymous=true" {
		t.Fatalf("a live session alone: %d %s, want 200 as anonymous", w.Code, w.Body)
	}
	if err := e.store.DeleteSession(ctx, "alice", ns.Session.ID); err != nil {
		t.Fatal(err)
	}
	if w := e.do("", ns.Cookie); w.Code != 401 {
		t.Errorf("a revoked session alone: %d %s, want 401", w.Code, w.Body)
	}

	marked, _, err := e.mint.Create(ctx, "alice", "ci", nil)
	if err != nil {
		t.Fatal(err)
	}
	unmarked, k, err := e.mint.Create(ctx, "alice", "ci2", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Redis lost this key's mark (a restart, or MarkTTL passed): its
	// check asks for the record to be read again.
	if err := e.srv.Client(t).Del(ctx, e.srv.Prefix+"{u:alice}:key:"+k.ID).Err(); err != nil {
		t.Fatal(err)
	}
	for name, key := range map[string]string{"an uncached key alone": marked, "an uncached, unmarked key alone": unmarked} {
		w := e.do(key, "")
		if w.Code != 200 || w.Body.String() != "anonymous=true" || w.Header().Get("RateLimit") != `"anon";r=9;t=360` {
			t.Errorf("%s: %d %s RateLimit %q, want 200 as anonymous, charged once (r=9)", name, w.Code, w.Body, w.Header().Get("RateLimit"))
		}
	}
}

// A key this instance has not cached is charged as anonymous before it is
// looked up; when the session beside it is found revoked, in the script
// that would have charged the tiers, the request stays charged once: the
// script must not count it as anonymous a second time.
func TestGateAndRevokedSessionChargedOnce(t *testing.T) {
	e := newAndEnv(t)
	ctx := context.Background()
	ns, err := e.sess.Create(ctx, "gina", "user", "b")
	if err != nil {
		t.Fatal(err)
	}
	if w := e.do("", ns.Cookie); w.Code != 200 { // caches the session
		t.Fatalf("a live session alone: %d %s", w.Code, w.Body)
	}
	key, _, err := e.mint.Create(ctx, "gina", "ci", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.DeleteSession(ctx, "gina", ns.Session.ID); err != nil {
		t.Fatal(err)
	}
	w := e.do(key, ns.Cookie)
	if w.Code != 401 || w.Header().Get("RateLimit") != `"anon";r=9;t=360` {
		t.Errorf("an uncached key and a revoked session: %d RateLimit %q, want 401 charged once as anonymous (r=9)", w.Code, w.Header().Get("RateLimit"))
	}
	e.n-- // the next request comes from the same address
	if w := e.do("", ""); w.Header().Get("RateLimit") != `"anon";r=8;t=720` {
		t.Errorf("the next anonymous request from that address: RateLimit %q, want r=8 (the refused one charged once)", w.Header().Get("RateLimit"))
	}
}
