package credentials_test

import (
	"context"
	"net/url"
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/security"
)

// changingAccounts runs change once, right after a login has read the
// account it checks the password of: the owner's password change (and
// logout everywhere) commits while the check runs.
type changingAccounts struct {
	credentials.Accounts
	change func(id string)
}

func (a *changingAccounts) AccountByEmail(ctx context.Context, email string) (*credentials.Account, error) {
	acct, err := a.Accounts.AccountByEmail(ctx, email)
	if err == nil && a.change != nil {
		f := a.change
		a.change = nil
		f(acct.ID)
	}
	return acct, err
}

// A login with the old password that raced the owner's password change
// and logout everywhere got a credential minted after the logout, which
// worked; with a hash of older parameters (a users file's bcrypt) its
// upgrade also wrote the old password back over the new one. Now the
// login is refused, on every way in, and the new password stands.
func TestLoginRacingAPasswordChange(t *testing.T) {
	old, err := bcrypt.GenerateFromPassword([]byte("old-password-1"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, hash := range []struct {
		name string
		seed credentials.SeedAccount
	}{
		{"current hash", credentials.SeedAccount{Email: "owner@example.com", Password: "old-password-1", Role: "user"}},
		{"bcrypt hash, upgraded at login", credentials.SeedAccount{Email: "owner@example.com", PasswordHash: string(old), Role: "user"}},
	} {
		for _, way := range []string{"login", "token", "session"} {
			for _, change := range []string{"password change", "logout everywhere"} {
				t.Run(hash.name+", "+way+", "+change, func(t *testing.T) {
					ctx := context.Background()
					accounts := &changingAccounts{Accounts: credentials.NewMemoryAccounts(nil)}
					e := newEnv(t, nil, accounts, security.NewMemoryKeyRecords(nil), security.NewMemoryStore(nil), limits.NewMemoryStore(nil))
					if err := e.svc.Seed(ctx, []credentials.SeedAccount{hash.seed}, nil); err != nil {
						t.Fatal(err)
					}
					password := "old-password-1"
					accounts.change = func(id string) {
						var err error
						if change != "logout everywhere" {
							password = "new-password-1"
							err = e.svc.ChangePassword(ctx, id, password)
						} else {
							err = e.svc.LogoutAll(ctx, id)
						}
						if err != nil {
							t.Error(err)
						}
					}
					var r reply
					switch way {
					case "login":
						r = e.json("POST", "/auth/login", `{"email":"owner@example.com","password":"old-password-1"}`)
					case "token":
						r = e.form("/auth/token", url.Values{"grant_type": {"password"}, "username": {"owner@example.com"}, "password": {"old-password-1"}})
					case "session":
						r = e.json("POST", "/auth/session", `{"email":"owner@example.com","password":"old-password-1"}`)
					}
					if r.code < 400 || r.code >= 500 {
						t.Errorf("the login that raced the change: %d %s, want refused", r.code, r.raw)
					}
					if tok, _ := r.body["access_token"].(string); tok != "" {
						if m := e.do("GET", "/me", "", "", bearer(tok)...); m.code == 200 {
							t.Errorf("its token works after the logout everywhere")
						}
					}
					if r := e.json("POST", "/auth/login", `{"email":"owner@example.com","password":"`+password+`"}`); r.code != 200 {
						t.Errorf("the password now: %d %s, want 200", r.code, r.raw)
					}
					if password != "old-password-1" {
						if r := e.json("POST", "/auth/login", `{"email":"owner@example.com","password":"old-password-1"}`); r.code != 401 {
							t.Errorf("the old password afterwards: %d, want 401", r.code)
						}
					}
				})
			}
		}
	}
}

// Two logins with the right password on an account whose hash is of
// older parameters overlap: the second upgrades the hash while the first
// checks it. The first was refused, its password taken for a changed one;
// the hash found decides now.
func TestConcurrentLoginsOnAnOldHash(t *testing.T) {
	ctx := context.Background()
	old, err := bcrypt.GenerateFromPassword([]byte("old-password-1"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	accounts := &changingAccounts{Accounts: credentials.NewMemoryAccounts(nil)}
	e := newEnv(t, nil, accounts, security.NewMemoryKeyRecords(nil), security.NewMemoryStore(nil), limits.NewMemoryStore(nil))
	if err := e.svc.Seed(ctx, []credentials.SeedAccount{{Email: "owner@example.com", PasswordHash: string(old), Role: "user"}}, nil); err != nil {
		t.Fatal(err)
	}
	var second reply
	accounts.change = func(string) {
		second = e.json("POST", "/auth/login", `{"email":"owner@example.com","password":"old-password-1","device":"phone"}`)
	}
	first := e.json("POST", "/auth/login", `{"email":"owner@example.com","password":"old-password-1","device":"laptop"}`)
	if second.code != 200 || first.code != 200 {
		t.Errorf("two logins with the right password: %d and %d (%s), want 200 for both", second.code, first.code, first.raw)
	}
	if tok, _ := first.body["access_token"].(string); tok == "" || e.do("GET", "/me", "", "", bearer(tok)...).code != 200 {
		t.Errorf("the first login's token does not work")
	}
}

// Without WithClientAddr the failed-password budget per address counted
// each IPv6 address apart: a client rotating through its /64 was never
// refused by it. It counts the /64, as the limiter does by default.
func TestFailedPasswordBudgetCountsAnIPv6Network(t *testing.T) {
	e := newEnv(t, nil, credentials.NewMemoryAccounts(nil), security.NewMemoryKeyRecords(nil), security.NewMemoryStore(nil), limits.NewMemoryStore(nil),
		credentials.WithClientAddr(nil), // the default: the socket peer
		credentials.WithFailedPasswords(credentials.Budget{Limit: 3, Window: time.Hour}, credentials.Budget{Limit: 100, Window: time.Hour}))
	var codes []int
	for i := range 4 {
		r := e.json("POST", "/auth/login", `{"email":"nobody`+itoa(int64(i))+`@example.com","password":"guess-guess"}`, "X-Client", "[2001:db8::"+itoa(int64(i+1))+"]")
		codes = append(codes, r.code)
	}
	if want := []int{401, 401, 401, 429}; !slices.Equal(codes, want) {
		t.Errorf("four wrong passwords from four addresses of one /64: %v, want %v", codes, want)
	}
	// IPv4 clients a NAT64 presents in 64:ff9b::/96 count apart, as the
	// limiter counts them (helper-151): here they shared one /64.
	codes = nil
	for i := range 4 {
		r := e.json("POST", "/auth/login", `{"email":"nat`+itoa(int64(i))+`@example.com","password":"guess-guess"}`, "X-Client", "[64:ff9b::c000:2"+itoa(int64(i+1))+"]")
		codes = append(codes, r.code)
	}
	if want := []int{401, 401, 401, 401}; !slices.Equal(codes, want) {
		t.Errorf("four wrong passwords from four IPv4 clients behind a NAT64: %v, want %v", codes, want)
	}
}

// A password change ends every credential the account holds, in the same
// change: a token, its refresh token, a browser session and an API key
// made with the old password stop working, the old password stops opening
// the account and the new one opens it.
func TestChangePasswordEndsEveryCredential(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil, credentials.NewMemoryAccounts(nil), security.NewMemoryKeyRecords(nil), security.NewMemoryStore(nil), limits.NewMemoryStore(nil))
	if err := e.svc.Seed(ctx, []credentials.SeedAccount{{Email: "owner@example.com", Password: "old-password-1", Role: "admin"}}, nil); err != nil {
		t.Fatal(err)
	}
	access, refresh := e.login("owner@example.com", "old-password-1")
	cookie, _ := e.browserLogin("owner@example.com", "old-password-1")
	k := e.json("POST", "/api-keys", `{"name":"ci","scopes":["users:read"]}`, bearer(access)...)
	if k.code != 201 {
		t.Fatalf("key: %d %s", k.code, k.raw)
	}
	if err := e.svc.ChangePassword(ctx, credentials.SeedID("owner@example.com"), ""); err == nil {
		t.Error("an empty password: nil error")
	}
	if err := e.svc.ChangePassword(ctx, credentials.SeedID("owner@example.com"), "new-password-1"); err != nil {
		t.Fatal(err)
	}
	for what, header := range map[string][]string{
		"the token":   bearer(access),
		"the session": {"Cookie", cookie},
		"the API key": {"X-API-Key", k.body["key"].(string)},
	} {
		if r := e.do("GET", "/me", "", "", header...); r.code != 401 {
			t.Errorf("%s after the change: %d, want 401", what, r.code)
		}
	}
	if r := e.json("POST", "/auth/refresh", `{"refresh_token":"`+refresh+`"}`); r.code != 401 {
		t.Errorf("the refresh token after the change: %d, want 401", r.code)
	}
	if r := e.json("POST", "/auth/login", `{"email":"owner@example.com","password":"old-password-1"}`); r.code != 401 {
		t.Errorf("the old password: %d, want 401", r.code)
	}
	if r := e.json("POST", "/auth/login", `{"email":"owner@example.com","password":"new-password-1"}`); r.code != 200 {
		t.Errorf("the new password: %d %s, want 200", r.code, r.raw)
	}
}
