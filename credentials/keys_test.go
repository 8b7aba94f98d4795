package credentials_test

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/internal/guardtest"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/tokens"
)

// The client_credentials grant for a key whose account was disabled after
// the key was checked (or whose disable did not reach the store: the
// README's failover window) answers 401 invalid_client, as for any key
// that is not live, not 500.
func TestClientCredentialsOfADisabledAccount(t *testing.T) {
	acc := credentials.NewMemoryAccounts(nil)
	e := newEnv(t, nil, acc, security.NewMemoryKeyRecords(nil), security.NewMemoryStore(nil), limits.NewMemoryStore(nil))
	if err := e.svc.Seed(ctx, []credentials.SeedAccount{{Email: "root@example.com", Password: "root-password-1", Role: "admin"}}, nil); err != nil {
		t.Fatal(err)
	}
	access, _ := e.login("root@example.com", "root-password-1")
	r := e.json("POST", "/api-keys", `{"name":"k","scopes":["users:read"]}`, bearer(access)...)
	if r.code != 201 {
		t.Fatalf("create a key: %d %s", r.code, r.raw)
	}
	kid, secret, _ := strings.Cut(strings.TrimPrefix(r.body["key"].(string), security.APIKeyPrefix), ".")
	a, err := acc.AccountByEmail(ctx, "root@example.com")
	if err != nil {
		t.Fatal(err)
	}
	// The disable commits; its write to the store is lost.
	if _, err := acc.UpdateAccount(ctx, a.ID, func(a *credentials.Account) error { a.Disabled, a.NotBefore = true, a.Version+1; return nil },
		func(*credentials.Account) error { return nil }); err != nil {
		t.Fatal(err)
	}
	cc := e.form("/auth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {kid}, "client_secret": {secret}})
	if cc.code != 401 || cc.body["error"] != "invalid_client" {
		t.Errorf("client_credentials for a disabled account: %d %s, want 401 invalid_client", cc.code, cc.raw)
	}
}

// A key refused over the cap leaves nothing behind: once the account is
// under the cap again it makes a key, though the refused attempts came
// after its other keys' marks had expired from the store.
func TestRefusedKeysHoldNoPlace(t *testing.T) {
	clk := guardtest.NewClock()
	e := newEnv(t, nil, credentials.NewMemoryAccounts(clk.Now), security.NewMemoryKeyRecords(clk.Now), security.NewMemoryStore(clk.Now), limits.NewMemoryStore(clk.Now),
		credentials.WithClock(clk.Now), credentials.WithMaxAPIKeys(2), credentials.WithTokenTTL(time.Hour, 24*time.Hour))
	if err := e.svc.Seed(ctx, []credentials.SeedAccount{{Email: "root@example.com", Password: "root-password-1", Role: "admin"}}, nil); err != nil {
		t.Fatal(err)
	}
	access, _ := e.login("root@example.com", "root-password-1")
	create := func() reply {
		return e.json("POST", "/api-keys", `{"name":"k","scopes":["users:read"]}`, bearer(access)...)
	}
	var ids []string
	for range 2 {
		r := create()
		if r.code != 201 {
			t.Fatalf("create a key: %d %s", r.code, r.raw)
		}
		ids = append(ids, r.body["id"].(string))
	}
	clk.Advance(security.MarkTTL + time.Minute) // unused keys' marks leave the store
	for range 2 {
		if r := create(); r.code != 409 {
			t.Fatalf("a third key under a cap of 2: %d %s, want 409", r.code, r.raw)
		}
	}
	if r := e.do("DELETE", "/api-keys/"+ids[0], "", "", bearer(access)...); r.code != 204 {
		t.Fatalf("revoke: %d %s", r.code, r.raw)
	}
	clk.Advance(security.KeyRevocationTTL + time.Second) // the revocation has left the store too
	if r := create(); r.code != 201 {
		t.Errorf("a key with 1 live key of 2: %d %s, want 201", r.code, r.raw)
	}
}

// A 429 of a spent failed-password budget names that budget in its
// RateLimit fields, as in violated-policies: not the operation's tiers,
// which admitted the request and would tell the client to retry at once.
func TestFailedPasswordRefusalNamesItsBudget(t *testing.T) {
	e := newEnv(t, nil, credentials.NewMemoryAccounts(nil), security.NewMemoryKeyRecords(nil), security.NewMemoryStore(nil), limits.NewMemoryStore(nil),
		credentials.WithFailedPasswords(credentials.Budget{Limit: 100, Window: time.Hour}, credentials.Budget{Limit: 2, Window: 15 * time.Minute}))
	var last reply
	for range 3 {
		last = e.json("POST", "/auth/login", `{"email":"victim@example.com","password":"guess-guess"}`)
	}
	retry := last.header.Get("Retry-After")
	if last.code != 429 || retry == "" ||
		last.header.Get("RateLimit-Policy") != `"failed-logins-account";q=2;w=900` ||
		last.header.Get("RateLimit") != `"failed-logins-account";r=0;t=`+retry {
		t.Errorf("the third wrong password on a budget of 2: %d, RateLimit-Policy %q, RateLimit %q, Retry-After %s",
			last.code, last.header.Values("RateLimit-Policy"), last.header.Values("RateLimit"), retry)
	}
}

// When both failed-password budgets refuse, the 429 names both, each with
// its own wait: it named the address's alone, with the account's longer
// wait as its t, which told a client the wrong budget and time.
func TestFailedPasswordRefusalNamesBothBudgets(t *testing.T) {
	e := newEnv(t, nil, credentials.NewMemoryAccounts(nil), security.NewMemoryKeyRecords(nil), security.NewMemoryStore(nil), limits.NewMemoryStore(nil),
		credentials.WithFailedPasswords(credentials.Budget{Limit: 1, Window: time.Minute}, credentials.Budget{Limit: 1, Window: time.Hour}))
	var last reply
	for range 2 { // one failure spends both budgets
		last = e.json("POST", "/auth/login", `{"email":"victim@example.com","password":"guess-guess"}`, "X-Client", "198.51.100.9")
	}
	var body struct {
		Violated []string `json:"violated-policies"`
	}
	_ = json.Unmarshal([]byte(last.raw), &body)
	retry, _ := strconv.Atoi(last.header.Get("Retry-After"))
	if last.code != 429 || retry < 3500 ||
		last.header.Get("RateLimit-Policy") != `"failed-logins-ip";q=1;w=60, "failed-logins-account";q=1;w=3600` ||
		!regexp.MustCompile(`^"failed-logins-ip";r=0;t=(60|59), "failed-logins-account";r=0;t=`+strconv.Itoa(retry)+`$`).MatchString(last.header.Get("RateLimit")) ||
		strings.Join(body.Violated, " ") != "failed-logins-ip failed-logins-account" {
		t.Errorf("both budgets spent: %d, Retry-After %d, RateLimit-Policy %q, RateLimit %q, violated-policies %q",
			last.code, retry, last.header.Values("RateLimit-Policy"), last.header.Values("RateLimit"), body.Violated)
	}
}

// A token of the client_credentials grant stands for its key: it holds
// only the scopes the document lets a key use alone. An admin key is
// accepted for the admin's writes only beside the admin's own browser
// session; exchanged for a token, it was an admin credential on its own.
func TestClientCredentialsTokenIsNoMoreThanItsKey(t *testing.T) {
	e := newEnv(t, nil, credentials.NewMemoryAccounts(nil), security.NewMemoryKeyRecords(nil), security.NewMemoryStore(nil), limits.NewMemoryStore(nil))
	if err := e.svc.Seed(ctx, []credentials.SeedAccount{{Email: "root@example.com", Password: "root-password-1", Role: "admin"}}, nil); err != nil {
		t.Fatal(err)
	}
	admin, _ := e.login("root@example.com", "root-password-1")
	e.register("bob@example.com", "bob-password-1")
	users := e.do("GET", "/admin/users", "", "", bearer(admin)...)
	var bob string
	for _, u := range users.list {
		if m := u.(map[string]any); m["email"] == "bob@example.com" {
			bob = m["id"].(string)
		}
	}
	r := e.json("POST", "/api-keys", `{"name":"ci","scopes":["users:admin","users:read"]}`, bearer(admin)...)
	if r.code != 201 || bob == "" {
		t.Fatalf("create the key: %d %s (bob %q)", r.code, r.raw, bob)
	}
	key := r.body["key"].(string)
	if r := e.json("PATCH", "/admin/users/"+bob, `{"role":"admin"}`, "X-API-Key", key); r.code != 401 && r.code != 403 {
		t.Fatalf("the admin key alone: %d %s, want refused", r.code, r.raw)
	}
	kid, secret, _ := strings.Cut(strings.TrimPrefix(key, security.APIKeyPrefix), ".")
	cc := e.form("/auth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {kid}, "client_secret": {secret}})
	if cc.code != 200 || cc.body["scope"] != "users:read" {
		t.Fatalf("client_credentials: %d %s, want the token to hold users:read alone", cc.code, cc.raw)
	}
	tok := cc.body["access_token"].(string)
	if r := e.json("PATCH", "/admin/users/"+bob, `{"role":"admin"}`, bearer(tok)...); r.code != 403 {
		t.Errorf("PATCH /admin/users by the key's token: %d %s, want 403", r.code, r.raw)
	}
	if r := e.do("POST", "/admin/users/"+bob+"/disable", "", "", bearer(tok)...); r.code != 403 {
		t.Errorf("disable by the key's token: %d %s, want 403", r.code, r.raw)
	}
	if r := e.do("GET", "/admin/users", "", "", bearer(tok)...); r.code != 200 {
		t.Errorf("GET /admin/users by the key's token: %d, want 200 (users:read, which a key may use alone)", r.code)
	}
	asked := e.form("/auth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {kid}, "client_secret": {secret}, "scope": {"users:admin"}})
	if asked.code != 400 || asked.body["error"] != "invalid_scope" {
		t.Errorf("client_credentials asking for users:admin: %d %s, want 400 invalid_scope", asked.code, asked.raw)
	}
}

// What a library user may pass is checked, never a panic later: a nil
// log is no log, a budget of no attempts is refused by New, a nil
// principal (an anonymous caller) logs nothing out, and Seed refuses an
// account that could never log in, which it would otherwise keep.
func TestLibraryInputs(t *testing.T) {
	e := newEnv(t, nil, credentials.NewMemoryAccounts(nil), security.NewMemoryKeyRecords(nil), security.NewMemoryStore(nil), limits.NewMemoryStore(nil), credentials.WithLog(nil))
	if err := e.svc.Logout(ctx, nil); err != nil {
		t.Errorf("Logout(nil): %v", err)
	}
	demo := []credentials.SeedAccount{{Email: "demo@example.com", Password: "demo-password-1", Role: "user"}}
	if err := e.svc.Seed(ctx, demo, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Retire(ctx, demo, nil, nil); err != nil {
		t.Errorf("Retire with WithLog(nil): %v", err)
	}
	for _, su := range []credentials.SeedAccount{
		{Password: "some-password-1", Role: "user"},
		{Email: "x@example.com", Role: "user"},
		{Email: "y@example.com", PasswordHash: "not-a-hash", Role: "user"},
		{Email: "z\u200b@example.com", Password: "some-password-1", Role: "user"},
	} {
		if err := e.svc.Seed(ctx, []credentials.SeedAccount{su}, nil); err == nil {
			t.Errorf("Seed(%+v) made an account that can never log in", su)
		}
	}
	key, err := tokens.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	table, err := policy.Compile("openapi.yaml", credentials.Fragment)
	if err != nil {
		t.Fatal(err)
	}
	minute := credentials.Budget{Limit: 10, Window: time.Minute}
	for _, c := range []struct {
		name   string
		budget credentials.Budget
		want   string
	}{
		{"a budget of no attempts", credentials.Budget{}, "WithFailedPasswords"},
		// A window of 1.5 s was announced as w=2 in RateLimit-Policy:
		// whole seconds, as a tier's window.
		{"a window of 1.5 s", credentials.Budget{Limit: 5, Window: 1500 * time.Millisecond}, "whole number of seconds"},
		// The store counts one attempt per whole microsecond: 600000/1s
		// was taken and kept as a million a second (helper-184).
		{"3,000,000 a second", credentials.Budget{Limit: 3_000_000, Window: time.Second}, "finer than one attempt per microsecond"},
		{"600000 a second", credentials.Budget{Limit: 600_000, Window: time.Second}, "would be kept as"},
		// ParseBudget's 720h holds for New too: past it the counts leave
		// what the Redis store's doubles hold exactly (helper-191).
		{"a window of 100000h", credentials.Budget{Limit: 5, Window: 100_000 * time.Hour}, "at most 720h"},
	} {
		_, err = credentials.New(table, key, credentials.Stores{Accounts: credentials.NewMemoryAccounts(nil), Keys: security.NewMemoryKeyRecords(nil), State: security.NewMemoryStore(nil), Limits: limits.NewMemoryStore(nil)},
			credentials.WithFailedPasswords(c.budget, minute))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New with %s: %v, want refused (%s)", c.name, err, c.want)
		}
	}
	for _, v := range []string{"5/1500ms", "5/1.5s", "5/0.5s"} {
		if b, err := credentials.ParseBudget(v); err == nil {
			t.Errorf("ParseBudget(%q) = %v, want refused (whole seconds)", v, b)
		}
	}
	for _, v := range []string{"600000/1s", "700000/1s"} {
		if b, err := credentials.ParseBudget(v); err == nil || !strings.Contains(err.Error(), "would be kept as") {
			t.Errorf("ParseBudget(%q) = %v, %v; want refused (rounded to whole microseconds)", v, b, err)
		}
	}
	for _, v := range []string{"1000000/1s", "500000/1s", "5/15m", "7/1s"} {
		if _, err := credentials.ParseBudget(v); err != nil {
			t.Errorf("ParseBudget(%q): %v", v, err)
		}
	}
	if b, err := credentials.ParseBudget("5/15m"); err != nil || b != (credentials.Budget{Limit: 5, Window: 15 * time.Minute}) {
		t.Errorf("ParseBudget(5/15m) = %v, %v", b, err)
	}
}

// An address holding an invisible character (a zero-width space, a soft
// hyphen) looks like another's in every list: registering it is refused.
func TestRegisterRefusesInvisibleCharacters(t *testing.T) {
	e := newEnv(t, nil, credentials.NewMemoryAccounts(nil), security.NewMemoryKeyRecords(nil), security.NewMemoryStore(nil), limits.NewMemoryStore(nil))
	e.register("ann@example.com", "ann-password-1")
	for _, addr := range []string{"ann\u200b@example.com", "ann\u00ad@example.com", "ann\u200d@example.com",
		"ann\u034f@example.com", "ann\ufe0f@example.com", "ann\u3164@example.com", "ann@exam\u034fple.com",
		// Joiners between Latin letters, or at the end, show nothing
		// (IDNA allows them after a virama, or a non-joiner between
		// letters that join); a hair space and a line separator look like
		// a space, or nothing.
		"ann@exa\u200cmple.com", "ann@exa\u200dmple.com", "ann@example.com\u200d", "ann\u200a@example.com",
		"ann@example\u2028.com", "ann\u00a0@example.com"} {
		if r := e.json("POST", "/auth/register", `{"email":"`+addr+`","password":"some-password-1"}`); r.code != 400 {
			t.Errorf("register %q beside ann@example.com: %d %s, want 400", addr, r.code, r.raw)
		}
	}
	// A zero-width non-joiner inside a Persian domain label is part of it,
	// as a joiner after a Devanagari virama is.
	for _, addr := range []string{"ali@\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645.ir", "ravi@\u0915\u094d\u200d\u0937.in"} {
		if r := e.json("POST", "/auth/register", `{"email":"`+addr+`","password":"some-password-1"}`); r.code != 201 {
			t.Errorf("register %+q, whose domain holds a joiner where IDNA allows one: %d %s, want 201", addr, r.code, r.raw)
		}
	}
}

// An address is one account in any case, also where a capital has two
// small forms: ΟΔΟΣ is οδος (final sigma), and О is both о and the
// Cyrillic narrow ᲂ. Lower-casing alone made ΟΔΟΣ οδοσ: a second account
// beside οδος, and its owner, typing capitals, was refused.
func TestAddressesAreOneInAnyCase(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := onBackend(t, b)
			for _, pair := range [][2]string{
				{"\u03bf\u03b4\u03bf\u03c2@example.com", "\u039f\u0394\u039f\u03a3@example.com"}, // οδος, ΟΔΟΣ
				{"ivan.petr\u1c82v@example.com", "ivan.petr\u043ev@example.com"},                 // narrow o, о
			} {
				e.register(pair[0], "first-password-1")
				if r := e.json("POST", "/auth/login", `{"email":"`+pair[1]+`","password":"first-password-1"}`); r.code != 200 {
					t.Errorf("login as %+q, the account of %+q in another case: %d, want 200", pair[1], pair[0], r.code)
				}
				if r := e.json("POST", "/auth/register", `{"email":"`+pair[1]+`","password":"second-password-2"}`); r.code != 409 {
					t.Errorf("register %+q beside %+q: %d %s, want 409", pair[1], pair[0], r.code, r.raw)
				}
			}
		})
	}
}

