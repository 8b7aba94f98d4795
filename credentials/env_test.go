package credentials_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/credentials/sqlstore"
	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/internal/pgtest"
	"github.com/specguard/specguard/internal/redistest"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/limits/redislimit"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/redisstore"
	"github.com/specguard/specguard/security/tokens"
	"github.com/specguard/specguard/sqldb"
)

var ctx = context.Background()

// cheap are argon2 parameters that keep tests fast.
var cheap = credentials.WithArgon2(credentials.Argon2{Memory: 1024, Time: 1, Threads: 1})

// storeTimeout bounds the tests' store calls. The products' 100ms is short
// for a fresh Redis connection loading its scripts on a machine running
// every package under -race (CI saw a first login answered 503); no test
// here is about a slow store.
const storeTimeout = 5 * time.Second

// backend is where an env keeps its records and its state.
type backend struct {
	name     string
	accounts func(t *testing.T) (credentials.Accounts, security.KeyRecords)
	state    func(t *testing.T) (security.Store, limits.Store)
}

func memoryRecords(*testing.T) (credentials.Accounts, security.KeyRecords) {
	return credentials.NewMemoryAccounts(nil), security.NewMemoryKeyRecords(nil)
}

func sqlRecords(kind sqldb.Kind) func(t *testing.T) (credentials.Accounts, security.KeyRecords) {
	return func(t *testing.T) (credentials.Accounts, security.KeyRecords) {
		src := sqldb.Source{Kind: kind, DSN: filepath.Join(t.TempDir(), "specguard.db")}
		if kind == sqldb.Postgres {
			src.DSN = pgtest.New(t)
		}
		d, err := sqldb.Open(ctx, src)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		if _, _, err := d.Migrate(ctx, sqlstore.Migrations, nil); err != nil {
			t.Fatal(err)
		}
		s := sqlstore.New(d)
		return s, s
	}
}

func memoryState(*testing.T) (security.Store, limits.Store) {
	return security.NewMemoryStore(nil), limits.NewMemoryStore(nil)
}

func redisState(t *testing.T) (security.Store, limits.Store) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	return redisstore.New(rdb, srv.Prefix, storeTimeout), redislimit.New(rdb, srv.Prefix+"rl:")
}

// backends are the combinations the journeys run on: the package on both
// databases, and on both kinds of shared state.
var backends = []backend{
	{"memory", memoryRecords, memoryState},
	{"sqlite", sqlRecords(sqldb.SQLite), memoryState},
	{"postgres+redis", sqlRecords(sqldb.Postgres), redisState},
}

// env is a service serving the Fragment itself behind a guard: what a
// library user who copied the Fragment into their document runs.
type env struct {
	t        *testing.T
	svc      *credentials.Service
	h        http.Handler
	accounts credentials.Accounts
	store    security.Store
	ip       atomic.Int64
}

// newEnv serves spec (the Fragment when empty) on records and state.
func newEnv(t *testing.T, spec []byte, accounts credentials.Accounts, keys security.KeyRecords, store security.Store, lim limits.Store, opts ...credentials.Option) *env {
	t.Helper()
	key, err := tokens.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return newEnvKey(t, spec, key, accounts, keys, store, lim, opts...)
}

// newEnvKey is newEnv signing with key (instances of one fleet share it).
func newEnvKey(t *testing.T, spec []byte, key *tokens.Key, accounts credentials.Accounts, keys security.KeyRecords, store security.Store, lim limits.Store, opts ...credentials.Option) *env {
	t.Helper()
	return guardedEnv(t, spec, key, accounts, keys, store, lim, nil, opts...)
}

// unvalidatedEnv serves spec (the Fragment when empty) in memory behind a
// guard that does not validate requests: the operations' own checks alone.
func unvalidatedEnv(t *testing.T, spec []byte) *env {
	t.Helper()
	key, err := tokens.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	accounts, keys := memoryRecords(t)
	store, lim := memoryState(t)
	return guardedEnv(t, spec, key, accounts, keys, store, lim, []guard.Option{guard.WithoutRequestValidation()})
}

