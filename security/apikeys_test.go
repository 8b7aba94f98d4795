package security_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
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
	id, secret, _ := strings.Cut(rest, ".")
	if id != k.ID || len(secret) != 43 {
		t.Fatalf("key %q does not read sg_<id>.<secret>", full)
	}
	otherFull, otherKey := e.apiKey(t, "bob", "a:read")
	otherSecret := strings.Split(otherFull, ".")[1]
	revoked, rk := e.apiKey(t, "alice", "a:read")
	if err := e.keys.Revoke(ctx, "bob", rk.ID); !errors.Is(err, security.ErrNotFound) {
		t.Fatalf("Revoke of another subject's key = %v, want ErrNotFound", err)
	}
	if err := e.keys.Revoke(ctx, "alice", rk.ID); err != nil {
		t.Fatal(err)
	}
	writeKey, _ := e.apiKey(t, "alice", "a:read", "a:write")

	cases := []guardCase{
		{name: "valid", path: "/key-read", mods: []mod{apiKeyHeader(full)}, want: ok200, saw: okAs("keyRead", "alice", "apiKeyAuth")},
		{name: "wrong secret", path: "/key-read", mods: []mod{apiKeyHeader(security.APIKeyPrefix + k.ID + "." + otherSecret)}, want: invalidToken},
		{name: "unknown id", path: "/key-read", mods: []mod{apiKeyHeader(security.APIKeyPrefix + security.NewID() + "." + secret)}, want: invalidToken},
		{name: "another key's id", path: "/key-read", mods: []mod{apiKeyHeader(security.APIKeyPrefix + otherKey.ID + "." + secret)}, want: invalidToken},
		{name: "old three-part form", path: "/key-read", mods: []mod{apiKeyHeader(security.APIKeyPrefix + "alice." + k.ID + "." + secret)}, want: invalidToken},
		{name: "no prefix", path: "/key-read", mods: []mod{apiKeyHeader(rest)}, want: invalidToken},
		{name: "wrong prefix", path: "/key-read", mods: []mod{apiKeyHeader("sk_" + rest)}, want: invalidToken},
		{name: "garbage", path: "/key-read", mods: []mod{apiKeyHeader("garbage")}, want: invalidToken},
		{name: "prefix only", path: "/key-read", mods: []mod{apiKeyHeader(security.APIKeyPrefix)}, want: invalidToken},
		{name: "short secret", path: "/key-read", mods: []mod{apiKeyHeader(full[:len(full)-4])}, want: invalidToken},
		{name: "secret not base64url", path: "/key-read", mods: []mod{apiKeyHeader(security.APIKeyPrefix + k.ID + "." + strings.Repeat("*", 43))}, want: invalidToken},
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

// The key shows its true first characters as its prefix and says nothing
// about its owner.
func TestAPIKeyPrefixIsTrueAndCarriesNoOwner(t *testing.T) {
	e := newEnv(t)
	full, k := e.apiKey(t, "alice-the-owner", "a:read")
	if !strings.HasPrefix(full, k.Prefix) || len(k.Prefix) != len(security.APIKeyPrefix)+8 {
		t.Errorf("Prefix %q is not the first characters of the key", k.Prefix)
	}
	if strings.Contains(full, "alice-the-owner") {
		t.Errorf("the key carries its owner's id")
	}
}

func TestAPIKeyStoresOnlyTheHash(t *testing.T) {
	e := newEnv(t)
	full, created := e.apiKey(t, "alice", "a:read")
	secretEnc := strings.Split(full, ".")[1]
	secret, err := base64.RawURLEncoding.DecodeString(secretEnc)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := e.keys.List(context.Background(), "alice")
	if err != nil || len(stored) != 1 {
		t.Fatalf("List = %v, %v; want one", stored, err)
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
		})
	}
}

// Last use is written to the record at most once a minute, off the
// request's path.
func TestAPIKeyLastUsed(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	full, k := e.apiKey(t, "alice", "a:read")
	lastUsed := func() time.Time {
		t.Helper()
		keys, err := e.keys.List(ctx, "alice")
		if err != nil || len(keys) != 1 || keys[0].ID != k.ID {
			t.Fatalf("List = %v, %v", keys, err)
		}
		return keys[0].LastUsed
	}
	if got := lastUsed(); !got.IsZero() {
		t.Fatalf("LastUsed before any use = %v, want zero", got)
	}
	waitFor := func(want time.Time) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !lastUsed().Equal(want) {
			if time.Now().After(deadline) {
				t.Fatalf("LastUsed = %v, want %v", lastUsed(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	ok200.check(t, e.do(t, http.MethodGet, "/key-read", "", apiKeyHeader(full)))
	first := e.clock.Now()
	waitFor(first)
	e.clock.Advance(10 * time.Second)
	ok200.check(t, e.do(t, http.MethodGet, "/key-read", "", apiKeyHeader(full)))
	time.Sleep(50 * time.Millisecond)
	if got := lastUsed(); !got.Equal(first) {
		t.Errorf("LastUsed within the minute = %v, want %v kept", got, first)
	}
	e.clock.Advance(time.Minute)
	ok200.check(t, e.do(t, http.MethodGet, "/key-read", "", apiKeyHeader(full)))
	waitFor(e.clock.Now())
}
