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
		path := write("open.pem", private, mode)
		_, err := tokens.ReadKeyFile(path)
		if err == nil || !strings.HasPrefix(err.Error(), path+": ") || !strings.Contains(err.Error(), "lets other users read a private key; chmod 600 it") {
			t.Errorf("a private key of mode %04o: %v", mode, err)
		}
	}
	if _, err := tokens.ReadKeyFile(filepath.Join(dir, "none.pem")); !os.IsNotExist(err) {
		t.Errorf("a missing file: %v", err)
	}
	// Every refusal names the file; an empty path (an unset variable) says
	// so rather than "open : no such file or directory".
	if _, err := tokens.ReadKeyFile(""); err == nil || err.Error() != "no key file named (the path is empty)" {
		t.Errorf("ReadKeyFile(\"\") = %v", err)
	}
	if _, err := tokens.ReadKeyFile(write("junk.pem", []byte("not a key"), 0o600)); err == nil || !strings.HasPrefix(err.Error(), filepath.Join(dir, "junk.pem")+": ") {
		t.Errorf("a file of no key: %v, want an error naming it", err)
	}
}
