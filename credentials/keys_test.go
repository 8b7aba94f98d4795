package credentials_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/internal/guardtest"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/security"
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
