package conform_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/specguard/specguard/conform"
	"github.com/specguard/specguard/policy"
)

// An error Run finds in an entry of a credentials file names the file and
// the entry's line, not only its number in the list.
func TestCredentialErrorsNameFileAndLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "creds.yaml")
	if err := os.WriteFile(path, []byte("credentials:\n  - name: k\n    scheme: key\n    value: good\n\n  - name: other\n    scheme: nosuch\n    value: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	creds, err := conform.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	table, err := policy.Compile("spec.yaml", []byte(aDoc))
	if err != nil {
		t.Fatal(err)
	}
	srv := aServer(false)
	defer srv.Close()
	_, err = conform.Run(context.Background(), table, conform.Options{Base: srv.URL, Credentials: creds})
	if want := path + `:6: credential 2 (other): scheme "nosuch" is not a security scheme of spec.yaml`; err == nil || err.Error() != want {
		t.Errorf("Run: %v, want %q", err, want)
	}
}

// A credentials file of two YAML documents is refused, naming the line of
// the second: its credentials would have been dropped unread.
func TestCredentialsFileOfTwoDocumentsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "creds.yaml")
	if err := os.WriteFile(path, []byte("credentials:\n  - {name: k, scheme: key, value: good}\n---\ncredentials:\n  - {name: other, scheme: key, value: x}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := conform.LoadConfig(path)
	if want := path + ":3: a second YAML document (after ---): the file must hold one, and the reader would ignore the rest"; err == nil || err.Error() != want {
		t.Errorf("LoadConfig: %v, want %q", err, want)
	}
}
