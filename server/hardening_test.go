package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/specguard/specguard/api"
	"github.com/specguard/specguard/credentials/sqlstore"
	"github.com/specguard/specguard/internal/keytest"
	"github.com/specguard/specguard/internal/redistest"
	"github.com/specguard/specguard/internal/spectest"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/server"
	"github.com/specguard/specguard/sqldb"
)

// Regression tests of the white-box review's defects, each through HTTP.

// onStores runs a test against an instance on the memory store and one on
// a throwaway Redis, where what it checks lives in the store: env holds
// the settings it needs, and start is given them plus the store's.
func onStores(t *testing.T, env map[string]string, test func(t *testing.T, in *instance)) {
	t.Run("memory", func(t *testing.T) { test(t, start(t, clone(env))) })
	t.Run("redis", func(t *testing.T) {
		e := clone(env)
		e["SPECGUARD_REDIS_URL"], e["SPECGUARD_SIGNING_KEY_FILE"] = redistest.Start(t).URL, keytest.File(t)
		test(t, start(t, e))
	})
	t.Run("redis cluster", func(t *testing.T) {
		e := clone(env)
		e["SPECGUARD_REDIS_URL"], e["SPECGUARD_SIGNING_KEY_FILE"] = redistest.StartCluster(t).URL, keytest.File(t)
		test(t, start(t, e))
	})
}