// guardedEnv is newEnvKey with guardOpts given to the guard too.
func guardedEnv(t *testing.T, spec []byte, key *tokens.Key, accounts credentials.Accounts, keys security.KeyRecords, store security.Store, lim limits.Store, guardOpts []guard.Option, opts ...credentials.Option) *env {
	t.Helper()
	if spec == nil {
		spec = credentials.Fragment
	}
	table, err := policy.Compile("openapi.yaml", spec)
	if err != nil {
		t.Fatal(err)
	}
	limiter := limits.New(lim, limits.WithTimeout(storeTimeout))
	svc, err := credentials.New(table, key, credentials.Stores{Accounts: accounts, Keys: keys, State: store, Limits: lim},
		append([]credentials.Option{cheap, credentials.WithStoreTimeout(storeTimeout), credentials.WithClientAddr(limiter.ClientAddr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	svc.Mount(r)
	g, err := guard.New(table, r, append(append(svc.Authenticators(), guard.WithLimiter(limiter)), guardOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, svc: svc, h: g, accounts: accounts, store: store}
}

// onBackend builds an env of b.
func onBackend(t *testing.T, b backend, opts ...credentials.Option) *env {
	accounts, keys := b.accounts(t)
	store, lim := b.state(t)
	return newEnv(t, nil, accounts, keys, store, lim, opts...)
}

// reply is an answer: its status, headers and JSON body.
type reply struct {
	code   int
	header http.Header
	body   map[string]any
	list   []any
	raw    string
	cookie []*http.Cookie
}

// do sends a request from a client address of its own (so that no
// per-address limit decides it unless the test says so with X-Client).
func (e *env) do(method, path, contentType, body string, header ...string) reply {
	e.t.Helper()
	return e.send(method, path, contentType, strings.NewReader(body), header...)
}

// send is do with a body of the caller's own.
func (e *env) send(method, path, contentType string, body io.Reader, header ...string) reply {
	e.t.Helper()
	req := httptest.NewRequest(method, path, body)
	n := e.ip.Add(1)
	req.RemoteAddr = "192.0." + itoa(2+n/250) + "." + itoa(n%250+1) + ":1234"
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "X-Client" {
			req.RemoteAddr = header[i+1] + ":1234"
			continue
		}
		req.Header.Add(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	raw, _ := io.ReadAll(w.Result().Body)
	r := reply{code: w.Code, header: w.Header(), raw: string(raw), cookie: w.Result().Cookies()}
	_ = json.Unmarshal(raw, &r.body)
	_ = json.Unmarshal(raw, &r.list)
	return r
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func (e *env) json(method, path, body string, header ...string) reply {
	e.t.Helper()
	return e.do(method, path, "application/json", body, header...)
}

func (e *env) form(path string, v url.Values, header ...string) reply {
	e.t.Helper()
	return e.do("POST", path, "application/x-www-form-urlencoded", v.Encode(), header...)
}

func bearer(token string) []string { return []string{"Authorization", "Bearer " + token} }

// register makes an account and logs it in: its access and refresh tokens.
func (e *env) register(email, password string) (access, refresh string) {
	e.t.Helper()
	if r := e.json("POST", "/auth/register", `{"email":"`+email+`","password":"`+password+`"}`); r.code != 201 {
		e.t.Fatalf("register %s: %d %s", email, r.code, r.raw)
	}
	return e.login(email, password)
}

func (e *env) login(email, password string) (access, refresh string) {
	e.t.Helper()
	r := e.json("POST", "/auth/login", `{"email":"`+email+`","password":"`+password+`"}`)
	if r.code != 200 {
		e.t.Fatalf("login %s: %d %s", email, r.code, r.raw)
	}
	return r.body["access_token"].(string), r.body["refresh_token"].(string)
}

// browserLogin opens a browser session: its cookies, as a Cookie header
// value, and its CSRF token.
func (e *env) browserLogin(email, password string) (cookie, csrf string) {
	e.t.Helper()
	r := e.json("POST", "/auth/session", `{"email":"`+email+`","password":"`+password+`","device":"browser"}`)
	if r.code != 201 {
		e.t.Fatalf("browser login %s: %d %s", email, r.code, r.raw)
	}
	var cookies []string
	for _, c := range r.cookie {
		cookies = append(cookies, c.Name+"="+c.Value)
	}
	return strings.Join(cookies, "; "), r.body["csrf_token"].(string)
}
