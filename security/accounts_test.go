package security_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
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
	"github.com/specguard/specguard/security/tokens"
)

const accountsSpec = `
openapi: 3.0.3
info: {title: accounts, version: "1"}
x-rate-limit:
  - {name: anon, limit: 1000, window: 1m, key: ip, who: anonymous}
  - {name: user, limit: 1000, window: 1m, key: principal, who: authenticated}
paths:
  /read:
    get:
      operationId: read
      security: [{oauth2: [a:read]}, {apiKeyAuth: [a:read]}, {cookieAuth: [a:read]}]
      responses: {"200": {description: ok}}
  /admin:
    get:
      operationId: admin
      security: [{oauth2: [a:admin]}, {apiKeyAuth: [a:admin]}, {cookieAuth: [a:admin]}]
      responses: {"200": {description: ok}}
components:
  securitySchemes:
    oauth2:
      type: oauth2
      flows:
        password:
          tokenUrl: /token
          scopes: {a:read: read, a:admin: administer}
      x-roles:
        reader: [a:read]
        admin: [a:read, a:admin]
    cookieAuth: {type: apiKey, in: cookie, name: __Host-session}
    apiKeyAuth: {type: apiKey, in: header, name: X-API-Key}
`

// accountDB is the source of truth an app keeps accounts in: each change
// bumps the version and is published through an instance's Accounts
// before it "commits", as db.UpdateUser does.
type accountDB struct {
	mu       sync.Mutex
	accounts map[string]security.Account
	reads    int // AccountState calls: database queries
}

func (d *accountDB) AccountState(_ context.Context, subject string) (security.Account, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reads++
	a, ok := d.accounts[subject]
	if !ok {
		return a, security.ErrNotFound
	}
	return a, nil
}

func (d *accountDB) update(tb testing.TB, via *security.Accounts, subject string, change func(*security.Account)) {
	tb.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	a := d.accounts[subject]
	change(&a)
	a.Version++
	if err := via.Publish(context.Background(), subject, a); err != nil {
		tb.Fatalf("Publish: %v", err)
	}
	d.accounts[subject] = a
}

// instance is one process of a fleet: its own caches and services, the
// shared store, records and database.
type instance struct {
	accounts *security.Accounts
	tokens   *tokens.Service
	sessions *sessions.Service
	keys     *apikeys.Service
	h        http.Handler
}

type accountFleet struct {
	db      *accountDB
	store   security.Store
	records *countingRecords
	table   *policy.Table
	ins     []*instance
	trips   *redistest.RoundTrips // Redis round trips, on Redis
	flush   func()                // loses the store's state, as a Redis restart does
}

// fleets runs a suite on two instances sharing a memory store (one
// process's view) and on two sharing a Redis, whose limiters carry the
// credential checks in their scripts.
func fleets(t *testing.T, suite func(t *testing.T, f *accountFleet)) {
	t.Run("memory", func(t *testing.T) {
		store := security.NewMemoryStore(nil)
		suite(t, newAccountFleet(t, store, limits.NewMemoryStore(nil), nil, nil))
	})
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		rdb := srv.Client(t)
		trips := &redistest.RoundTrips{}
		rdb.AddHook(trips)
		store := redisstore.New(rdb, srv.Prefix, time.Second)
		f := newAccountFleet(t, store, redislimit.New(rdb, srv.Prefix+"rl:"), trips, func() {
			keys, _ := rdb.Keys(context.Background(), srv.Prefix+"*").Result()
			if len(keys) > 0 {
				rdb.Del(context.Background(), keys...)
			}
		})
		suite(t, f)
	})
}