// An admin cannot disable itself, nor give itself a role without the
// scopes account management needs: the last admin would leave no account
// able to manage accounts. Another admin can; a role that keeps them is
// the admin's to take.
func TestAdminCannotLockItselfOut(t *testing.T) {
	e := newEnv(t, nil, credentials.NewMemoryAccounts(nil), security.NewMemoryKeyRecords(nil), security.NewMemoryStore(nil), limits.NewMemoryStore(nil))
	if err := e.svc.Seed(ctx, []credentials.SeedAccount{
		{Email: "root@example.com", Password: "root-password-1", Role: "admin"},
		{Email: "second@example.com", Password: "second-password-1", Role: "admin"},
	}, nil); err != nil {
		t.Fatal(err)
	}
	root, _ := e.login("root@example.com", "root-password-1")
	second, _ := e.login("second@example.com", "second-password-1")
	me := e.do("GET", "/me", "", "", bearer(root)...).body["id"].(string)
	for _, c := range []struct{ method, path, body string }{
		{"PATCH", "/admin/users/" + me, `{"role":"user"}`},
		{"PATCH", "/admin/users/" + me, `{"disabled":true}`},
		{"POST", "/admin/users/" + me + "/disable", ""},
	} {
		if r := e.do(c.method, c.path, "application/json", c.body, bearer(root)...); r.code != 403 {
			t.Errorf("%s %s %s by itself: %d %s, want 403", c.method, c.path, c.body, r.code, r.raw)
		}
	}
	if r := e.json("PATCH", "/admin/users/"+me, `{"role":"admin"}`, bearer(root)...); r.code != 200 {
		t.Errorf("keeping its own role: %d %s, want 200", r.code, r.raw)
	}
	if r := e.json("PATCH", "/admin/users/"+me, `{"role":"user"}`, bearer(second)...); r.code != 200 {
		t.Errorf("another admin demoting it: %d %s, want 200", r.code, r.raw)
	}
}

