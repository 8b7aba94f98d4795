package apikeys_test

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

	"github.com/specguard/specguard/internal/guardtest"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/apikeys"
)

func TestAPIKeyAuthentication(t *testing.T) {
	e := guardtest.NewEnv(t)
	ctx := context.Background()
	full, k := e.APIKey(t, "alice", "a:read")
	rest := strings.TrimPrefix(full, security.APIKeyPrefix)
	id, secret, _ := strings.Cut(rest, ".")
	if id != k.ID || len(secret) != 43 {
		t.Fatalf("key %q does not read sg_<id>.<secret>", full)
	}
	otherFull, otherKey := e.APIKey(t, "bob", "a:read")
	otherSecret := strings.Split(otherFull, ".")[1]
	revoked, rk := e.APIKey(t, "alice", "a:read")
	if err := e.Keys.Revoke(ctx, "bob", rk.ID); !errors.Is(err, security.ErrNotFound) {
		t.Fatalf("Revoke of another subject's key = %v, want ErrNotFound", err)
	}
	if err := e.Keys.Revoke(ctx, "alice", rk.ID); err != nil {
		t.Fatal(err)
	}
	writeKey, _ := e.APIKey(t, "alice", "a:read", "a:write")

	cases := []guardtest.Case{
		{Name: "valid", Path: "/key-read", Mods: []guardtest.Mod{guardtest.APIKeyHeader(full)}, Want: guardtest.OK200, Saw: guardtest.OKAs("keyRead", "alice", "apiKeyAuth")},
		{Name: "wrong secret", Path: "/key-read", Mods: []guardtest.Mod{guardtest.APIKeyHeader(security.APIKeyPrefix + k.ID + "." + otherSecret)}, Want: guardtest.InvalidToken},
		{Name: "unknown id", Path: "/key-read", Mods: []guardtest.Mod{guardtest.APIKeyHeader(security.APIKeyPrefix + security.NewID() + "." + secret)}, Want: guardtest.InvalidToken},
		{Name: "another key's id", Path: "/key-read", Mods: []guardtest.Mod{guardtest.APIKeyHeader(security.APIKeyPrefix + otherKey.ID + "." + secret)}, Want: guardtest.InvalidToken},
		{Name: "old three-part form", Path: "/key-read", Mods: []guardtest.Mod{guardtest.APIKeyHeader(security.APIKeyPrefix + "alice." + k.ID + "." + secret)}, Want: guardtest.InvalidToken},
		{Name: "no prefix", Path: "/key-read", Mods: []guardtest.Mod{guardtest.APIKeyHeader(rest)}, Want: guardtest.InvalidToken},
		{Name: "wrong prefix", Path: "/key-read", Mods: []guardtest.Mod{guardtest.APIKeyHeader("sk_" + rest)}, Want: guardtest.InvalidToken},
		{Name: "garbage", Path: "/key-read", Mods: []guardtest.Mod{guardtest.APIKeyHeader("garbage")}, Want: guardtest.InvalidToken},
		{Name: "prefix only", Path: "/key-read", Mods: []guardtest.Mod{guardtest.APIKeyHeader(security.APIKeyPrefix)}, Want: guardtest.InvalidToken},
		{Name: "short secret", Path: "/key-read", Mods: []guardtest.Mod{guardtest.APIKeyHeader(full[:len(full)-4])}, Want: guardtest.InvalidToken},
		{Name: "secret not base64url", Path: "/key-read", Mods: []guardtest.Mod{guardtest.APIKeyHeader(security.APIKeyPrefix + k.ID + "." + strings.Repeat("*", 43))}, Want: guardtest.InvalidToken},
		{Name: "padded secret", Path: "/key-read", Mods: []guardtest.Mod{guardtest.APIKeyHeader(full + "=")}, Want: guardtest.InvalidToken},
		{Name: "overlong", Path: "/key-read", Mods: []guardtest.Mod{guardtest.APIKeyHeader(full + strings.Repeat("A", 300))}, Want: guardtest.InvalidToken},
		{Name: "bearer-looking value", Path: "/key-read", Mods: []guardtest.Mod{guardtest.APIKeyHeader("Bearer " + full)}, Want: guardtest.InvalidToken},
		{Name: "revoked", Path: "/key-read", Mods: []guardtest.Mod{guardtest.APIKeyHeader(revoked)}, Want: guardtest.InvalidToken},
		{Name: "insufficient scope", Path: "/key-write", Mods: []guardtest.Mod{guardtest.APIKeyHeader(full)},
			Want: guardtest.Want{Status: http.StatusForbidden, Problem: "insufficient-scope", AuthErr: "insufficient_scope", Scope: "a:write"}},
		{Name: "sufficient scope", Path: "/key-write", Mods: []guardtest.Mod{guardtest.APIKeyHeader(writeKey)}, Want: guardtest.OK200, Saw: guardtest.OKAs("keyWrite", "alice", "apiKeyAuth")},
		{Name: "two X-API-Key headers", Path: "/key-read", Mods: []guardtest.Mod{guardtest.APIKeyHeader(full), guardtest.APIKeyHeader(full)}, Want: guardtest.BadRequest},
		{Name: "two X-API-Key headers, one bad", Path: "/key-read", Mods: []guardtest.Mod{guardtest.APIKeyHeader(full), guardtest.APIKeyHeader("garbage")}, Want: guardtest.BadRequest},
		{Name: "header name in lower case", Path: "/key-read", Mods: []guardtest.Mod{func(r *http.Request) { r.Header["x-api-key"] = []string{full} }}, Want: guardtest.OK200},
		{Name: "no key", Path: "/key-read", Want: guardtest.Unauth},
		{Name: "key in the Authorization header", Path: "/key-read", Mods: []guardtest.Mod{guardtest.Bearer(full)}, Want: guardtest.Unauth},
	}
	guardtest.RunCases(t, e, cases)

	t.Run("expired", func(t *testing.T) {
		e.Clock.Advance(apikeys.DefaultTTL + time.Hour)
		guardtest.InvalidToken.Check(t, e.Do(t, http.MethodGet, "/key-read", "", guardtest.APIKeyHeader(full)))
	})
}

