package tokens_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/specguard/specguard/security/tokens"
)

// A key file owned by another user is refused, whatever its mode: that
// user may read the private key, or replace the key tokens are verified
// with (ssh's StrictModes). Giving a file away needs root, as CI runs;
// internal/fileowner's test checks the rule without.
func TestReadKeyFileRefusesAnotherUsersFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving a file to another user needs root")
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := tokens.NewKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	private, err := key.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	public := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	for _, c := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{"private, 0600", private, 0o600}, {"public, 0644", public, 0o644}} {
		p := filepath.Join(t.TempDir(), "key.pem")
		if err := os.WriteFile(p, c.data, c.mode); err != nil {
			t.Fatal(err)
		}
		if _, err := tokens.ReadKeyFile(p); err != nil {
			t.Fatalf("%s, root's own: %v", c.name, err)
		}
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if _, err := tokens.ReadKeyFile(p); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
			t.Errorf("%s, owned by uid 65534: %v, want refused for its owner", c.name, err)
		}
	}
}
