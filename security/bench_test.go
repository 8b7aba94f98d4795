package security_test

import (
	"context"
	"testing"

	"github.com/specguard/specguard/security"
)

func benchTokens(b *testing.B, opts ...security.TokenOption) (*security.TokenService, string) {
	b.Helper()
	key, err := security.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	ts, err := security.NewTokenService("specguard", "specguard", key, security.NewMemoryStore(nil), opts...)
	if err != nil {
		b.Fatal(err)
	}
	pair, err := ts.Login(context.Background(), "alice", "user", []string{"a:read", "a:write"}, "bench")
	if err != nil {
		b.Fatal(err)
	}
	return ts, pair.Access
}

// BenchmarkVerifyAccess measures the bearer path: a cache hit (the same
// token again) and a miss (the cache disabled: a full Ed25519 verification).
// Both check revocation in the memory store.
func BenchmarkVerifyAccess(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts []security.TokenOption
	}{
		{"hit", nil},
		{"miss", []security.TokenOption{security.WithCacheSize(0)}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ts, tok := benchTokens(b, bc.opts...)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ts.VerifyAccess(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
