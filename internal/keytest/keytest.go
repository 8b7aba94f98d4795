// Package keytest writes signing keys for tests that start instances
// sharing one (SPECGUARD_SIGNING_KEY_FILE).
package keytest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/specguard/specguard/security/tokens"
)

// File writes a new Ed25519 signing key, mode 0600, in a directory removed
// when the test ends, and returns its path.
func File(tb testing.TB) string {
	tb.Helper()
	k, err := tokens.GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	pemBytes, err := k.MarshalPEM()
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), "signing-key.pem")
	if err := os.WriteFile(path, pemBytes, 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}
