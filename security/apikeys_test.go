package security_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/specguard/specguard/security"
)

func TestAPIKeyAuthentication(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	full, k := e.apiKey(t, "alice", "a:read")
	rest := strings.TrimPrefix(full, security.APIKeyPrefix)
	parts := strings.Split(rest, ".")
	if len(parts) != 3 || parts[0] != "alice" || parts[1] != k.ID {
		t.Fatalf("key %q does not read sg_<subject>.<id>.<secret>", full)
	}
	otherFull, _ := e.apiKey(t, "bob", "a:read")
	otherSecret := strings.Split(otherFull, ".")[2]
	revoked, rk := e.apiKey(t, "alice", "a:read")
	if err := e.store.RevokeKey(ctx, "alice", rk.ID); err != nil {
		t.Fatal(err)
	}
	writeKey, _ := e.apiKey(t, "alice", "a:read", "a:write")

	cases := []guardCase{
		{name: "valid", path: "/key-read", mods: []mod{apiKeyHeader(full)}, want: ok200, saw: okAs("keyRead", "alice", "apiKeyAuth")},
		{name: "wrong secret", path: "/key-read", mods: []mod{apiKeyHeader(security.APIKeyPrefix + "alice." + k.ID + "." + otherSecret)}, want: invalidToken},
		{name: "unknown id", path: "/key-read", mods: []mod{apiKeyHeader(security.APIKeyPrefix + "alice." + security.NewID() + "." + parts[2])}, want: invalidToken},
		{name: "other subject", path: "/key-read", mods: []mod{apiKeyHeader(security.APIKeyPrefix + "bob." + k.ID + "." + parts[2])}, want: invalidToken},
		{name: "no prefix", path: "/key-read", mods: []mod{apiKeyHeader(rest)}, want: invalidToken},
		{name: "wrong prefix", path: "/key-read", mods: []mod{apiKeyHeader("sk_" + rest)}, want: invalidToken},
		{name: "garbage", path: "/key-read", mods: []mod{apiKeyHeader("garbage")}, want: invalidToken},
		{name: "prefix only", path: "/key-read", mods: []mod{apiKeyHeader(security.APIKeyPrefix)}, want: invalidToken},
		{name: "short secret", path: "/key-read", mods: []mod{apiKeyHeader(full[:len(full)-4])}, want: invalidToken},
		{name: "secret not base64url", path: "/key-read", mods: []mod{apiKeyHeader(security.APIKeyPrefix + "alice." + k.ID + "." + strings.Repeat("*", 43))}, want: invalidToken},
		{name: "padded secret", path: "/key-read", mods: []mod{apiKeyHeader(full + "=")}, want: invalidToken},
		{name: "overlong", path: "/key-read", mods: []mod{apiKeyHeader(full + strings.Repeat("A", 300))}, want: invalidToken},
		{name: "bearer-looking value", path: "/key-read", mods: []mod{apiKeyHeader("Bearer " + full)}, want: invalidToken},
		{name: "revoked", path: "/key-read", mods: []mod{apiKeyHeader(revoked)}, want: invalidToken},
		{name: "insufficient scope", path: "/key-write", mods: []mod{apiKeyHeader(full)},
			want: want{status: http.StatusForbidden, problem: "insufficient-scope", authErr: "insufficient_scope", scope: "a:write"}},
		{name: "sufficient scope", path: "/key-write", mods: []mod{apiKeyHeader(writeKey)}, want: ok200, saw: okAs("keyWrite", "alice", "apiKeyAuth")},
		{name: "two X-API-Key headers", path: "/key-read", mods: []mod{apiKeyHeader(full), apiKeyHeader(full)}, want: badRequest},
		{name: "two X-API-Key headers, one bad", path: "/key-read", mods: []mod{apiKeyHeader(full), apiKeyHeader("garbage")}, want: badRequest},
		{name: "header name in lower case", path: "/key-read", mods: []mod{func(r *http.Request) { r.Header["x-api-key"] = []string{full} }}, want: ok200},
		{name: "no key", path: "/key-read", want: unauth},
		{name: "key in the Authorization header", path: "/key-read", mods: []mod{bearer(full)}, want: unauth},
	}
	runGuardCases(t, e, cases)

	t.Run("expired", func(t *testing.T) {
		e.clock.Advance(security.DefaultAPIKeyTTL + time.Hour)
		invalidToken.check(t, e.do(t, http.MethodGet, "/key-read", "", apiKeyHeader(full)))
	})
}

func TestAPIKeyStoresOnlyTheHash(t *testing.T) {
	e := newEnv(t)
	full, created := e.apiKey(t, "alice", "a:read")
	secretEnc := strings.Split(full, ".")[2]
	secret, err := base64.RawURLEncoding.DecodeString(secretEnc)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := e.store.Keys(context.Background(), "alice")
	if err != nil || len(stored) != 1 {
		t.Fatalf("Keys = %v, %v; want one", stored, err)
	}
	sum := sha256.Sum256(secret)
	for name, k := range map[string]security.APIKey{"returned": *created, "stored": stored[0]} {
		t.Run(name, func(t *testing.T) {
			dump := fmt.Sprintf("%#v %+v %s %s %s %s", k, k, k.ID, k.Name, k.Prefix, string(k.SecretHash))
			for _, s := range []string{full, secretEnc, string(secret), secretEnc[:16]} {
				if strings.Contains(dump, s) {
					t.Errorf("the %s record holds the key or its secret", name)
				}
			}
			if string(k.SecretHash) != string(sum[:]) {
				t.Errorf("SecretHash is not SHA-256 of the secret")
			}
			if !strings.HasPrefix(k.Prefix, security.APIKeyPrefix) || !strings.HasPrefix(full, security.APIKeyPrefix) {
				t.Errorf("Prefix %q", k.Prefix)
			}
		})
	}
}

func TestAPIKeyLastUsed(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	full, k := e.apiKey(t, "alice", "a:read")
	lastUsed := func() time.Time {
		t.Helper()
		keys, err := e.store.Keys(ctx, "alice")
		if err != nil || len(keys) != 1 || keys[0].ID != k.ID {
			t.Fatalf("Keys = %v, %v", keys, err)
		}
		return keys[0].LastUsed
	}
	if got := lastUsed(); !got.IsZero() {
		t.Fatalf("LastUsed before any use = %v, want zero", got)
	}
	for i := range 2 {
		e.clock.Advance(time.Minute)
		ok200.check(t, e.do(t, http.MethodGet, "/key-read", "", apiKeyHeader(full)))
		if got, want := lastUsed(), e.clock.Now(); !got.Equal(want) {
			t.Errorf("use %d: LastUsed = %v, want %v", i, got, want)
		}
	}
}
