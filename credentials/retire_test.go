package credentials_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/security"
)

// failingPublish is a store whose next PutAccount fails once armed: a
// Redis that drops a connection while an account change is published.
type failingPublish struct {
	*security.MemoryStore
	armed atomic.Bool
}

func (f *failingPublish) PutAccount(ctx context.Context, subject string, a security.Account) (security.Account, error) {
	if f.armed.CompareAndSwap(true, false) {
		return security.Account{}, errors.New("redis: connection reset")
	}
	return f.MemoryStore.PutAccount(ctx, subject, a)
}

// afterLookup runs hook once, after the next account found by address:
// another instance acting between Retire's read and its change.
type afterLookup struct {
	*credentials.MemoryAccounts
	hook func(a *credentials.Account)
}

func (w *afterLookup) AccountByEmail(ctx context.Context, email string) (*credentials.Account, error) {
	a, err := w.MemoryAccounts.AccountByEmail(ctx, email)
	if err == nil && w.hook != nil {
		h := w.hook
		w.hook = nil
		h(a)
	}
	return a, err
}

// demoUser is a published account; retirements are what Retire does with
// it: disable it (no users file names it), or give it the users file's
// password (one does).
var (
	demoUser    = []credentials.SeedAccount{{Email: "user@example.com", Password: "user-password", Role: "user"}}
	retirements = map[string][]credentials.SeedAccount{
		"disable": nil,
		"keep":    {{Email: "user@example.com", Password: "users-file-password", Role: "user"}},
	}
)

// A demo account whose owner changes its password while Retire checks it
// (another instance serving meanwhile) is a real account: Retire leaves
// it, and the owner's acknowledged password, alone, whether it would have
// disabled it or given it the users file's password.
func TestRetireLeavesAConcurrentPasswordChange(t *testing.T) {
	for name, keep := range retirements {
		t.Run(name, func(t *testing.T) {
			accts := &afterLookup{MemoryAccounts: credentials.NewMemoryAccounts(nil)}
			e := newEnv(t, nil, accts, security.NewMemoryKeyRecords(nil), security.NewMemoryStore(nil), limits.NewMemoryStore(nil))
			if err := e.svc.Seed(ctx, demoUser, nil); err != nil {
				t.Fatal(err)
			}
			accts.hook = func(a *credentials.Account) {
				if err := e.svc.ChangePassword(ctx, a.ID, "owners-own-password"); err != nil {
					t.Fatal(err)
				}
			}
			if err := e.svc.Retire(ctx, demoUser, keep, nil); err != nil {
				t.Fatal(err)
			}
			if r := e.json("POST", "/auth/login", `{"email":"user@example.com","password":"owners-own-password"}`); r.code != 200 {
				t.Errorf("the owner's new password after Retire: %d %s, want 200", r.code, r.raw)
			}
		})
	}
}

// A login with the published password on an instance hashing with other
// parameters rehashes it while Retire checks the account: the password is
// still the published one, and Retire still retires the account.
func TestRetireSeesThroughARehash(t *testing.T) {
	for name, keep := range retirements {
		t.Run(name, func(t *testing.T) {
			accts := &afterLookup{MemoryAccounts: credentials.NewMemoryAccounts(nil)}
			keys, store, lim := security.NewMemoryKeyRecords(nil), security.NewMemoryStore(nil), limits.NewMemoryStore(nil)
			e := newEnv(t, nil, accts, keys, store, lim)
			other := newEnv(t, nil, accts, keys, store, lim, credentials.WithArgon2(credentials.Argon2{Memory: 2048, Time: 1, Threads: 1}))
			if err := e.svc.Seed(ctx, demoUser, nil); err != nil {
				t.Fatal(err)
			}
			before, err := accts.AccountByEmail(ctx, "user@example.com")
			if err != nil {
				t.Fatal(err)
			}
			accts.hook = func(*credentials.Account) {
				if r := other.json("POST", "/auth/login", `{"email":"user@example.com","password":"user-password"}`); r.code != 200 {
					t.Fatalf("the other instance's login: %d %s", r.code, r.raw)
				}
			}
			if err := e.svc.Retire(ctx, demoUser, keep, nil); err != nil {
				t.Fatal(err)
			}
			after, err := accts.AccountByEmail(ctx, "user@example.com")
			if err != nil {
				t.Fatal(err)
			}
			if after.PasswordHash == before.PasswordHash {
				t.Fatal("the other instance's login did not rehash the password")
			}
			if r := e.json("POST", "/auth/login", `{"email":"user@example.com","password":"user-password"}`); r.code != 401 {
				t.Errorf("the published password after Retire: %d, want 401", r.code)
			}
		})
	}
}