func newAccountFleet(t *testing.T, store security.Store, ls limits.Store, trips *redistest.RoundTrips, flush func()) *accountFleet {
	t.Helper()
	table, err := policy.Compile("accounts.yaml", []byte(accountsSpec))
	if err != nil {
		t.Fatal(err)
	}
	f := &accountFleet{db: &accountDB{accounts: map[string]security.Account{}}, store: store,
		records: &countingRecords{MemoryKeyRecords: security.NewMemoryKeyRecords(nil)}, table: table, trips: trips, flush: flush}
	signing, err := tokens.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		in := &instance{accounts: security.NewAccounts(store, f.db, table.RoleScopes)}
		if in.tokens, err = tokens.New(guardtest.Issuer, guardtest.Audience, signing, store, tokens.WithAccounts(in.accounts)); err != nil {
			t.Fatal(err)
		}
		in.sessions = sessions.New(store, table.RoleScopes, sessions.WithAccounts(in.accounts))
		in.keys = apikeys.New(store, f.records, apikeys.WithAccounts(in.accounts))
		r := chi.NewRouter()
		for _, op := range table.Operations() {
			r.Method(op.Method, op.Pattern, http.HandlerFunc(guardtest.Echo))
		}
		bearer := tokens.Bearer{Tokens: in.tokens}
		g, err := guard.New(table, r,
			guard.WithAuthenticator(policy.SchemeOAuth2, bearer),
			guard.WithAuthenticator(policy.SchemeAPIKeyCookie, in.sessions),
			guard.WithAuthenticator(policy.SchemeAPIKeyHeader, in.keys),
			guard.WithLimiter(limits.New(ls, limits.WithTimeout(time.Second))))
		if err != nil {
			t.Fatal(err)
		}
		in.h = g
		f.ins = append(f.ins, in)
	}
	return f
}

func (f *accountFleet) addAccount(subject, role string) {
	f.db.mu.Lock()
	defer f.db.mu.Unlock()
	f.db.accounts[subject] = security.Account{Version: 1, Role: role}
}

// countingRecords counts the key lookups that would be database queries.
type countingRecords struct {
	*security.MemoryKeyRecords
	mu    sync.Mutex
	reads int
}

func (r *countingRecords) APIKey(ctx context.Context, id string) (*security.APIKey, error) {
	r.mu.Lock()
	r.reads++
	r.mu.Unlock()
	return r.MemoryKeyRecords.APIKey(ctx, id)
}

// queries is how many database reads the fleet made so far.
func (f *accountFleet) queries() int {
	f.db.mu.Lock()
	defer f.db.mu.Unlock()
	f.records.mu.Lock()
	defer f.records.mu.Unlock()
	return f.db.reads + f.records.reads
}

// creds are one of each credential kind, minted on instance 0.
type creds struct {
	token, refresh, key string
	session             *sessions.Issued
}

func (f *accountFleet) mint(t *testing.T, subject, role string) creds {
	t.Helper()
	ctx := context.Background()
	in := f.ins[0]
	pair, err := in.tokens.Login(ctx, subject, role, f.table.RoleScopes(role), "test")
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	ns, err := in.sessions.Create(ctx, subject, role, "browser")
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	key, _, err := in.keys.Create(ctx, subject, "ci", f.table.RoleScopes(role))
	if err != nil {
		t.Fatalf("API key: %v", err)
	}
	return creds{token: pair.Access, refresh: pair.Refresh, key: key, session: ns}
}

func (c creds) each() map[string]func(*http.Request) {
	return map[string]func(*http.Request){
		"bearer":  func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+c.token) },
		"session": func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "__Host-session", Value: c.session.Cookie}) },
		"api key": func(r *http.Request) { r.Header.Set("X-API-Key", c.key) },
	}
}

func (f *accountFleet) do(in int, path string, cred func(*http.Request)) (int, guardtest.Seen) {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.RemoteAddr = net.JoinHostPort("192.0.2.1", "1234")
	cred(req)
	w := httptest.NewRecorder()
	f.ins[in].h.ServeHTTP(w, req)
	var s guardtest.Seen
	if w.Code == 200 {
		_ = json.Unmarshal(w.Body.Bytes(), &s)
	}
	return w.Code, s
}

// expect checks path with every credential of c on every instance.
func (f *accountFleet) expect(t *testing.T, when, path string, c creds, status int, scopes ...string) {
	t.Helper()
	for name, cred := range c.each() {
		for i := range f.ins {
			got, s := f.do(i, path, cred)
			if got != status {
				t.Errorf("%s: %s %s on instance %d = %d, want %d", when, name, path, i, got, status)
			} else if status == 200 && scopes != nil && !slices.Equal(s.Scopes, scopes) {
				t.Errorf("%s: %s on instance %d holds %v, want %v", when, name, i, s.Scopes, scopes)
			}
		}
	}
}

