package security_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/specguard/specguard/security/tokens"
)

// A key file other users may read is refused when it holds a private key
// (or an HMAC secret), as ssh refuses one; a public key may be readable.
func TestReadKeyFileRefusesReadablePrivateKeys(t *testing.T) {
	dir := t.TempDir()
	key, err := tokens.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	private, err := key.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if k, err := tokens.ReadKeyFile(write("ok.pem", private, 0o600)); err != nil || k.ID != key.ID || !k.CanSign() {
		t.Fatalf("a private key of mode 0600: %v", err)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604} {
		_, err := tokens.ReadKeyFile(write("open.pem", private, mode))
		if err == nil || !strings.Contains(err.Error(), "lets other users read a private key; chmod 600 it") {
			t.Errorf("a private key of mode %04o: %v", mode, err)
		}
	}
	if _, err := tokens.ReadKeyFile(filepath.Join(dir, "none.pem")); !os.IsNotExist(err) {
		t.Errorf("a missing file: %v", err)
	}
	if _, err := tokens.ReadKeyFile(write("junk.pem", []byte("not a key"), 0o600)); err == nil {
		t.Error("a file without a key was read")
	}
}
