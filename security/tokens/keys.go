package tokens

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"runtime"
	"strings"

	"github.com/golang-jwt/jwt/v5"

	"github.com/specguard/specguard/internal/fileowner"
)

// MinHMACKeyBytes is the shortest HMAC secret a Key accepts.
const MinHMACKeyBytes = 32

// Key is a signing or verification key with its algorithm pinned: a token
// naming any other algorithm is refused before the signature is checked.
type Key struct {
	ID     string            // kid: the RFC 7638 thumbprint of the public key
	Method jwt.SigningMethod // EdDSA, ES256, RS256 or HS256, chosen from the key type
	sign   any               // private key or HMAC secret; nil for verify-only keys
	verify any               // public key or HMAC secret
}

// Algorithm returns the JWS alg the key is pinned to.
func (k *Key) Algorithm() string { return k.Method.Alg() }

// CanSign reports whether k holds a private key or secret.
func (k *Key) CanSign() bool { return k.sign != nil }

// NewKey wraps a private key (ed25519.PrivateKey, *ecdsa.PrivateKey on
// P-256, *rsa.PrivateKey of at least 2048 bits) or an HMAC secret ([]byte of
// at least 32 bytes) and pins its algorithm from its type.
func NewKey(private any) (*Key, error) {
	switch k := private.(type) {
	case ed25519.PrivateKey:
		if len(k) != ed25519.PrivateKeySize {
			// A seed (32 bytes) for the key: every signature would fail.
			return nil, fmt.Errorf("Ed25519 private key of %d bytes: want %d (ed25519.NewKeyFromSeed makes one from a seed)", len(k), ed25519.PrivateKeySize)
		}
		k = bytes.Clone(k) // the caller may wipe or reuse its own
		return newKey(jwt.SigningMethodEdDSA, k, k.Public())
	case *ecdsa.PrivateKey:
		if err := checkP256(&k.PublicKey); err != nil {
			return nil, err
		}
		return newKey(jwt.SigningMethodES256, k, &k.PublicKey)
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key of %d bits: at least 2048 are required", k.N.BitLen())
		}
		return newKey(jwt.SigningMethodRS256, k, &k.PublicKey)
	case []byte:
		if len(k) < MinHMACKeyBytes {
			return nil, fmt.Errorf("HMAC key of %d bytes: at least %d are required", len(k), MinHMACKeyBytes)
		}
		secret := bytes.Clone(k) // the caller may wipe or reuse its own
		return newKey(jwt.SigningMethodHS256, secret, secret)
	}
	return nil, fmt.Errorf("unsupported key type %T", private)
}

// NewVerifyKey wraps a public key for verification only (old keys kept
// after a rotation).
func NewVerifyKey(public any) (*Key, error) {
	switch k := public.(type) {
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("Ed25519 public key of %d bytes: want %d", len(k), ed25519.PublicKeySize)
		}
		return newKey(jwt.SigningMethodEdDSA, nil, k)
	case *ecdsa.PublicKey:
		if err := checkP256(k); err != nil {
			return nil, err
		}
		return newKey(jwt.SigningMethodES256, nil, k)
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key of %d bits: at least 2048 are required", k.N.BitLen())
		}
		// A private key is checked by a signature made and verified; a
		// public one with these would verify nothing (crypto/rsa refuses
		// them), each of its tokens refused only once presented.
		if k.E < 3 || k.E%2 == 0 || k.N.Bit(0) == 0 {
			return nil, errors.New("RSA public key with an even modulus, or an exponent below 3 or even: it verifies nothing")
		}
		return newKey(jwt.SigningMethodRS256, nil, k)
	}
	return nil, fmt.Errorf("unsupported public key type %T", public)
}

// checkP256 refuses an ECDSA key on another curve, or whose point is not
// on P-256 (a key built by hand: x509 checks those it parses).
func checkP256(k *ecdsa.PublicKey) error {
	if k.Curve != elliptic.P256() {
		return fmt.Errorf("ECDSA key on %s: only P-256 (ES256) is supported", k.Curve.Params().Name)
	}
	if _, err := k.Bytes(); err != nil {
		return fmt.Errorf("ECDSA public key: %v", err)
	}
	return nil
}

func newKey(m jwt.SigningMethod, sign, verify any) (*Key, error) {
	if sign != nil {
		// A private key built by hand whose halves do not match (another
		// key's public half, an RSA key whose primes are not its
		// modulus') would start a service whose every login fails.
		const probe = "specguard key check"
		sig, err := m.Sign(probe, sign)
		if err == nil {
			err = m.Verify(probe, sig, verify)
		}
		if err != nil {
			return nil, fmt.Errorf("%s private key does not verify its own signature: %v", m.Alg(), err)
		}
	}
	k := &Key{Method: m, sign: sign, verify: verify}
	k.ID = thumbprint(k)
	return k, nil
}

// GenerateKey makes a new Ed25519 signing key.
func GenerateKey() (*Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return NewKey(priv)
}

// KeyAlgorithms are the names GenerateKeyFor accepts, in the order to offer them.
var KeyAlgorithms = []string{"ed25519", "es256", "rs256", "hs256"}

