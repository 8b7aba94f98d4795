package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/credentials/sqlstore"
	"github.com/specguard/specguard/internal/keytest"
	"github.com/specguard/specguard/internal/pgtest"
	"github.com/specguard/specguard/internal/redistest"
	"github.com/specguard/specguard/sqldb"
)

var loginSeq atomic.Int64

// loginStatus is the status of POST /auth/login for email and password,
// from a client address of its own where the instance trusts loopback as
// a proxy, so that no login limit decides it.
func loginStatus(t *testing.T, in *instance, email, password string) int {
	t.Helper()
	var from []string
	if n := loginSeq.Add(1); in.proxied {
		from = []string{"X-Forwarded-For", fmt.Sprintf("10.9.%d.%d", n/250, n%250+1)}
	}
	resp, _ := in.do(t, "POST", at(t, "login"), `{"email":"`+email+`","password":"`+password+`"}`, from...)
	return resp.StatusCode
}

// usersFile writes a users file of mode 0600.
func usersFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// The published demo admin (admin@example.com / admin-password) was seeded
// with admin scopes in fleet setups too, wherever no users file was given.
// The demo accounts are seeded only in the development setup (SQLite
// without Redis, listening on a loopback address, trusting no proxy);
// elsewhere no account is, and the log says so.
func TestNoDemoAccountsOutsideDevelopment(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"redis":      {"SPECGUARD_REDIS_URL": redistest.Start(t).URL},
		"postgresql": {"SPECGUARD_DATABASE_URL": pgtest.New(t)},
		// SQLite without Redis, but reachable from other machines.
		"every interface": {"SPECGUARD_ADDR": "0.0.0.0:0"},
		// SQLite without Redis on loopback, but behind a proxy, which
		// serves it to whoever reaches the proxy.
		"behind a proxy": {"SPECGUARD_TRUSTED_PROXIES": "127.0.0.1/32"},
	} {
		t.Run(name, func(t *testing.T) {
			env["SPECGUARD_SIGNING_KEY_FILE"] = keytest.File(t)
			env["SPECGUARD_USERS_FILE"] = "" // none: start adds the demo accounts' file otherwise
			in := start(t, env)
			for _, u := range [][2]string{{"admin@example.com", "admin-password"}, {"moderator@example.com", "moderator-password"}, {"user@example.com", "user-password"}} {
				if got := loginStatus(t, in, u[0], u[1]); got != 401 {
					t.Errorf("%s logs in with the published password: %d, want 401", u[0], got)
				}
			}
			if logs := in.logs.String(); !strings.Contains(logs, "no accounts are seeded") || strings.Contains(logs, "seeded user") {
				t.Errorf("the log does not say that no account was seeded:\n%s", logs)
			}
		})
	}
	t.Run("development", func(t *testing.T) {
		in := start(t, nil)
		if got := loginStatus(t, in, "admin@example.com", "admin-password"); got != 200 {
			t.Errorf("the demo admin in the development setup: %d, want 200", got)
		}
	})
}