// The key shows its true first characters as its prefix and says nothing
// about its owner.
func TestAPIKeyPrefixIsTrueAndCarriesNoOwner(t *testing.T) {
	e := guardtest.NewEnv(t)
	full, k := e.APIKey(t, "alice-the-owner", "a:read")
	if !strings.HasPrefix(full, k.Prefix) || len(k.Prefix) != len(security.APIKeyPrefix)+8 {
		t.Errorf("Prefix %q is not the first characters of the key", k.Prefix)
	}
	if strings.Contains(full, "alice-the-owner") {
		t.Errorf("the key carries its owner's id")
	}
}

func TestAPIKeyStoresOnlyTheHash(t *testing.T) {
	e := guardtest.NewEnv(t)
	full, created := e.APIKey(t, "alice", "a:read")
	secretEnc := strings.Split(full, ".")[1]
	secret, err := base64.RawURLEncoding.DecodeString(secretEnc)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := e.Keys.List(context.Background(), "alice")
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
	e := guardtest.NewEnv(t)
	ctx := context.Background()
	full, k := e.APIKey(t, "alice", "a:read")
	lastUsed := func() time.Time {
		t.Helper()
		keys, err := e.Keys.List(ctx, "alice")
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
	guardtest.OK200.Check(t, e.Do(t, http.MethodGet, "/key-read", "", guardtest.APIKeyHeader(full)))
	first := e.Clock.Now()
	waitFor(first)
	e.Clock.Advance(10 * time.Second)
	guardtest.OK200.Check(t, e.Do(t, http.MethodGet, "/key-read", "", guardtest.APIKeyHeader(full)))
	time.Sleep(50 * time.Millisecond)
	if got := lastUsed(); !got.Equal(first) {
		t.Errorf("LastUsed within the minute = %v, want %v kept", got, first)
	}
	e.Clock.Advance(time.Minute)
	guardtest.OK200.Check(t, e.Do(t, http.MethodGet, "/key-read", "", guardtest.APIKeyHeader(full)))
	waitFor(e.Clock.Now())
}