// GenerateKeyFor makes a new signing key for alg: "ed25519" (EdDSA),
// "es256" (ECDSA P-256), "rs256" (RSA 3072) or "hs256" (a 32-byte HMAC secret).
func GenerateKeyFor(alg string) (*Key, error) {
	var private any
	var err error
	switch strings.ToLower(alg) {
	case "ed25519", "eddsa":
		return GenerateKey()
	case "es256":
		private, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "rs256":
		private, err = rsa.GenerateKey(rand.Reader, 3072)
	case "hs256":
		secret := make([]byte, MinHMACKeyBytes)
		_, err = rand.Read(secret)
		private = secret
	default:
		return nil, fmt.Errorf("unknown algorithm %q: want one of %s", alg, strings.Join(KeyAlgorithms, ", "))
	}
	if err != nil {
		return nil, err
	}
	return NewKey(private)
}

// maxKeyFile bounds a key file: an RSA key of 16,384 bits is 13 KB.
const maxKeyFile = 64 << 10

// ReadKeyFile reads a PEM key file (what `specguard keygen --out` writes).
// A file holding a private key or an HMAC secret that other users may
// read is refused, as ssh refuses one; a file of any key that other users
// may write is refused too: whoever replaces a verify key mints tokens it
// verifies. So is a file owned by a user other than this process's or
// root, who may do either whatever its mode says.
func ReadKeyFile(path string) (*Key, error) {
	if path == "" {
		return nil, errors.New("no key file named (the path is empty)")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err // *fs.PathError: it names the file
	}
	defer f.Close()
	fi, err := f.Stat() // of the file read, not of a path that may change
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("%s: larger than %d KiB; a key file holds one key", path, maxKeyFile>>10)
	}
	k, err := ParseKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if runtime.GOOS != "windows" {
		switch perm := fi.Mode().Perm(); {
		case k.CanSign() && perm&0o044 != 0:
			return nil, fmt.Errorf("%s: mode %04o lets other users read a private key; chmod 600 it", path, perm)
		case perm&0o022 != 0:
			return nil, fmt.Errorf("%s: mode %04o lets other users replace a key tokens are verified with; chmod go-w it", path, perm)
		case k.CanSign() && perm&0o077 != 0:
			return nil, fmt.Errorf("%s: mode %04o gives other users a private key; chmod 600 it", path, perm)
		}
	}
	what := "replace a key tokens are verified with"
	if k.CanSign() {
		what = "read the private key"
	}
	if err := fileowner.Check(path, fi, what); err != nil {
		return nil, err
	}
	return k, nil
}

// ParseKeyPEM reads a key file: a PKCS#8 "PRIVATE KEY", a PKIX "PUBLIC KEY"
// (verification only), or an "HMAC KEY" block holding the raw secret.
func ParseKeyPEM(data []byte) (*Key, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	// pem.Decode passes over a block it cannot read: a broken one before
	// the key, or after it, is a file that is not what it seems.
	if bytes.Count(data, []byte("-----BEGIN")) > 1 {
		return nil, errors.New("more than one PEM block; put one key in each file")
	}
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PKCS#8: %w", err)
		}
		return NewKey(k)
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PKIX: %w", err)
		}
		return NewVerifyKey(k)
	case "HMAC KEY":
		return NewKey(block.Bytes)
	}
	return nil, fmt.Errorf("PEM block %q: want PRIVATE KEY (PKCS#8), PUBLIC KEY or HMAC KEY", block.Type)
}

// MarshalPEM encodes a signing key as ParseKeyPEM reads it.
func (k *Key) MarshalPEM() ([]byte, error) {
	if k.sign == nil {
		return nil, errors.New("key has no private part")
	}
	if secret, ok := k.sign.([]byte); ok {
		return pem.EncodeToMemory(&pem.Block{Type: "HMAC KEY", Bytes: secret}), nil
	}
	der, err := x509.MarshalPKCS8PrivateKey(k.sign)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// JWK returns the public key as an RFC 7517 JSON Web Key, or nil for an
// HMAC key, whose secret is never published.
func (k *Key) JWK() map[string]any {
	m := publicJWK(k.verify)
	if m == nil {
		return nil
	}
	m["kid"] = k.ID
	m["alg"] = k.Algorithm()
	m["use"] = "sig"
	return m
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// publicJWK holds only the members RFC 7638 hashes.
func publicJWK(pub any) map[string]any {
	switch p := pub.(type) {
	case ed25519.PublicKey:
		return map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64(p)}
	case *ecdsa.PublicKey:
		// The uncompressed point: 0x04, then X and Y of 32 bytes each.
		point, err := p.Bytes()
		if err != nil || len(point) != 65 {
			return nil
		}
		return map[string]any{"kty": "EC", "crv": "P-256", "x": b64(point[1:33]), "y": b64(point[33:])}
	case *rsa.PublicKey:
		return map[string]any{"kty": "RSA", "n": b64(p.N.Bytes()), "e": b64(big.NewInt(int64(p.E)).Bytes())}
	}
	return nil
}

// thumbprint is the RFC 7638 JWK thumbprint; for an HMAC key, a hash of the
// secret under a fixed label, so the kid reveals nothing usable.
func thumbprint(k *Key) string {
	m := publicJWK(k.verify)
	if m == nil {
		sum := sha256.Sum256(append([]byte("specguard hmac kid\x00"), k.verify.([]byte)...))
		return "hs-" + hex.EncodeToString(sum[:12])
	}
	// json.Marshal sorts map keys, which is RFC 7638's canonical member order.
	canon, _ := json.Marshal(m)
	sum := sha256.Sum256(canon)
	return b64(sum[:])
}