func clone(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Behind a proxy that appends X-Forwarded-For, a client's own Forwarded
// header passes through untouched: reading it let 12 wrong logins with
// one X-Forwarded-For and a varying Forwarded go unlimited.
func TestClientIPSpoofedForwardedHeader(t *testing.T) {
	_, _, env := loginTier(t)
	onStores(t, env, clientIPSpoofed)
}

func clientIPSpoofed(t *testing.T, in *instance) {
	loginPath, admits, _ := loginTier(t)
	limited, tries := 0, admits+7
	for i := range tries {
		resp, _ := in.do(t, "POST", loginPath, `{"email":"user@example.com","password":"wrong-password"}`,
			"X-Forwarded-For", "203.0.113.50", "Forwarded", fmt.Sprintf("for=198.51.100.%d", i+1))
		switch resp.StatusCode {
		case 401:
		case 429:
			limited++
		default:
			t.Fatalf("attempt %d: %d", i+1, resp.StatusCode)
		}
	}
	if limited < 7 {
		t.Fatalf("%d of %d wrong logins from one client were limited; want every one after the %dth", limited, tries, admits)
	}
}

// The operator who names Forwarded gets Forwarded, and X-Forwarded-For is
// the one ignored.
func TestClientIPHeaderNamed(t *testing.T) {
	loginPath, admits, env := loginTier(t)
	env["SPECGUARD_CLIENT_IP_HEADER"] = "Forwarded"
	fw := start(t, env)
	for i := range admits + 3 {
		resp, _ := fw.do(t, "POST", loginPath, `{"email":"user@example.com","password":"wrong-password"}`,
			"Forwarded", "for=203.0.113.60", "X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i+1))
		if want := map[bool]int{true: 401, false: 429}[i < admits]; resp.StatusCode != want {
			t.Fatalf("Forwarded named, attempt %d: %d, want %d", i+1, resp.StatusCode, want)
		}
	}
}

// IPv6 clients were limited per address: anyone with a /64 had 2^64
// buckets. They are counted per /64 by default, per SPECGUARD_IPV6_PREFIX.
func TestIPv6LimitedPerAddress(t *testing.T) {
	loginPath, admits, env := loginTier(t)
	attempt := func(in *instance, i int) int {
		resp, _ := in.do(t, "POST", loginPath, `{"email":"user@example.com","password":"wrong-password"}`,
			"X-Forwarded-For", fmt.Sprintf("2001:db8:5:6::%x", i+1))
		return resp.StatusCode
	}
	in := start(t, env)
	for i := range admits + 2 {
		if want := map[bool]int{true: 401, false: 429}[i < admits]; attempt(in, i) != want {
			t.Fatalf("address %d of one /64: want %d", i+1, want)
		}
	}
	_, _, env = loginTier(t) // start filled the first one in
	env["SPECGUARD_IPV6_PREFIX"] = "128"
	per128 := start(t, env)
	for i := range admits + 2 {
		if got := attempt(per128, i); got != 401 {
			t.Fatalf("SPECGUARD_IPV6_PREFIX=128, address %d: %d, want 401 (a bucket each)", i+1, got)
		}
	}
}

// Responses that carry a token, a session or an API key could be cached by
// a proxy or the browser (RFC 6749 section 5.1 wants no-store).
func TestCredentialResponsesCacheable(t *testing.T) {
	in := start(t, nil)
	tok := login(t, in, "user@example.com", "user-password")
	resp, body := in.do(t, "POST", at(t, "login"), `{"email":"user@example.com","password":"user-password"}`)
	var refresh string
	if s, ok := body["refresh_token"].(string); ok {
		refresh = s
	}
	for _, tc := range []struct {
		name string
		resp *http.Response
	}{
		{"login", resp},
		{"token", func() *http.Response {
			req, _ := http.NewRequest("POST", in.base+at(t, "token"), strings.NewReader("grant_type=password&username=user@example.com&password=user-password"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
			return r
		}()},
		{"refresh", func() *http.Response {
			r, _ := in.do(t, "POST", at(t, "refresh"), `{"refresh_token":"`+refresh+`"}`)
			return r
		}()},
		{"session", func() *http.Response {
			r, _ := in.do(t, "POST", at(t, "session"), `{"email":"user@example.com","password":"user-password"}`)
			return r
		}()},
		{"API key", func() *http.Response {
			r, _ := in.do(t, "POST", at(t, "create-api-key"), keyBody(t, "ci"), "Authorization", "Bearer "+tok)
			return r
		}()},
	} {
		if tc.resp.StatusCode/100 != 2 {
			t.Errorf("%s: %d", tc.name, tc.resp.StatusCode)
		}
		if got := tc.resp.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", tc.name, got)
		}
	}
	if resp, _ := in.do(t, "GET", spectest.CredentialOp(t, docTable(t), "jwks").Path, ""); resp.Header.Get("Cache-Control") == "no-store" {
		t.Errorf("the public keys are marked no-store too: only credentials need it")
	}
}

// A tier keyed on a claim the credentials never carry was silently skipped
// at every request. Now the service refuses to start on it (the guard
// asks the authenticators which claims they carry); and a claim that some
// accepted credential lacks (an API key has no login family) counts that
// request by its client IP instead of not at all.
func TestClaimTierSkipped(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, spec []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, spec, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// The document's default tier counting callers by principal, counting
	// them by a claim instead.
	tenant := write("tenant.yaml", spectest.WithDefaultTier(t, api.Spec, "principal", map[string]any{"key": "claim:tenant"}))
	env := map[string]string{"SPECGUARD_SPEC_FILE": tenant, "SPECGUARD_DATA_DIR": t.TempDir(), "SPECGUARD_ADDR": "127.0.0.1:0", "SPECGUARD_ADMIN_ADDR": "off"}
	err := server.Run(context.Background(), nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `x-rate-limit (document default): key claim:tenant: no credential of any operation carries it`) {
		t.Fatalf("a tier keyed on claim:tenant: %v; want start-up refused naming the field", err)
	}

	fam := write("fam.yaml", spectest.WithDefaultTier(t, api.Spec, "principal",
		map[string]any{"limit": 3, "window": "1h", "burst": nil, "key": "claim:fam"}))
	// A read that tokens and API keys of the user may call, under the
	// document's default tiers.
	var scope string
	op := spectest.AppOp(t, docTable(t), "a safe operation under the default tiers that tokens and API keys of the user may call", func(op *policy.Operation) bool {
		keyScopes, key := spectest.ScopesOf(op, policy.SchemeAPIKeyHeader)
		_, token := spectest.ScopesOf(op, policy.SchemeOAuth2)
		inherited := len(op.Limits) > 0
		for _, l := range op.Limits {
			inherited = inherited && l.Inherited
		}
		if !spectest.IsSafe(op.Method) || !key || !token || !inherited || len(keyScopes) != 1 || !slices.Contains(docTable(t).RoleScopes("user"), keyScopes[0]) {
			return false
		}
		scope = keyScopes[0]
		return true
	})
	in := start(t, map[string]string{"SPECGUARD_SPEC_FILE": fam, "SPECGUARD_TRUSTED_PROXIES": "127.0.0.1/32"})
	tok := login(t, in, "user@example.com", "user-password", "X-Forwarded-For", "203.0.113.70")
	_, key := in.do(t, "POST", at(t, "create-api-key"), fmt.Sprintf(`{"name":"ci","scopes":[%q]}`, scope), "Authorization", "Bearer "+tok, "X-Forwarded-For", "203.0.113.70")
	get := func(ip string, cred ...string) int {
		resp, _ := in.do(t, op.Method, spectest.Path(op, "e2e-none"), "", append([]string{"X-Forwarded-For", ip}, cred...)...)
		if resp.StatusCode == 429 || resp.StatusCode == 401 || resp.StatusCode == 403 {
			return resp.StatusCode
		}
		return 200 // admitted: what the operation answers is its own
	}
	apiKey := []string{"X-API-Key", key["key"].(string)}
	for i := range 3 {
		if got := get("203.0.113.71", apiKey...); got != 200 {
			t.Fatalf("API key request %d: %d", i+1, got)
		}
	}
	if got := get("203.0.113.71", apiKey...); got != 429 {
		t.Fatalf("4th API-key request from one address under a claim:fam tier: %d, want 429 (counted by IP)", got)
	}
	if got := get("203.0.113.72", apiKey...); got != 200 {
		t.Errorf("the same key from another address: %d, want 200 (another IP's count)", got)
	}
	if got := get("203.0.113.71", "Authorization", "Bearer "+tok); got != 200 {
		t.Errorf("a token from that address: %d, want 200 (counted by its login)", got)
	}
}

// A login granted one scope alone got the role's every scope back at its
// first refresh. A refresh yields the scopes granted at login, bounded by
// the role's current ones (RFC 6749 section 6), on both refresh endpoints.
func TestRefreshWidensGrant(t *testing.T) {
	in := start(t, nil)
	table := docTable(t)
	sessions := spectest.CredentialOp(t, table, "list-sessions")
	manage, _ := spectest.ScopesOf(sessions, policy.SchemeOAuth2)
	scope := spectest.OtherScope(table, "user", manage...)
	form := func(body string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest("POST", in.base+at(t, "token"), strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		if resp.StatusCode != 200 {
			t.Fatalf("token endpoint: %d %v", resp.StatusCode, m)
		}
		return m
	}
	narrow := form("grant_type=password&username=user@example.com&password=user-password&scope=" + scope)
	if narrow["scope"] != scope {
		t.Fatalf("password grant for %s gave %v", scope, narrow["scope"])
	}
	again := form("grant_type=refresh_token&refresh_token=" + narrow["refresh_token"].(string))
	if again["scope"] != scope {
		t.Errorf("refresh grant widened %s to %q", scope, again["scope"])
	}
	resp, m := in.do(t, "POST", at(t, "refresh"), `{"refresh_token":"`+again["refresh_token"].(string)+`"}`)
	if resp.StatusCode != 200 || m["scope"] != scope {
		t.Errorf("POST /auth/refresh: %d, scope %q; want %s", resp.StatusCode, m["scope"], scope)
	}
	resp, _ = in.do(t, sessions.Method, sessions.Path, "", "Authorization", "Bearer "+m["access_token"].(string))
	if resp.StatusCode != 403 {
		t.Errorf("a refreshed %s token listed the sessions (%v): %d, want 403", scope, manage, resp.StatusCode)
	}
}

// A token narrowed to another scope could list every session of its
// account and end them all. Managing the account's logins needs its own
// scope (account:manage in the example); the caller's own logout stays
// open to any token of the session.
func TestNarrowTokenManagesAccount(t *testing.T) {
	in := start(t, nil)
	table := docTable(t)
	manage, _ := spectest.ScopesOf(spectest.CredentialOp(t, table, "list-sessions"), policy.SchemeOAuth2)
	if len(manage) != 1 {
		t.Fatalf("listing sessions needs %v; this test wants one scope", manage)
	}
	scope := spectest.OtherScope(table, "user", manage...)
	req, _ := http.NewRequest("POST", in.base+at(t, "token"), strings.NewReader("grant_type=password&username=user@example.com&password=user-password&scope="+scope))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var narrow map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&narrow)
	resp.Body.Close()
	tok := "Bearer " + narrow["access_token"].(string)
	for _, kind := range []string{"logout-all", "list-sessions", "delete-session"} {
		op := spectest.CredentialOp(t, table, kind)
		resp, _ := in.do(t, op.Method, spectest.Path(op, "AAAAAAAAAAAAAAAAAAAAAA"), "", "Authorization", tok)
		if resp.StatusCode != 403 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `scope="`+manage[0]+`"`) {
			t.Errorf("%s with a %s token: %d %q, want 403 naming %s", spectest.Describe(op), scope, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), manage[0])
		}
	}
	if resp, _ := in.do(t, "POST", at(t, "logout"), "", "Authorization", tok); resp.StatusCode != 204 {
		t.Errorf("the token's own logout: %d, want 204", resp.StatusCode)
	}
	full := login(t, in, "user@example.com", "user-password")
	if resp, _ := in.do(t, "GET", at(t, "list-sessions"), "", "Authorization", "Bearer "+full); resp.StatusCode != 200 {
		t.Errorf("a login's token lists sessions: %d, want 200", resp.StatusCode)
	}
}

// A password of more than 72 bytes (the spec allows 128 characters) made
// bcrypt fail and the server answer 500. Passwords are hashed with
// argon2id, of any length; bcrypt hashes (older accounts, users files) are
// still checked, and replaced by argon2id at the next login.
func TestLongPasswordAnswers500(t *testing.T) {
	bcryptHash, err := bcrypt.GenerateFromPassword([]byte("old-bcrypt-password"), 4)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	users := filepath.Join(t.TempDir(), "users.yaml")
	if err := os.WriteFile(users, []byte("- email: old@example.com\n  password_hash: '"+string(bcryptHash)+"'\n  role: user\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	in := start(t, map[string]string{"SPECGUARD_DATA_DIR": dir, "SPECGUARD_USERS_FILE": users})
	long := strings.Repeat("é", 40) // 80 bytes
	if resp, m := in.do(t, "POST", at(t, "register"), `{"email":"long@example.com","password":"`+long+`"}`); resp.StatusCode != 201 {
		t.Fatalf("register with an 80-byte password: %d %v", resp.StatusCode, m)
	}
	login(t, in, "long@example.com", long)
	if resp, _ := in.do(t, "POST", at(t, "login"), `{"email":"long@example.com","password":"`+long[:len(long)-2]+`"}`); resp.StatusCode != 401 {
		t.Errorf("a prefix of the long password: %d, want 401", resp.StatusCode)
	}
	login(t, in, "old@example.com", "old-bcrypt-password")
	d, err := sqldb.Open(context.Background(), sqldb.Source{Kind: sqldb.SQLite, DSN: filepath.Join(dir, "specguard.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for email, want := range map[string]string{"long@example.com": "$argon2id$", "old@example.com": "$argon2id$"} {
		u, err := sqlstore.New(d).AccountByEmail(context.Background(), email)
		if err != nil || !strings.HasPrefix(u.PasswordHash, want) {
			t.Errorf("%s is stored as %.12q (%v), want an argon2id hash", email, u.PasswordHash, err)
		}
	}
	login(t, in, "old@example.com", "old-bcrypt-password") // against the new hash
}

// The CSRF key was derived from the signing key: rotating the signing key
// broke every session's CSRF token, with no way back but a new login. Each
// session now has a random CSRF token of its own, kept (hashed) with it.
func TestCSRFKeyFollowsSigningKey(t *testing.T) {
	redisURL, dir := redistest.Start(t).URL, t.TempDir()
	a := start(t, map[string]string{"SPECGUARD_REDIS_URL": redisURL, "SPECGUARD_DATA_DIR": dir, "SPECGUARD_SIGNING_KEY_FILE": keytest.File(t)})
	write := cookieWrite(t, a)
	// A cookie write: ending a session that is not there passes the CSRF
	// check, then finds nothing (404); a refused CSRF token is a 403.
	if got := write(a); got != 404 {
		t.Fatalf("cookie write with CSRF: %d, want 404 (past the CSRF check)", got)
	}
	a.stop(t)
	// The operator rotates the signing key.
	b := start(t, map[string]string{"SPECGUARD_REDIS_URL": redisURL, "SPECGUARD_DATA_DIR": dir, "SPECGUARD_SIGNING_KEY_FILE": keytest.File(t)})
	if got := write(b); got != 404 {
		t.Errorf("the same session's write after a signing-key rotation: %d, want 404 (past the CSRF check)", got)
	}
}

// API keys could be made at 600 a minute, without end, and ending them all
// walked every record of every user. An account holds at most
// SPECGUARD_MAX_API_KEYS keys and SPECGUARD_MAX_SESSIONS logins and
// browser sessions; past that the answer is 409.
func TestRecordsPerAccountUnbounded(t *testing.T) {
	onStores(t, map[string]string{"SPECGUARD_MAX_API_KEYS": "3", "SPECGUARD_MAX_SESSIONS": "2", "SPECGUARD_TRUSTED_PROXIES": "127.0.0.1/32"}, recordsPerAccount)
}

func recordsPerAccount(t *testing.T, in *instance) {
	ip := 0
	from := func() []string { ip++; return []string{"X-Forwarded-For", fmt.Sprintf("203.0.113.%d", ip)} }
	tok := login(t, in, "user@example.com", "user-password", from()...)
	for i := range 4 {
		resp, m := in.do(t, "POST", at(t, "create-api-key"), keyBody(t, "k"), "Authorization", "Bearer "+tok)
		want := map[bool]int{true: 201, false: 409}[i < 3]
		if resp.StatusCode != want {
			t.Fatalf("API key %d under a cap of 3: %d %v, want %d", i+1, resp.StatusCode, m, want)
		}
		if want == 409 && m["type"] != "urn:specguard:problem:too-many" {
			t.Errorf("409 problem type %v", m["type"])
		}
	}
	login(t, in, "user@example.com", "user-password", from()...) // the second login
	if resp, m := in.do(t, "POST", at(t, "login"), `{"email":"user@example.com","password":"user-password"}`, from()...); resp.StatusCode != 409 {
		t.Errorf("a third login under a cap of 2: %d %v, want 409", resp.StatusCode, m)
	}
	for i := range 3 {
		resp, _ := in.do(t, "POST", at(t, "session"), `{"email":"user@example.com","password":"user-password"}`, from()...)
		if want := map[bool]int{true: 201, false: 409}[i < 2]; resp.StatusCode != want {
			t.Errorf("browser session %d under a cap of 2: %d, want %d", i+1, resp.StatusCode, want)
		}
	}
	// Ending everything makes room again.
	if resp, _ := in.do(t, "POST", at(t, "logout-all"), "", "Authorization", "Bearer "+tok); resp.StatusCode != 204 {
		t.Fatalf("logout-all: %d", resp.StatusCode)
	}
	tok = login(t, in, "user@example.com", "user-password", from()...)
	if resp, _ := in.do(t, "POST", at(t, "create-api-key"), keyBody(t, "k"), "Authorization", "Bearer "+tok); resp.StatusCode != 201 {
		t.Errorf("an API key after logout everywhere: %d, want 201", resp.StatusCode)
	}
}

// Under a cap of one key, making and revoking keys left a year-long
// revocation in the store each time, outside the cap. A revocation is kept
// a minute now, and counts toward the cap meanwhile: the 409 says so.
func TestRevokedKeysCountWhileHeld(t *testing.T) {
	onStores(t, map[string]string{"SPECGUARD_MAX_API_KEYS": "1"}, func(t *testing.T, in *instance) {
		tok := login(t, in, "user@example.com", "user-password")
		resp, m := in.do(t, "POST", at(t, "create-api-key"), keyBody(t, "k"), "Authorization", "Bearer "+tok)
		if resp.StatusCode != 201 {
			t.Fatalf("the first key: %d %v", resp.StatusCode, m)
		}
		if resp, _ := in.do(t, "DELETE", spectest.Path(spectest.CredentialOp(t, docTable(t), "delete-api-key"), m["id"].(string)), "", "Authorization", "Bearer "+tok); resp.StatusCode != 204 {
			t.Fatalf("revoking it: %d", resp.StatusCode)
		}
		resp, m = in.do(t, "POST", at(t, "create-api-key"), keyBody(t, "k2"), "Authorization", "Bearer "+tok)
		if detail, _ := m["detail"].(string); resp.StatusCode != 409 || !strings.Contains(detail, "revoked in the last minute still counts") {
			t.Errorf("a key right after revoking the only one: %d %v, want 409 saying why", resp.StatusCode, m)
		}
	})
}

// After 5 failed logins, the token endpoint's password grant still took 20
// guesses a minute and the browser login 5 more. Every operation that
// checks a password now shares one budget per address: the spec's shared
// login-ip tier (login, session), and the failed-password budget, which
// covers the password grant too, while its refresh grant stays open.
func TestLoginBudgetPerEndpoint(t *testing.T) {
	_, env := addressBudget(t)
	onStores(t, env, loginBudgetPerEndpoint)
}

func loginBudgetPerEndpoint(t *testing.T, in *instance) {
	budget, _ := addressBudget(t)
	from := []string{"X-Forwarded-For", "203.0.113.80"}
	refresh := func() string {
		_, m := in.do(t, "POST", at(t, "login"), `{"email":"user@example.com","password":"user-password"}`, "X-Forwarded-For", "203.0.113.81")
		return m["refresh_token"].(string)
	}()
	for i := range budget {
		if resp, _ := in.do(t, "POST", at(t, "login"), `{"email":"user@example.com","password":"wrong-password"}`, from...); resp.StatusCode != 401 {
			t.Fatalf("failed login %d: %d", i+1, resp.StatusCode)
		}
	}
	token := func(body string) int {
		req, _ := http.NewRequest("POST", in.base+at(t, "token"), strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", from[1])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := token("grant_type=password&username=user@example.com&password=guess"); got != 429 {
		t.Errorf("the password grant after %d failed logins: %d, want 429", budget, got)
	}
	if resp, _ := in.do(t, "POST", at(t, "session"), `{"email":"user@example.com","password":"guess"}`, from...); resp.StatusCode != 429 {
		t.Errorf("a browser login after %d failed logins: %d, want 429", budget, resp.StatusCode)
	}
	if got := token("grant_type=refresh_token&refresh_token=" + refresh); got != 200 {
		t.Errorf("the refresh grant from that address: %d, want 200 (no password checked)", got)
	}
}

// On a Redis Cluster the failed-password budgets per address and per
// account were charged one script call each: a guess the address's budget
// refused still spent the account's, so after 5 + 5 guesses from one
// address its owner's right password got 429 there, and 200 on one Redis.
// Every store answers alike now: the refused guesses spend nothing.
func TestGuessesFromOneAddressLockNoAccount(t *testing.T) {
	const guesses = 5 // refused by the address's budget
	budget, env := accountBudget(t, guesses)
	onStores(t, env, func(t *testing.T, in *instance) {
		from := []string{"X-Forwarded-For", "203.0.113.90"}
		for i := range budget {
			if resp, _ := in.do(t, "POST", at(t, "login"), `{"email":"user@example.com","password":"wrong-password"}`, from...); resp.StatusCode != 401 {
				t.Fatalf("guess %d: %d, want 401", i+1, resp.StatusCode)
			}
		}
		for i := range guesses {
			req, _ := http.NewRequest("POST", in.base+at(t, "token"), strings.NewReader("grant_type=password&username=user@example.com&password=guess"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set(from[0], from[1])
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 429 {
				t.Fatalf("guess %d through the token endpoint: %d, want 429 (the address's failures are spent)", budget+i+1, resp.StatusCode)
			}
		}
		if resp, _ := in.do(t, "POST", at(t, "login"), `{"email":"user@example.com","password":"user-password"}`, "X-Forwarded-For", "198.51.100.90"); resp.StatusCode != 200 {
			t.Errorf("the owner's right password from another address: %d, want 200", resp.StatusCode)
		}
	})
}

// 25 wrong passwords for one account from 25 addresses were all answered
// 401: no limit per account. Failed checks of one account are limited
// whatever the address (SPECGUARD_FAILED_LOGINS_PER_ACCOUNT, 10 per 15
// minutes); a right password refunds its attempt; other accounts are not
// affected.
func TestNoPerAccountThrottle(t *testing.T) {
	onStores(t, map[string]string{"SPECGUARD_TRUSTED_PROXIES": "127.0.0.1/32"}, perAccountThrottle)
}

func perAccountThrottle(t *testing.T, in *instance) {
	attempt := func(i int, email, password string) int {
		resp, _ := in.do(t, "POST", at(t, "login"), `{"email":"`+email+`","password":"`+password+`"}`, "X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i))
		return resp.StatusCode
	}
	// Successes do not count: the owner logging in often spends nothing.
	for i := range 12 {
		if got := attempt(100+i, "user@example.com", "user-password"); got != 200 {
			t.Fatalf("right password %d: %d", i+1, got)
		}
	}
	limited := 0
	for i := range 25 {
		switch attempt(i+1, "USER@example.com ", "wrong-password") {
		case 401:
		case 429:
			limited++
		default:
			t.Fatalf("attempt %d", i+1)
		}
	}
	if limited != 15 {
		t.Errorf("%d of 25 wrong passwords from 25 addresses were limited, want 15 (10 per account)", limited)
	}
	if got := attempt(200, "moderator@example.com", "moderator-password"); got != 200 {
		t.Errorf("another account: %d, want 200", got)
	}
}

// The API key's prefix was "sg_" and 8 characters of its record id, not the
// first characters of the key, and the key carried its owner's user id.
func TestAPIKeyPrefixUntrue(t *testing.T) {
	in := start(t, nil)
	tok := login(t, in, "user@example.com", "user-password")
	_, me := in.do(t, "GET", at(t, "me"), "", "Authorization", "Bearer "+tok)
	resp, k := in.do(t, "POST", at(t, "create-api-key"), keyBody(t, "ci"), "Authorization", "Bearer "+tok)
	if resp.StatusCode != 201 {
		t.Fatalf("create key: %d %v", resp.StatusCode, k)
	}
	key, prefix := k["key"].(string), k["prefix"].(string)
	if !strings.HasPrefix(key, prefix) || len(prefix) < 8 {
		t.Errorf("prefix %q is not the first characters of the key", prefix)
	}
	if strings.Contains(key, me["id"].(string)) {
		t.Errorf("the key carries its owner's id %s", me["id"])
	}
}

// SPECGUARD_ALLOWED_ORIGINS let in cookie-authenticated writes from
// another origin of the operator's only when the browser sent no
// Sec-Fetch-Site: every current browser sends same-site or cross-site
// from such a page, which was refused before the Origin was looked at.
func TestAllowedOriginWithSecFetchSite(t *testing.T) {
	in := start(t, map[string]string{"SPECGUARD_ALLOWED_ORIGINS": "https://app.example.com"})
	cookie := cookieWrite(t, in)
	write := func(origin, site string) int {
		var h []string
		if origin != "" {
			h = append(h, "Origin", origin)
		}
		if site != "" {
			h = append(h, "Sec-Fetch-Site", site)
		}
		return cookie(in, h...)
	}
	// 404: past the CSRF check, the session named is not there; 403: refused by it.
	for _, c := range []struct {
		origin, site string
		want         int
	}{
		{"https://app.example.com", "same-site", 404},
		{"https://app.example.com", "cross-site", 404},
		{"https://app.example.com", "", 404},
		{"https://evil.example.com", "same-site", 403},
		{"", "same-site", 403},
		{"", "cross-site", 403},
	} {
		if got := write(c.origin, c.site); got != c.want {
			t.Errorf("Origin %q, Sec-Fetch-Site %q: %d, want %d", c.origin, c.site, got, c.want)
		}
	}
}

// cookieWrite logs in a browser session on in and returns a write made
// with its cookies and CSRF token on an instance, with more headers: it
// ends a session that is not there, so past the CSRF check it answers 404,
// refused by it 403.
func cookieWrite(t *testing.T, in *instance) func(on *instance, headers ...string) int {
	t.Helper()
	resp, m := in.do(t, "POST", at(t, "session"), `{"email":"user@example.com","password":"user-password"}`)
	if resp.StatusCode != 201 {
		t.Fatalf("session: %d %v", resp.StatusCode, m)
	}
	var cookies []string
	for _, c := range resp.Cookies() {
		cookies = append(cookies, c.Name+"="+c.Value)
	}
	del := spectest.CredentialOp(t, docTable(t), "delete-session")
	return func(on *instance, headers ...string) int {
		h := append([]string{"Cookie", strings.Join(cookies, "; "), "X-CSRF-Token", m["csrf_token"].(string)}, headers...)
		resp, _ := on.do(t, del.Method, spectest.Path(del, "AAAAAAAAAAAAAAAAAAAAAA"), "", h...)
		return resp.StatusCode
	}
}