// A change of an account holds on every instance at the next request, for
// every kind of credential, whatever the instances had cached.
func TestAccountChangesHoldEverywhere(t *testing.T) {
	fleets(t, func(t *testing.T, f *accountFleet) {
		f.addAccount("alice", "admin")
		c := f.mint(t, "alice", "admin")
		f.expect(t, "admin", "/admin", c, 200, "a:admin", "a:read")

		f.db.update(t, f.ins[0].accounts, "alice", func(a *security.Account) { a.Role = "reader" })
		f.expect(t, "demoted", "/admin", c, http.StatusForbidden)
		f.expect(t, "demoted", "/read", c, 200, "a:read")

		// Promotion does not widen what a credential was given.
		reader := f.mint(t, "alice", "reader")
		f.db.update(t, f.ins[1].accounts, "alice", func(a *security.Account) { a.Role = "admin" })
		f.expect(t, "promoted, credentials minted as reader", "/admin", reader, http.StatusForbidden)
		f.expect(t, "promoted, credentials minted as admin", "/admin", c, 200, "a:admin", "a:read")

		f.db.update(t, f.ins[1].accounts, "alice", func(a *security.Account) { a.Disabled = true; a.NotBefore = a.Version + 1 })
		f.expect(t, "disabled", "/read", c, http.StatusUnauthorized)
		ctx := context.Background()
		if _, err := f.ins[0].tokens.Login(ctx, "alice", "admin", nil, "x"); !errors.Is(err, security.ErrInvalid) {
			t.Errorf("Login of a disabled account = %v, want ErrInvalid", err)
		}
		if _, err := f.ins[0].tokens.Refresh(ctx, c.refresh, func(string) (string, []string, error) { return "admin", nil, nil }); err == nil {
			t.Errorf("Refresh after the disable succeeded")
		}

		f.db.update(t, f.ins[0].accounts, "alice", func(a *security.Account) { a.Disabled = false })
		f.expect(t, "enabled again: credentials ended by the disable", "/read", c, http.StatusUnauthorized)
		fresh := f.mint(t, "alice", "admin")
		f.expect(t, "enabled again: new credentials", "/admin", fresh, 200)

		// Logout everywhere moves NotBefore: every credential so far dies.
		f.db.update(t, f.ins[0].accounts, "alice", func(a *security.Account) { a.NotBefore = a.Version + 1 })
		f.expect(t, "after logout everywhere", "/read", fresh, http.StatusUnauthorized)
		f.expect(t, "a login after logout everywhere", "/read", f.mint(t, "alice", "admin"), 200)
	})
}

// A store that races a credential's creation with a disable: the change
// lands after the account was read for minting, before the credential is
// recorded.
type racingStore struct {
	security.Store
	race  func()
	armed bool
}

func (s *racingStore) fire() {
	if s.armed {
		s.armed = false
		s.race()
	}
}

func (s *racingStore) CreateFamily(ctx context.Context, f *security.Family, max int) error {
	s.fire()
	return s.Store.CreateFamily(ctx, f, max)
}

func (s *racingStore) RotateFamily(ctx context.Context, subject, id, presented, nextRefresh, nextAccess string) error {
	s.fire()
	return s.Store.RotateFamily(ctx, subject, id, presented, nextRefresh, nextAccess)
}

func (s *racingStore) CreateSession(ctx context.Context, sess *security.Session, max int) error {
	s.fire()
	return s.Store.CreateSession(ctx, sess, max)
}

func (s *racingStore) MarkKey(ctx context.Context, k *security.APIKey, ifAbsent bool, max int) (bool, error) {
	if !ifAbsent {
		s.fire()
	}
	return s.Store.MarkKey(ctx, k, ifAbsent, max)
}

