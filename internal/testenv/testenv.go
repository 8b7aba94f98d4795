// Package testenv holds what the test helpers share: free loopback ports
// and the rule that a missing component fails under CI=true.
package testenv

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Unavailable ends a test that needs component (Redis, PostgreSQL) and
// cannot have it: a failure under CI=true, where everything must be
// installed, and a skip saying how to get it otherwise.
func Unavailable(t testing.TB, component, why, hint string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required under CI=true: %s", component, why)
	}
	t.Skipf("no %s: %s (%s)", component, why, hint)
}

// Outside skips a test that needs an outside component (redis-server,
// PostgreSQL, Node.js, Chromium, the real binaries) under go test -short:
// the tier that needs none of them. make test runs it.
func Outside(t testing.TB, component string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: needs %s (make test runs it)", component)
	}
}

// DemoUsers is a users file (SPECGUARD_USERS_FILE) holding the example
// app's demo accounts, which specguard seeds by itself only in the
// development setup (SQLite without Redis): tests of fleet setups give it
// to log in as the same accounts.
const DemoUsers = `- {email: admin@example.com, password: admin-password, role: admin}
- {email: moderator@example.com, password: moderator-password, role: moderator}
- {email: user@example.com, password: user-password, role: user}
- {email: user2@example.com, password: user2-password, role: user}
`

// DemoUsersFile writes DemoUsers to a file of mode 0600, removed when the
// test ends, and returns its path.
func DemoUsersFile(tb testing.TB) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "users.yaml")
	if err := os.WriteFile(path, []byte(DemoUsers), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}