// A NUL is no value PostgreSQL text can hold: a login naming an address
// with one is a wrong address (401), not an unavailable store (503), and
// a key's name or a login's device holding a control character (or a
// bidirectional formatting one) is refused (400), on every backend alike.
func TestControlCharactersAreRefusedNotOutages(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := onBackend(t, b)
			if err := e.svc.Seed(ctx, []credentials.SeedAccount{{Email: "root@example.com", Password: "root-password-1", Role: "admin"}}, nil); err != nil {
				t.Fatal(err)
			}
			if r := e.json("POST", "/auth/login", `{"email":"root\u0000@example.com","password":"root-password-1"}`); r.code != 401 {
				t.Errorf("login with a NUL in the address: %d %s, want 401", r.code, r.raw)
			}
			access, _ := e.login("root@example.com", "root-password-1")
			for _, name := range []string{`ci\u0000`, `ci\nforged line`, `ci\u2028forged line`, `ci\u2029forged paragraph`, `ci\u202ekeep`, `ci\u2066isolated`} {
				if r := e.json("POST", "/api-keys", `{"name":"`+name+`","scopes":["users:read"]}`, bearer(access)...); r.code != 400 {
					t.Errorf("a key named %s: %d %s, want 400", name, r.code, r.raw)
				}
				// A login's device name, listed with the account's logins
				// as given, likewise; refused before the password is
				// checked.
				for _, path := range []string{"/auth/login", "/auth/session"} {
					if r := e.json("POST", path, `{"email":"root@example.com","password":"root-password-1","device":"`+name+`"}`); r.code != 400 || !strings.Contains(r.raw, "device must hold no control") {
						t.Errorf("%s from a device named %s: %d %s, want 400", path, name, r.code, r.raw)
					}
				}
			}
			// A right-to-left name may end with a direction mark, which
			// overrides nothing.
			if r := e.json("POST", "/auth/login", `{"email":"root@example.com","password":"root-password-1","device":"\u05de\u05d7\u05e9\u05d1\u200f"}`); r.code != 200 {
				t.Errorf("a Hebrew device name ending in U+200F: %d %s, want 200", r.code, r.raw)
			}
		})
	}
}