// A demo account that a users file names gets the file's password and
// loses every credential opened with the published one in one change. When
// that change fails, the account keeps its published password, and the
// next start retires it: a password committed apart from the end of its
// credentials left it never retired again, its demo sessions alive.
func TestRetireIsOneChange(t *testing.T) {
	store := &failingPublish{MemoryStore: security.NewMemoryStore(nil)}
	e := newEnv(t, nil, credentials.NewMemoryAccounts(nil), security.NewMemoryKeyRecords(nil), store, limits.NewMemoryStore(nil))
	demo := []credentials.SeedAccount{{Email: "user@example.com", Password: "user-password", Role: "user"}}
	if err := e.svc.Seed(ctx, demo, nil); err != nil {
		t.Fatal(err)
	}
	cookie, _ := e.browserLogin("user@example.com", "user-password")
	keep := []credentials.SeedAccount{{Email: "user@example.com", Password: "new-secret-password", Role: "user"}}
	store.armed.Store(true)
	if err := e.svc.Retire(ctx, demo, keep, nil); err == nil {
		t.Fatal("Retire with a store failing: nil error")
	}
	if r := e.json("POST", "/auth/session", `{"email":"user@example.com","password":"new-secret-password"}`); r.code != 401 {
		t.Errorf("the users file's password after a failed Retire: %d, want 401 (nothing committed)", r.code)
	}
	if err := e.svc.Retire(ctx, demo, keep, nil); err != nil { // the next start
		t.Fatal(err)
	}
	if r := e.json("POST", "/auth/session", `{"email":"user@example.com","password":"user-password"}`); r.code != 401 {
		t.Errorf("the published password after Retire: %d, want 401", r.code)
	}
	if r := e.do("GET", "/me", "", "", "Cookie", cookie); r.code != 401 {
		t.Errorf("a session opened with the published password, after Retire: %d %s, want 401", r.code, r.raw)
	}
	if r := e.json("POST", "/auth/session", `{"email":"user@example.com","password":"new-secret-password"}`); r.code != 201 {
		t.Errorf("the users file's password after Retire: %d %s, want 201", r.code, r.raw)
	}
}

// A browser session ends once unused for the idle bound (an hour unless
// WithSessionIdle says otherwise), before its lifetime; each request it
// authenticates is a use.
func TestSessionIdle(t *testing.T) {
	store := security.NewMemoryStore(nil)
	e := newEnv(t, nil, credentials.NewMemoryAccounts(nil), security.NewMemoryKeyRecords(nil), store, limits.NewMemoryStore(nil),
		credentials.WithSessionIdle(900*time.Millisecond)) // wide: a loaded machine runs tests under -race
	if err := e.svc.Seed(ctx, []credentials.SeedAccount{{Email: "user@example.com", Password: "user-password", Role: "user"}}, nil); err != nil {
		t.Fatal(err)
	}
	cookie, _ := e.browserLogin("user@example.com", "user-password")
	// A second session, used once (this instance remembers it), then left.
	left, _ := e.browserLogin("user@example.com", "user-password")
	if r := e.do("GET", "/me", "", "", "Cookie", left); r.code != 200 {
		t.Fatalf("the second session: %d %s", r.code, r.raw)
	}
	for i := range 4 { // used every third of the bound: past it in all
		time.Sleep(300 * time.Millisecond)
		if r := e.do("GET", "/me", "", "", "Cookie", cookie); r.code != 200 {
			t.Fatalf("use %d, within the idle bound: %d %s", i+1, r.code, r.raw)
		}
	}
	time.Sleep(1350 * time.Millisecond)
	if r := e.do("GET", "/me", "", "", "Cookie", cookie); r.code != 401 {
		t.Errorf("after going unused past the idle bound: %d, want 401", r.code)
	}
	// A logout by token beside the cookie of the session left idle clears
	// it, no CSRF token asked: the session this instance remembers has ended.
	access, _ := e.login("user@example.com", "user-password")
	for _, op := range []string{"/auth/logout", "/auth/logout-all"} {
		if r := e.do("POST", op, "", "", append(bearer(access), "Cookie", left)...); r.code != 204 || len(r.cookie) != 2 {
			t.Errorf("%s by token beside the idle-ended session's cookie: %d %s (%d cookies set), want 204 clearing both", op, r.code, r.raw, len(r.cookie))
		}
		access, _ = e.login("user@example.com", "user-password")
	}

	// The default: an hour.
	e = newEnv(t, nil, credentials.NewMemoryAccounts(nil), security.NewMemoryKeyRecords(nil), store, limits.NewMemoryStore(nil))
	if err := e.svc.Seed(ctx, []credentials.SeedAccount{{Email: "other@example.com", Password: "other-password", Role: "user"}}, nil); err != nil {
		t.Fatal(err)
	}
	if r := e.json("POST", "/auth/session", `{"email":"other@example.com","password":"other-password"}`); r.code != 201 {
		t.Fatalf("browser login: %d %s", r.code, r.raw)
	}
	list, err := store.Sessions(ctx, credentials.SeedID("other@example.com"))
	if err != nil || len(list) != 1 || list[0].Idle != time.Hour {
		t.Errorf("a session by default: %+v, %v; want Idle 1h", list, err)
	}
}

// A users file that names a demo account with its published password, in
// another form of it (full-width letters: the same password in NFKC), asks
// for that very password: Retire leaves the account and its logins alone.
func TestRetireReadsPasswordsInNFKC(t *testing.T) {
	e := newEnv(t, nil, credentials.NewMemoryAccounts(nil), security.NewMemoryKeyRecords(nil), security.NewMemoryStore(nil), limits.NewMemoryStore(nil))
	if err := e.svc.Seed(ctx, demoUser, nil); err != nil {
		t.Fatal(err)
	}
	access, _ := e.login("user@example.com", "user-password")
	keep := []credentials.SeedAccount{{Email: "user@example.com", Password: "ｕｓｅｒ-ｐａｓｓｗｏｒｄ", Role: "user"}}
	if err := e.svc.Retire(ctx, demoUser, keep, nil); err != nil {
		t.Fatal(err)
	}
	if r := e.do("GET", "/me", "", "", bearer(access)...); r.code != 200 {
		t.Errorf("a token of the account after Retire with the same password in full-width letters: %d, want 200 (nothing retired)", r.code)
	}
}
