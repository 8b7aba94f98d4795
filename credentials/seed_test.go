package credentials_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/internal/spectest"
)

// The users file holds passwords, so its refusal (printed at start, to a
// log) quotes none: a space missing after "password:" in a flow mapping
// makes "password:<the password>" one key, which is not quoted.
func TestUsersFileRefusalQuotesNoPassword(t *testing.T) {
	table := spectest.Table(t, "openapi.yaml", credentials.Fragment)
	for content, want := range map[string]string{
		"- {email: a@example.com, password:Tr0ub4dor-S3CRET, role: admin}\n":      ":1: a key (not quoted: is a space missing after a colon?) is not a field of a user (want email, password, password_hash, role)",
		"- {email: a@example.com password:Tr0ub4dor-S3CRET, role: admin}\n":       ":1: user 1: email holds a space (not quoted: is a comma missing?)",
		"- email: a@example.com\n  password: [Tr0ub4dor-S3CRET]\n  role: admin\n": ":2: password must be a string",
		// A key a field's name could be is named, with the field meant.
		"- email: a@example.com\n  Password: Tr0ub4dor-S3CRET\n  role: admin\n": ":2: Password is not a field of a user; did you mean password?",
	} {
		path := filepath.Join(t.TempDir(), "users.yaml")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := credentials.LoadUsers(path, table)
		if err == nil || err.Error() != path+want || strings.Contains(err.Error(), "S3CRET") {
			t.Errorf("%q: LoadUsers: %v, want %s%s", content, err, path, want)
		}
	}
}

// A users file owned by another user is refused, whatever its mode: that
// user may read its passwords. Giving a file away needs root, as CI runs;
// internal/fileowner's test checks the rule without.
func TestUsersFileOfAnotherUserRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving a file to another user needs root")
	}
	table := spectest.Table(t, "openapi.yaml", credentials.Fragment)
	path := filepath.Join(t.TempDir(), "users.yaml")
	if err := os.WriteFile(path, []byte("- {email: a@example.com, password: Tr0ub4dor-S3CRET, role: admin}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := credentials.LoadUsers(path, table); err != nil {
		t.Fatalf("root's own users file: %v", err)
	}
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := credentials.LoadUsers(path, table); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Errorf("a users file owned by uid 65534: %v, want refused for its owner", err)
	}
}