// The operations decode their own bodies: without the guard's request
// validation in front of them (an app that turned it off), they refuse
// what encoding/json would read otherwise than a validator does: a name
// given twice, data after the value, a Content-Type that is no media type.
func TestDecodeRefusesBodiesThatAreNotOneValue(t *testing.T) {
	e := unvalidatedEnv(t, nil)
	for _, c := range []struct {
		name, ct, body string
		code           int
	}{
		{"a name given twice", "application/json", `{"email":"ann@example.com","password":"correct horse battery","email":"bob@example.com"}`, 400},
		{"data after the value", "application/json", `{"email":"ann@example.com","password":"correct horse battery"} {}`, 400},
		// encoding/json matches names whatever their case, the last one
		// counting; and the body was read to its cap of 64 KiB, so data
		// past it went unseen (helper-190: both were 201).
		{"a name given twice in another case", "application/json", `{"email":"ann@example.com","password":"correct horse battery","Email":"bob@example.com"}`, 400},
		{"data after the value, past the cap", "application/json", `{"email":"ann@example.com","password":"correct horse battery"}` + strings.Repeat(" ", 70<<10) + `{"email":"bob@example.com"}`, 400},
		{"no media type", "application/json; charset", `{"email":"ann@example.com","password":"correct horse battery"}`, 400},
		{"one value", "application/json", `{"email":"ann@example.com","password":"correct horse battery"}`, 201},
	} {
		if r := e.do("POST", "/auth/register", c.ct, c.body); r.code != c.code {
			t.Errorf("%s: %d %s, want %d", c.name, r.code, r.raw, c.code)
		}
	}
	// Each 400 names the field, as the guard's validation does.
	for _, c := range []struct{ contentType, body, field string }{
		{"application/json", `{"email":"ann@example.com","password":"correct horse battery","nick":"a"}`, "body.nick"},
		{"application/json", `{"email":"ann@example.com","password":"correct horse battery","ni\"cké\"":"a"}`, `body.ni"cké"`},
		{"application/json", `{"email":"ann@example.com","password":7}`, "body.password"},
		{"application/json", `{"email":"ann@example.com","PASSWORD":"correct horse battery","password":7}`, "body.password"},
		{"text/plain", `{"email":"ann@example.com","password":"correct horse battery"}`, "header.Content-Type"},
		{"application/json", `{"email":"ann@example.com","password":"short"}`, "body.password"},
		{"application/json", `{"email":"ann\u200b@example.com","password":"correct horse battery"}`, "body.email"},
	} {
		r := e.do("POST", "/auth/register", c.contentType, c.body)
		errs, _ := r.body["errors"].([]any)
		if first, _ := firstOf(errs).(map[string]any); r.code != 400 || first["field"] != c.field {
			t.Errorf("%s %s: %d %s, want 400 naming %s", c.contentType, c.body, r.code, r.raw, c.field)
		}
	}
	// The token endpoint refuses a parameter given twice (RFC 6749
	// section 3.2).
	if r := e.form("/auth/token", url.Values{"grant_type": {"", "password"}, "username": {"ann@example.com"}, "password": {"correct horse battery"}}); r.code != 400 || r.body["error"] != "invalid_request" {
		t.Errorf("grant_type given twice: %d %s, want 400 invalid_request", r.code, r.raw)
	}
}