// Whatever credential a login racing a disable returns is refused at its
// first use.
func TestMintRacingDisable(t *testing.T) {
	fleets(t, func(t *testing.T, f *accountFleet) {
		f.addAccount("bob", "admin")
		racing := &racingStore{Store: f.store}
		racing.race = func() {
			f.db.update(t, f.ins[1].accounts, "bob", func(a *security.Account) { a.Disabled = true; a.NotBefore = a.Version + 1 })
		}
		in := f.ins[0]
		// Services on the racing store, with the instance's own caches.
		ts, err := tokens.New(guardtest.Issuer, guardtest.Audience, mustKey(t), racing, tokens.WithAccounts(in.accounts))
		if err != nil {
			t.Fatal(err)
		}
		ss := sessions.New(racing, f.table.RoleScopes, sessions.WithAccounts(in.accounts))
		keys := apikeys.New(racing, f.records, apikeys.WithAccounts(in.accounts))
		ctx := context.Background()
		checks := map[string]func() error{
			"refresh": func() error {
				racing.armed = false
				pair, err := ts.Login(ctx, "bob", "admin", f.table.RoleScopes("admin"), "race")
				if err != nil {
					return err
				}
				racing.armed = true
				next, err := ts.Refresh(ctx, pair.Refresh, func(string) (string, []string, error) { return "admin", f.table.RoleScopes("admin"), nil })
				if err != nil {
					return nil
				}
				if _, err := ts.Refresh(ctx, next.Refresh, func(string) (string, []string, error) { return "admin", nil, nil }); err == nil {
					return errors.New("the refresh token minted while its account was being disabled refreshed again")
				}
				_, err = ts.VerifyAccess(ctx, next.Access)
				return errorUnlessInvalid(err)
			},
			"token": func() error {
				pair, err := ts.Login(ctx, "bob", "admin", f.table.RoleScopes("admin"), "race")
				if err != nil {
					return nil // refused outright: fine
				}
				_, err = ts.VerifyAccess(ctx, pair.Access)
				return errorUnlessInvalid(err)
			},
			"session": func() error {
				ns, err := ss.Create(ctx, "bob", "admin", "race")
				if err != nil {
					return nil
				}
				req := httptest.NewRequest(http.MethodGet, "/read", nil)
				req.AddCookie(&http.Cookie{Name: "__Host-session", Value: ns.Cookie})
				_, err = ss.Authenticate(ctx, req, f.table.Schemes["cookieAuth"])
				return errorUnlessInvalid(err)
			},
			"api key": func() error {
				full, _, err := keys.Create(ctx, "bob", "race", []string{"a:read"})
				if err != nil {
					return nil
				}
				req := httptest.NewRequest(http.MethodGet, "/read", nil)
				req.Header.Set("X-API-Key", full)
				_, err = keys.Authenticate(ctx, req, f.table.Schemes["apiKeyAuth"])
				return errorUnlessInvalid(err)
			},
		}
		for name, check := range checks {
			t.Run(name, func(t *testing.T) {
				f.db.update(t, in.accounts, "bob", func(a *security.Account) { a.Disabled = false })
				racing.armed = true
				if err := check(); err != nil {
					t.Error(err)
				}
			})
		}
	})
}

func errorUnlessInvalid(err error) error {
	if errors.Is(err, security.ErrInvalid) {
		return nil
	}
	return errors.New("a credential minted while its account was being disabled was accepted (or failed otherwise): " + errString(err))
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

func mustKey(t *testing.T) *tokens.Key {
	t.Helper()
	k, err := tokens.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// A store that lost everything (Redis restarted empty) logs people out,
// but API keys keep working from their records, and revoked or disabled
// stay refused.
func TestStoreLossKeepsKeys(t *testing.T) {
	fleets(t, func(t *testing.T, f *accountFleet) {
		if f.flush == nil {
			t.Skip("a memory store is lost only with its process")
		}
		ctx := context.Background()
		f.addAccount("carol", "admin")
		f.addAccount("dave", "admin")
		carol := f.mint(t, "carol", "admin")
		revoked, rk, err := f.ins[0].keys.Create(ctx, "carol", "old", []string{"a:read"})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.ins[0].keys.Revoke(ctx, "carol", rk.ID); err != nil {
			t.Fatal(err)
		}
		dave := f.mint(t, "dave", "admin")
		f.db.update(t, f.ins[0].accounts, "dave", func(a *security.Account) { a.Disabled = true; a.NotBefore = a.Version + 1 })
		f.expect(t, "before the loss", "/read", carol, 200)

		f.flush()
		for i := range f.ins {
			key := func(r *http.Request) { r.Header.Set("X-API-Key", carol.key) }
			if got, _ := f.do(i, "/admin", key); got != 200 {
				t.Errorf("API key on instance %d after the loss = %d, want 200", i, got)
			}
			if got, _ := f.do(i, "/read", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+carol.token) }); got != 401 {
				t.Errorf("token on instance %d after the loss = %d, want 401 (its login is gone)", i, got)
			}
			if got, _ := f.do(i, "/read", func(r *http.Request) { r.Header.Set("X-API-Key", revoked) }); got != 401 {
				t.Errorf("revoked key on instance %d after the loss = %d, want 401", i, got)
			}
			if got, _ := f.do(i, "/read", func(r *http.Request) { r.Header.Set("X-API-Key", dave.key) }); got != 401 {
				t.Errorf("disabled account's key on instance %d after the loss = %d, want 401", i, got)
			}
		}
	})
}

