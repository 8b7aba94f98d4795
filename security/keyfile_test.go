package security_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
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

// A key file other users may write is refused, whatever it holds: whoever
// replaces a verify key (a public key, readable by all) mints tokens it
// verifies. Only a private key's read bits were checked (helper-148).
func TestReadKeyFileRefusesKeysOthersMayReplace(t *testing.T) {
	dir := t.TempDir()
	public, secret, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := tokens.NewKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	private, err := key.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	pub := publicPEM(t, public)
	write := func(data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, "key.pem")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, mode := range []os.FileMode{0o666, 0o664, 0o620, 0o602} {
		path := write(pub, mode)
		if _, err := tokens.ReadKeyFile(path); err == nil || err.Error() != fmt.Sprintf("%s: mode %04o lets other users replace a key tokens are verified with; chmod go-w it", path, mode) {
			t.Errorf("a public key of mode %04o: %v", mode, err)
		}
	}
	if path := write(private, 0o602); true {
		if _, err := tokens.ReadKeyFile(path); err == nil || !strings.Contains(err.Error(), "lets other users replace") {
			t.Errorf("a private key of mode 0602: %v", err)
		}
	}
	for _, mode := range []os.FileMode{0o644, 0o444, 0o600} {
		if k, err := tokens.ReadKeyFile(write(pub, mode)); err != nil || k.ID != key.ID || k.CanSign() {
			t.Errorf("a public key of mode %04o: %v", mode, err)
		}
	}
	// Not a file of one key: a directory, a file too large to be one.
	if _, err := tokens.ReadKeyFile(dir); err == nil || err.Error() != dir+": not a regular file" {
		t.Errorf("a directory: %v", err)
	}
	big := append(append([]byte{}, pub...), bytes.Repeat([]byte("\n"), 64<<10)...)
	if path := write(big, 0o600); true {
		if _, err := tokens.ReadKeyFile(path); err == nil || err.Error() != path+": larger than 64 KiB; a key file holds one key" {
			t.Errorf("a file of 64 KiB and more: %v", err)
		}
	}
}

// pem.Decode passes over a block it cannot read: a file with a broken
// block before or after its key was taken for that key alone
// (helper-148).
func TestParseKeyPEMRefusesBrokenExtraBlocks(t *testing.T) {
	key, err := tokens.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	good, err := key.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"a truncated second key after it": append(append([]byte{}, good...), good[:60]...),
		"a broken block before it":        append([]byte("-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n"), good...),
	} {
		if k, err := tokens.ParseKeyPEM(data); err == nil || err.Error() != "more than one PEM block; put one key in each file" {
			t.Errorf("%s: %v, %v", name, k, err)
		}
	}
	if _, err := tokens.ParseKeyPEM(append([]byte("a comment before the key\n"), good...)); err != nil {
		t.Errorf("explanatory text before the key (RFC 7468): %v", err)
	}
}

// An RSA public key whose exponent is below 3 or even verifies nothing:
// it loaded, and each token under its kid was refused only once presented
// (helper-148).
func TestVerifyKeyThatVerifiesNothingRefused(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []int{1, 2, 4, 65536} {
		if k, err := tokens.NewVerifyKey(&rsa.PublicKey{N: priv.N, E: e}); err == nil {
			t.Errorf("e=%d: accepted (kid %s)", e, k.ID)
		}
	}
	even := new(big.Int).Add(priv.N, big.NewInt(1))
	if _, err := tokens.NewVerifyKey(&rsa.PublicKey{N: even, E: 65537}); err == nil {
		t.Error("an even modulus: accepted")
	}
	if _, err := tokens.NewVerifyKey(&priv.PublicKey); err != nil {
		t.Errorf("the key's own public key: %v", err)
	}
}

// publicPEM is a public key as a PEM file.
func publicPEM(t *testing.T, public any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(public)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}