// Wrong API-key secrets at the client_credentials grant spend the
// address's failed-password budget, as wrong passwords do (the README says
// so): past it, a right password from that address is refused 429, and
// one from another address is not.
func TestWrongKeySecretsSpendTheAddressBudget(t *testing.T) {
	e := onBackend(t, backends[0])
	access, _ := e.register("ann@example.com", "correct horse battery")
	r := e.json("POST", "/api-keys", `{"name":"k","scopes":["apikeys:manage"]}`, bearer(access)...)
	if r.code != 201 {
		t.Fatalf("making a key: %d %s", r.code, r.raw)
	}
	kid, _, _ := strings.Cut(strings.TrimPrefix(r.body["key"].(string), security.APIKeyPrefix), ".")
	spent := false
	for i := 0; i < 50 && !spent; i++ {
		cc := e.form("/auth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {kid}, "client_secret": {"stale"}}, "X-Client", "203.0.113.7")
		switch cc.code {
		case 401:
		case 429:
			spent = true
		default:
			t.Fatalf("a wrong secret: %d %s, want 401 and, past the budget, 429", cc.code, cc.raw)
		}
	}
	if !spent {
		t.Fatal("50 wrong secrets from one address, and no 429")
	}
	if l := e.json("POST", "/auth/login", `{"email":"ann@example.com","password":"correct horse battery"}`, "X-Client", "203.0.113.7"); l.code != 429 {
		t.Errorf("the right password from the address whose budget wrong secrets spent: %d, want 429", l.code)
	}
	if l := e.json("POST", "/auth/login", `{"email":"ann@example.com","password":"correct horse battery"}`, "X-Client", "203.0.113.8"); l.code != 200 {
		t.Errorf("the right password from another address: %d %s, want 200", l.code, l.raw)
	}
}

// firstOf is the first of list, or nil.
func firstOf(list []any) any {
	if len(list) == 0 {
		return nil
	}
	return list[0]
}

// The password and refresh_token grants need no client, but a client that
// authenticates all the same must be one (RFC 6749 sections 4.3.2 and 6):
// a made-up or revoked key in HTTP Basic or the form is refused 401
// invalid_client, not ignored, and is charged to the failed-password
// budget of the address like a wrong key of the client_credentials grant.
// A client only naming itself (Basic with no secret, as Swagger UI's
// password flow sends, or a client_id) or sending its access token is no
// client authentication, and is served.
func TestGrantsCheckTheClientThatAuthenticates(t *testing.T) {
	clk := guardtest.NewClock()
	e := newEnv(t, nil, credentials.NewMemoryAccounts(clk.Now), security.NewMemoryKeyRecords(clk.Now), security.NewMemoryStore(clk.Now), limits.NewMemoryStore(clk.Now),
		credentials.WithClock(clk.Now), credentials.WithTokenTTL(2*time.Hour, 24*time.Hour),
		credentials.WithFailedPasswords(credentials.Budget{Limit: 4, Window: time.Hour}, credentials.Budget{Limit: 100, Window: time.Hour}))
	if err := e.svc.Seed(ctx, []credentials.SeedAccount{{Email: "root@example.com", Password: "root-password-1", Role: "admin"}}, nil); err != nil {
		t.Fatal(err)
	}
	access, refresh := e.login("root@example.com", "root-password-1")
	r := e.json("POST", "/api-keys", `{"name":"k","scopes":["users:read"]}`, bearer(access)...)
	if r.code != 201 {
		t.Fatalf("create a key: %d %s", r.code, r.raw)
	}
	kid, secret, _ := strings.Cut(strings.TrimPrefix(r.body["key"].(string), security.APIKeyPrefix), ".")
	basicOf := func(id, secret string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
	}
	password := func() url.Values {
		return url.Values{"grant_type": {"password"}, "username": {"root@example.com"}, "password": {"root-password-1"}}
	}
	grant := func(v url.Values, header ...string) reply {
		t.Helper()
		clk.Advance(5 * time.Second) // within the operation's own tiers
		if v.Get("grant_type") == "refresh_token" {
			v.Set("refresh_token", refresh)
		}
		r := e.form("/auth/token", v, append(header, "X-Client", "198.51.100.7")...)
		if r.code == 200 && v.Get("grant_type") == "refresh_token" {
			// The family's earlier access tokens end with the rotation.
			access, refresh = r.body["access_token"].(string), r.body["refresh_token"].(string)
		}
		return r
	}
	withForm := func(v url.Values, kv ...string) url.Values {
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	refreshGrant := func() url.Values { return url.Values{"grant_type": {"refresh_token"}} }

	for _, c := range []struct {
		name   string
		form   url.Values
		header []string
	}{
		{"password, a made-up key in Basic", password(), []string{"Authorization", basicOf("nosuchkey", "not-a-secret")}},
		{"password, a wrong secret in the form", withForm(password(), "client_id", kid, "client_secret", "wrong"), nil},
		{"refresh_token, a made-up key in Basic", refreshGrant(), []string{"Authorization", basicOf("nosuchkey", "not-a-secret")}},
		{"refresh_token, an access token and a wrong secret in the form", withForm(refreshGrant(), "client_id", kid, "client_secret", "wrong"), bearer(access)},
		{"password, Basic that does not parse and the key in the form", withForm(password(), "client_id", kid, "client_secret", secret), []string{"Authorization", "Basic !!!"}},
	} {
		if r := grant(c.form, c.header...); r.code != 401 || r.body["error"] != "invalid_client" || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("%s: %d %s %q, want 401 invalid_client with a Basic challenge", c.name, r.code, r.raw, r.header.Get("WWW-Authenticate"))
		}
	}
	// Basic naming another client than the form authenticates is two
	// methods (RFC 6749 section 2.3), charged nothing.
	if r := grant(withForm(password(), "client_id", kid, "client_secret", secret), "Authorization", basicOf("other-client", "")); r.code != 400 || r.body["error"] != "invalid_request" {
		t.Errorf("password, Basic naming another client beside the form's key: %d %s, want 400 invalid_request", r.code, r.raw)
	}
	// Four wrong keys spent the address's budget of 4: the right
	// password is not even checked.
	if r := grant(password(), "Authorization", basicOf("nosuchkey", "not-a-secret")); r.code != 429 {
		t.Errorf("a fifth wrong key on a budget of 4: %d %s, want 429", r.code, r.raw)
	}
	clk.Advance(time.Hour)

	for _, c := range []struct {
		name   string
		form   url.Values
		header []string
	}{
		{"password, the key in Basic", password(), []string{"Authorization", basicOf(kid, secret)}},
		{"password, the key in the form", withForm(password(), "client_id", security.APIKeyPrefix+kid, "client_secret", secret), nil},
		{"password, Basic with no secret", password(), []string{"Authorization", basicOf("swagger-ui", "")}},
		{"password, Basic with nothing", password(), []string{"Authorization", basicOf("", "")}},
		{"password, a client_id alone", withForm(password(), "client_id", "my-app"), nil},
		{"password, an access token", password(), bearer(access)},
		{"refresh_token, the key in Basic", refreshGrant(), []string{"Authorization", basicOf(kid, secret)}},
		{"refresh_token, an access token", refreshGrant(), bearer(access)},
		{"refresh_token, an access token and the key in the form", withForm(refreshGrant(), "client_id", kid, "client_secret", secret), bearer(access)},
		{"password, Basic with no secret and the key in the form", withForm(password(), "client_id", kid, "client_secret", secret), []string{"Authorization", basicOf("", "")}},
	} {
		if r := grant(c.form, c.header...); r.code != 200 {
			t.Errorf("%s: %d %s, want 200", c.name, r.code, r.raw)
		}
	}
	// A revoked key is no client.
	if r := e.do("DELETE", "/api-keys/"+kid, "", "", bearer(access)...); r.code != 204 {
		t.Fatalf("revoke: %d %s", r.code, r.raw)
	}
	if r := grant(password(), "Authorization", basicOf(kid, secret)); r.code != 401 || r.body["error"] != "invalid_client" {
		t.Errorf("password, a revoked key in Basic: %d %s, want 401 invalid_client", r.code, r.raw)
	}
}

// A token request without grant_type is malformed (RFC 6749 section 5.2,
// invalid_request), not a grant the server does not serve; without the
// guard's validation too.
func TestMissingGrantTypeIsInvalidRequest(t *testing.T) {
	e := unvalidatedEnv(t, nil)
	for _, body := range []string{"", "username=ann%40example.com&password=x", "grant_type="} {
		r := e.do("POST", "/auth/token", "application/x-www-form-urlencoded", body)
		if r.code != 400 || r.body["error"] != "invalid_request" {
			t.Errorf("%q: %d %s, want 400 invalid_request", body, r.code, r.raw)
		}
	}
}