// On a warm instance each kind of credential costs one Redis round trip
// (its check rides in the rate-limit script) and no database query. A
// change of the account costs the next request a second look, and is
// enforced.
func TestCredentialChecksRideInTheLimitScript(t *testing.T) {
	fleets(t, func(t *testing.T, f *accountFleet) {
		f.addAccount("erin", "admin")
		c := f.mint(t, "erin", "admin")
		for name, cred := range c.each() {
			t.Run(name, func(t *testing.T) {
				if got, _ := f.do(1, "/admin", cred); got != 200 { // warms caches, loads scripts
					t.Fatalf("first request: %d", got)
				}
				queries := f.queries()
				var before int64
				if f.trips != nil {
					before = f.trips.N.Load()
				}
				for range 3 {
					if got, _ := f.do(1, "/admin", cred); got != 200 {
						t.Fatalf("warm request: %d", got)
					}
				}
				if n := f.queries() - queries; n != 0 {
					t.Errorf("3 warm %s requests made %d database queries, want 0", name, n)
				}
				if f.trips != nil {
					if n := f.trips.N.Load() - before; n != 3 {
						t.Errorf("3 warm %s requests made %d Redis round trips, want 3", name, n)
					}
				}
			})
		}
		f.db.update(t, f.ins[0].accounts, "erin", func(a *security.Account) { a.Role = "reader" })
		f.expect(t, "demoted, on warm instances", "/admin", c, http.StatusForbidden)
	})
}

// When the store's mirror of an account expires under load, every request
// in flight re-reads the database and mirrors the same state at once. None
// may be refused for it: re-mirroring an identical state keeps its stamp
// (before, each write made a new one, and requests that kept finding their
// stamp replaced answered 503 after three tries).
func TestMirrorExpiryUnderLoad(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	store := redisstore.New(rdb, srv.Prefix, time.Second)
	f := newAccountFleet(t, store, redislimit.New(rdb, srv.Prefix+"rl:"), nil, nil)
	f.addAccount("alice", "admin")
	c := f.mint(t, "alice", "admin")
	f.expect(t, "before", "/read", c, 200)
	ctx := context.Background()
	for round := range 10 { // 640 requests: under the tier of 1,000 a minute
		keys, err := rdb.Keys(ctx, srv.Prefix+"*acct*").Result()
		if err != nil || len(keys) != 1 {
			t.Fatalf("account mirror keys = %v, %v; want one", keys, err)
		}
		rdb.Del(ctx, keys...) // the mirror expired
		var wg sync.WaitGroup
		codes := make(chan int, 64)
		for i := range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				creds := []func(*http.Request){c.each()["bearer"], c.each()["session"], c.each()["api key"]}
				code, _ := f.do(i%2, "/read", creds[i%3])
				codes <- code
			}()
		}
		wg.Wait()
		close(codes)
		for code := range codes {
			if code != 200 {
				t.Fatalf("round %d: a request answered %d while the account was re-mirrored, want 200", round+1, code)
			}
		}
	}
}