// Demo accounts seeded earlier (by the development setup, or by an older
// specguard in a fleet) kept working after a start with a users file. A
// demo account that still has its published password is disabled on every
// instance, its credentials ended, and the log says so; one the users file
// names gets the file's password and role; one whose password was changed
// is a real account and is left alone.
func TestDemoAccountsAreRetired(t *testing.T) {
	t.Run("fleet", func(t *testing.T) {
		pgURL, redisURL, key := pgtest.New(t), redistest.Start(t).URL, keytest.File(t)
		// What an older specguard left in the fleet's database.
		src, err := sqldb.ParseURL(pgURL, "")
		if err != nil {
			t.Fatal(err)
		}
		database, err := sqldb.Open(context.Background(), src)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := database.Migrate(context.Background(), sqlstore.Migrations, nil); err != nil {
			t.Fatal(err)
		}
		for _, u := range [][3]string{{"admin@example.com", "admin-password", "admin"}, {"moderator@example.com", "changed-password", "moderator"}, {"user@example.com", "user-password", "user"}} {
			hash, err := bcrypt.GenerateFromPassword([]byte(u[1]), bcrypt.MinCost)
			if err != nil {
				t.Fatal(err)
			}
			if err := sqlstore.New(database).CreateAccount(context.Background(), &credentials.Account{ID: "old-" + u[2], Email: u[0], Role: u[2], PasswordHash: string(hash)}); err != nil {
				t.Fatal(err)
			}
		}
		database.Close()
		env := func(users string) map[string]string {
			return map[string]string{"SPECGUARD_DATABASE_URL": pgURL, "SPECGUARD_REDIS_URL": redisURL, "SPECGUARD_SIGNING_KEY_FILE": key,
				"SPECGUARD_USERS_FILE": users, "SPECGUARD_TRUSTED_PROXIES": "127.0.0.1/32"}
		}
		// An instance whose users file asks for the published passwords
		// keeps them (its operator chose them), and logs in the admin.
		first := start(t, env(usersFile(t, "- {email: admin@example.com, password: admin-password, role: admin}\n")))
		adminToken := login(t, first, "admin@example.com", "admin-password")
		if resp, _ := first.do(t, "GET", at(t, "list-users"), "", "Authorization", "Bearer "+adminToken); resp.StatusCode != 200 {
			t.Fatalf("the admin's token before: %d", resp.StatusCode)
		}

		second := start(t, env(usersFile(t, "- {email: root@example.com, password: root-password-1, role: admin}\n- {email: user@example.com, password: new-user-password, role: user}\n")))
		for _, c := range []struct {
			email, password string
			want            int
		}{
			{"admin@example.com", "admin-password", 401},       // disabled
			{"user@example.com", "user-password", 401},         // the file's password now
			{"user@example.com", "new-user-password", 200},     // ...this one
			{"moderator@example.com", "changed-password", 200}, // a real account: left alone
			{"root@example.com", "root-password-1", 200},       // seeded from the file
		} {
			for _, in := range []*instance{first, second} {
				if got := loginStatus(t, in, c.email, c.password); got != c.want {
					t.Errorf("%s with %s: %d, want %d", c.email, c.password, got, c.want)
				}
			}
		}
		// The disable holds on the instance that issued the token.
		if resp, _ := first.do(t, "GET", at(t, "list-users"), "", "Authorization", "Bearer "+adminToken); resp.StatusCode != 401 {
			t.Errorf("the retired admin's token on the first instance: %d, want 401", resp.StatusCode)
		}
		logs := second.logs.String()
		for _, want := range []string{`"msg":"disabled a demo account that still had its published password","email":"admin@example.com"`,
			`"email":"user@example.com","role":"user"`} {
			if !strings.Contains(logs, want) {
				t.Errorf("the log lacks %s:\n%s", want, logs)
			}
		}
		if strings.Contains(logs, "moderator@example.com") {
			t.Errorf("the moderator, whose password was changed, is mentioned:\n%s", logs)
		}
	})
	t.Run("development, then a users file", func(t *testing.T) {
		dir := t.TempDir()
		dev := start(t, map[string]string{"SPECGUARD_DATA_DIR": dir})
		if got := loginStatus(t, dev, "admin@example.com", "admin-password"); got != 200 {
			t.Fatalf("the demo admin in development: %d", got)
		}
		dev.cancel()
		<-dev.done
		dev.done <- nil // for its cleanup
		in := start(t, map[string]string{"SPECGUARD_DATA_DIR": dir, "SPECGUARD_TRUSTED_PROXIES": "127.0.0.1/32", "SPECGUARD_USERS_FILE": usersFile(t, "- {email: ops@example.com, password: ops-password-1, role: admin}\n")})
		for _, email := range []string{"admin@example.com", "moderator@example.com", "user@example.com"} {
			if got := loginStatus(t, in, email, strings.TrimSuffix(email, "@example.com")+"-password"); got != 401 {
				t.Errorf("%s after a users file: %d, want 401", email, got)
			}
		}
		if got := loginStatus(t, in, "ops@example.com", "ops-password-1"); got != 200 {
			t.Errorf("the users file's admin: %d, want 200", got)
		}
		// Back in the development setup, the demo accounts log in again
		// (they stayed disabled, and the log said it seeded them), and the
		// log says so.
		in.cancel()
		<-in.done
		in.done <- nil
		again := start(t, map[string]string{"SPECGUARD_DATA_DIR": dir})
		for _, email := range []string{"admin@example.com", "moderator@example.com", "user@example.com"} {
			if got := loginStatus(t, again, email, strings.TrimSuffix(email, "@example.com")+"-password"); got != 200 {
				t.Errorf("%s back in development: %d, want 200", email, got)
			}
		}
		if want := `"msg":"enabled again a demo account that a start outside the development setup had disabled","email":"admin@example.com"`; !strings.Contains(again.logs.String(), want) {
			t.Errorf("the log lacks %s:\n%s", want, again.logs.String())
		}
	})
}
