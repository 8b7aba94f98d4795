package credentials_test

import (
	"context"
	"fmt"
	"net/url"
	"testing"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/internal/redistest"
	"github.com/specguard/specguard/limits/redislimit"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/redisstore"
	"github.com/specguard/specguard/security/tokens"
)

// A login whose password check is interrupted by a disable of the account
// (on this instance or another: the state is the database's and the
// store's) must not leave a working credential behind: whatever comes back
// is refused at its first use.
func TestDisableWhilePasswordIsChecked(t *testing.T) {
	var disable func(ctx context.Context, id string)
	e := onBackend(t, backends[0], credentials.WithPasswordChecked(func(ctx context.Context, a *credentials.Account) {
		if disable != nil {
			disable(ctx, a.ID)
		}
	}))
	withToken := func(r reply) reply { return e.do("GET", "/me", "", "", bearer(fmt.Sprint(r.body["access_token"]))...) }
	for _, tc := range []struct {
		name  string
		login func(email string) reply
		use   func(r reply) reply
	}{
		{"login", func(email string) reply {
			return e.json("POST", "/auth/login", `{"email":"`+email+`","password":"correct horse battery"}`)
		}, withToken},
		{"password grant", func(email string) reply {
			return e.form("/auth/token", url.Values{"grant_type": {"password"}, "username": {email}, "password": {"correct horse battery"}})
		}, withToken},
		{"browser session", func(email string) reply {
			return e.json("POST", "/auth/session", `{"email":"`+email+`","password":"correct horse battery"}`)
		}, func(r reply) reply {
			var cookie string
			for _, c := range r.cookie {
				cookie += c.Name + "=" + c.Value + "; "
			}
			return e.do("GET", "/me", "", "", "Cookie", cookie)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			email := fmt.Sprintf("%d@example.com", len(tc.name))
			if r := e.json("POST", "/auth/register", `{"email":"`+email+`","password":"correct horse battery"}`); r.code != 201 {
				t.Fatalf("register: %d %s", r.code, r.raw)
			}
			disabled := false
			disable = func(ctx context.Context, id string) {
				if err := e.svc.Disable(ctx, id); err != nil {
					t.Errorf("disable: %v", err)
				}
				disabled = true
			}
			defer func() { disable = nil }()
			r := tc.login(email)
			if !disabled {
				t.Fatal("the password check did not run")
			}
			switch r.code {
			case 401, 400: // refused outright (400: the OAuth2 invalid_grant)
				return
			case 200, 201:
				if got := tc.use(r); got.code != 401 {
					t.Errorf("a credential minted while its account was disabled: first use %d, want 401: %s", got.code, got.raw)
				}
			default:
				t.Fatalf("%s: %d %s", tc.name, r.code, r.raw)
			}
		})
	}
}

// failingCommits are accounts whose updates, while fail is set, publish
// their new state and then fail to commit, as a database that goes away
// between the two would; with failReads, reading an account fails too, as
// putting the store back after the failed commit must read it.
type failingCommits struct {
	credentials.Accounts
	fail, failReads bool
	// during, when not nil, runs once the failing update published its
	// state, before its commit fails.
	during func()
}

func (r *failingCommits) Account(ctx context.Context, id string) (*credentials.Account, error) {
	if r.failReads {
		return nil, fmt.Errorf("%w: the database went away", security.ErrUnavailable)
	}
	return r.Accounts.Account(ctx, id)
}

func (r *failingCommits) UpdateAccount(ctx context.Context, id string, change func(*credentials.Account) error, publish func(*credentials.Account) error) (*credentials.Account, error) {
	if !r.fail {
		return r.Accounts.UpdateAccount(ctx, id, change, publish)
	}
	_, err := r.Accounts.UpdateAccount(ctx, id, change, func(a *credentials.Account) error {
		if err := publish(a); err != nil {
			return err
		}
		if r.during != nil {
			r.during()
		}
		return fmt.Errorf("%w: commit failed", security.ErrUnavailable)
	})
	return nil, err
}

