package security_test

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/apikeys"
	"github.com/specguard/specguard/security/sessions"
)

// memoAccounts knows every account, as role "writer" at version 1.
type memoAccounts struct{}

func (memoAccounts) AccountState(context.Context, string) (security.Account, error) {
	return security.Account{Version: 1, Role: "writer"}, nil
}

// A session or API key presented again authenticates to the same
// read-only principal, as a cached token does (no allocation for it), and
// to a new one once its account's state changed: a role change narrows
// its scopes at once.
func TestCachedCredentialsShareTheirPrincipal(t *testing.T) {
	ctx := context.Background()
	store := security.NewMemoryStore(nil)
	roles := map[string][]string{"writer": {"a:read", "a:write"}, "reader": {"a:read"}}
	scopes := func(role string) []string { return roles[role] }
	accounts := security.NewAccounts(store, memoAccounts{}, scopes)
	ss := sessions.New(store, scopes, sessions.WithAccounts(accounts))
	keys := apikeys.New(store, security.NewMemoryKeyRecords(nil), apikeys.WithAccounts(accounts))

	sess, err := ss.Create(ctx, "alice", "writer", "test")
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := keys.Create(ctx, "alice", "ci", []string{"a:read", "a:write"})
	if err != nil {
		t.Fatal(err)
	}
	cookie := &policy.Scheme{Name: "cookieAuth", Type: policy.SchemeAPIKeyCookie, Param: "sid"}
	header := &policy.Scheme{Name: "keyAuth", Type: policy.SchemeAPIKeyHeader, Param: "X-API-Key"}
	auth := map[string]func() (*security.Principal, error){
		"session": func() (*security.Principal, error) {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("Cookie", "sid="+sess.Cookie)
			return ss.Authenticate(ctx, r, cookie)
		},
		"api key": func() (*security.Principal, error) {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("X-API-Key", key)
			return keys.Authenticate(ctx, r, header)
		},
	}
	first := map[string]*security.Principal{}
	for name, a := range auth {
		p1, err := a()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		p2, err := a()
		if err != nil {
			t.Fatalf("%s again: %v", name, err)
		}
		if p1 != p2 {
			t.Errorf("%s: presented twice, two principals: want the cached one again", name)
		}
		if !p1.HasScope("a:write") {
			t.Errorf("%s: scopes %v, want a:write", name, p1.Scopes)
		}
		first[name] = p1
	}
	floor, err := accounts.Floor(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := accounts.Publish(ctx, "alice", security.Account{Version: floor + 1, Role: "reader"}); err != nil {
		t.Fatal(err)
	}
	for name, a := range auth {
		p, err := a()
		if err != nil {
			t.Fatalf("%s after the role change: %v", name, err)
		}
		if p == first[name] || p.HasScope("a:write") || p.Role != "reader" {
			t.Errorf("%s after the role change: role %q, scopes %v (same principal: %v), want reader without a:write", name, p.Role, p.Scopes, p == first[name])
		}
	}
}
