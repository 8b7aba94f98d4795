package guardtest

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

// Tamper flips the token's scope claim and keeps its signature.
func Tamper(tb testing.TB, tok string) string {
	tb.Helper()
	parts := strings.Split(tok, ".")
	var claims map[string]any
	if err := json.Unmarshal(MustDecode(tb, parts[1]), &claims); err != nil {
		tb.Fatal(err)
	}
	claims["scope"] = "a:read a:write"
	claims["sub"] = "admin"
	parts[1] = EncodeSegment(tb, claims)
	return strings.Join(parts, ".")
}

// JOSE helpers: tokens are assembled by hand so a test controls every byte.

// MustDecode decodes one base64url segment of a token.
func MustDecode(tb testing.TB, seg string) []byte {
	tb.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		tb.Fatalf("decode segment: %v", err)
	}
	return b
}

// EncodeSegment encodes v as one base64url JSON segment of a token.
func EncodeSegment(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// NonCanonicalLast returns the last character of a base64url segment with
// its unused low bits set: lax decoding yields the same bytes, strict
// decoding (RFC 4648 3.5) refuses it.
func NonCanonicalLast(tb testing.TB, seg string) byte {
	tb.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	unused := map[int]int{2: 4, 3: 2}[len(seg)%4] // bits the last character carries beyond the data
	if unused == 0 {
		tb.Fatalf("segment of length %d has no unused bits", len(seg))
	}
	idx := strings.IndexByte(alphabet, seg[len(seg)-1])
	idx |= 1 // set the lowest unused bit
	return alphabet[idx]
}