// fleet is two instances on one database and one Redis, the first one's
// account updates failing at will.
func fleet(t *testing.T, state func(security.Store) security.Store) (x, y *env, xAccounts *failingCommits, srv *redistest.Server) {
	srv = redistest.Start(t)
	rdb := srv.Client(t)
	accounts, keys := backends[1].accounts(t) // SQLite
	key, err := tokens.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	instance := func(acc credentials.Accounts) *env {
		var store security.Store = redisstore.New(rdb, srv.Prefix, storeTimeout)
		if state != nil {
			store = state(store)
		}
		return newEnvKey(t, nil, key, acc, keys, store, redislimit.New(rdb, srv.Prefix+"rl:"))
	}
	xAccounts = &failingCommits{Accounts: accounts}
	x, y = instance(xAccounts), instance(accounts)
	for _, e := range []*env{x, y} {
		if err := e.svc.Seed(ctx, []credentials.SeedAccount{{Email: "root@example.com", Password: "root-password-1", Role: "admin"}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	return x, y, xAccounts, srv
}

// A change published to the store whose commit then failed never lets an
// instance decide with it: the store is set back to the database's state,
// and the next change takes a version no state ever had, so an instance
// that cached the abandoned state sees it is stale.
func TestFailedCommitIsNeverEnforced(t *testing.T) {
	x, y, xAccounts, _ := fleet(t, nil)
	admin, _ := x.login("root@example.com", "root-password-1")
	// The moderator's token holds users:read.
	mod, _ := x.register("mod@example.com", "mod-password-1")
	id := fmt.Sprint(x.do("GET", "/me", "", "", bearer(mod)...).body["id"])
	if r := x.json("PATCH", "/admin/users/"+id, `{"role":"moderator"}`, bearer(admin)...); r.code != 200 {
		t.Fatalf("promotion: %d %s", r.code, r.raw)
	}
	mod, _ = x.login("mod@example.com", "mod-password-1")
	for name, e := range map[string]*env{"X": x, "Y": y} {
		if r := e.do("GET", "/admin/users", "", "", bearer(mod)...); r.code != 200 {
			t.Fatalf("moderator lists users on %s: %d", name, r.code)
		}
	}
	// On X a demotion is published, then its commit fails: 503, and the
	// moderator is still a moderator everywhere.
	xAccounts.fail = true
	if r := x.json("PATCH", "/admin/users/"+id, `{"role":"user"}`, bearer(admin)...); r.code != 503 {
		t.Fatalf("a demotion whose commit failed: %d %s, want 503", r.code, r.raw)
	}
	xAccounts.fail = false
	for name, e := range map[string]*env{"X": x, "Y": y} {
		if r := e.do("GET", "/admin/users", "", "", bearer(mod)...); r.code != 200 {
			t.Errorf("after the failed demotion, the moderator on %s: %d, want 200 (the database was not changed)", name, r.code)
		}
	}
	// On Y a demotion that commits: the next request narrows everywhere.
	if r := y.json("PATCH", "/admin/users/"+id, `{"role":"user"}`, bearer(admin)...); r.code != 200 {
		t.Fatalf("demotion on Y: %d %s", r.code, r.raw)
	}
	for name, e := range map[string]*env{"X": x, "Y": y} {
		if r := e.do("GET", "/admin/users", "", "", bearer(mod)...); r.code != 403 {
			t.Errorf("after the demotion, the former moderator on %s: %d, want 403", name, r.code)
		}
	}
	// And back: a promotion whose commit fails leaves no wider grant.
	xAccounts.fail = true
	if r := x.json("PATCH", "/admin/users/"+id, `{"role":"moderator"}`, bearer(admin)...); r.code != 503 {
		t.Fatalf("a promotion whose commit failed: %d, want 503", r.code)
	}
	xAccounts.fail = false
	for name, e := range map[string]*env{"X": x, "Y": y} {
		if r := e.do("GET", "/admin/users", "", "", bearer(mod)...); r.code != 403 {
			t.Errorf("after the failed promotion, on %s: %d, want 403 (the database says user)", name, r.code)
		}
	}
}

// A logout everywhere whose commit failed ends nothing, on every instance,
// even one that checked the account's credentials while its NotBefore was
// in the store: that instance remembered its access token as revoked, and
// refused it (401 "credential revoked") while the other admitted it, for
// as long as the token stayed in its cache.
func TestFailedLogoutEverywhereEndsNothing(t *testing.T) {
	x, y, xAccounts, _ := fleet(t, nil)
	access, _ := x.register("u@example.com", "user-password-1")
	cookie, _ := x.browserLogin("u@example.com", "user-password-1")
	k := x.json("POST", "/api-keys", `{"name":"k","scopes":["account:manage"]}`, bearer(access)...)
	if k.code != 201 {
		t.Fatalf("key: %d %s", k.code, k.raw)
	}
	creds := map[string][]string{"access token": bearer(access), "session": {"Cookie", cookie}, "API key": {"X-API-Key", fmt.Sprint(k.body["key"])}}
	for name, h := range creds {
		if r := y.do("GET", "/me", "", "", h...); r.code != 200 {
			t.Fatalf("%s on Y before: %d", name, r.code)
		}
	}
	during := map[string]int{}
	xAccounts.fail, xAccounts.during = true, func() {
		for name, h := range creds {
			during[name] = y.do("GET", "/me", "", "", h...).code
		}
	}
	if r := x.do("POST", "/auth/logout-all", "", "", bearer(access)...); r.code != 503 {
		t.Fatalf("a logout everywhere whose commit failed: %d %s, want 503", r.code, r.raw)
	}
	xAccounts.fail, xAccounts.during = false, nil
	if len(during) != len(creds) {
		t.Fatalf("the requests on Y while the change was published did not run: %v", during)
	}
	for name, h := range creds {
		for en, e := range map[string]*env{"X": x, "Y": y} {
			if r := e.do("GET", "/me", "", "", h...); r.code != 200 {
				t.Errorf("after the failed logout everywhere (on Y meanwhile: %d), %s on %s: %d, want 200 (the database was not changed): %s", during[name], name, en, r.code, r.raw)
			}
		}
	}
	// One that commits ends them all, everywhere.
	if r := x.do("POST", "/auth/logout-all", "", "", bearer(access)...); r.code != 204 {
		t.Fatalf("logout everywhere: %d %s", r.code, r.raw)
	}
	for name, h := range creds {
		for en, e := range map[string]*env{"X": x, "Y": y} {
			if r := e.do("GET", "/me", "", "", h...); r.code != 401 {
				t.Errorf("after logout everywhere, %s on %s: %d, want 401", name, en, r.code)
			}
		}
	}
}

// untidyStore fails RevokeSubject, the tidying after a logout everywhere.
type untidyStore struct{ security.Store }

func (untidyStore) RevokeSubject(context.Context, string) error {
	return fmt.Errorf("%w: a Redis blip", security.ErrUnavailable)
}

// A change published whose commit failed, and whose repair failed too,
// left its version in the store: a login meanwhile was minted at it, and
// once the store forgot the state, the next change took the same version,
// so a logout everywhere at that version spared the credential. Credentials
// are minted at the version the database committed now: every later
// change's NotBefore passes it.
func TestFailedCommitVersionIsNeverMintedAt(t *testing.T) {
	// Ending every credential relies on the account's NotBefore; deleting
	// the records is tidying, which may fail (it is logged): it does here.
	x, _, xAccounts, srv := fleet(t, func(s security.Store) security.Store { return untidyStore{s} })
	admin, _ := x.login("root@example.com", "root-password-1")
	before, _ := x.register("user@example.com", "user-password-1")
	id := fmt.Sprint(x.do("GET", "/me", "", "", bearer(before)...).body["id"])

	// A promotion is published, its commit fails, and so does putting the
	// store back: the store holds a version the database never reached.
	xAccounts.fail, xAccounts.failReads = true, true
	if r := x.json("PATCH", "/admin/users/"+id, `{"role":"moderator"}`, bearer(admin)...); r.code != 503 {
		t.Fatalf("a promotion whose commit failed: %d %s, want 503", r.code, r.raw)
	}
	xAccounts.fail, xAccounts.failReads = false, false
	during := x.json("POST", "/auth/login", `{"email":"user@example.com","password":"user-password-1"}`)
	if during.code != 200 && during.code != 503 {
		t.Fatalf("a login while the store holds the uncommitted version: %d", during.code)
	}
	// The store forgets the account's state (as it does after AccountTTL);
	// then the user logs out everywhere.
	rdb := srv.Client(t)
	keys, err := rdb.Keys(ctx, srv.Prefix+"{u:"+id+"}:acct").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("the account's mirror in Redis: %v %v", keys, err)
	}
	rdb.Del(ctx, keys...)
	if r := x.do("POST", "/auth/logout-all", "", "", bearer(before)...); r.code != 204 {
		t.Fatalf("logout-all: %d %s", r.code, r.raw)
	}
	if during.code == 200 {
		if r := x.do("GET", "/me", "", "", bearer(fmt.Sprint(during.body["access_token"]))...); r.code != 401 {
			t.Errorf("a token minted while the store held the uncommitted version, after logout everywhere: %d, want 401", r.code)
		}
	}
	if r := x.do("GET", "/me", "", "", bearer(before)...); r.code != 401 {
		t.Errorf("the token from before, after logout everywhere: %d, want 401", r.code)
	}
}
