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
