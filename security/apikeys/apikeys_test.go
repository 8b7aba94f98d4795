package apikeys_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/specguard/specguard/internal/guardtest"
	"github.com/specguard/specguard/policy"
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

// halfWay fails the record's or the store's half of a revocation, as a
// database or a Redis that goes away in the middle of Revoke would.
type halfWay struct {
	security.KeyRecords
	*security.MemoryStore
	recordFails, storeFails atomic.Bool
}

func (h *halfWay) RevokeAPIKey(ctx context.Context, subject, id string) error {
	if h.recordFails.Load() {
		return errors.New("db: connection reset")
	}
	return h.KeyRecords.RevokeAPIKey(ctx, subject, id)
}

func (h *halfWay) RevokeKey(ctx context.Context, subject, id string, expires time.Time) error {
	if h.storeFails.Load() {
		return errors.New("redis: connection reset")
	}
	return h.MemoryStore.RevokeKey(ctx, subject, id, expires)
}

// A revocation that fails half-way says so, and never ends with the key
// live once its record says revoked: the record is written first, and it
// outlives the store's revocation (a minute) and the key's mark (MarkTTL).
// Calling again finishes the work at once.
func TestRevokeFailingHalfWay(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	clock := func() time.Time { return now }
	for _, c := range []struct {
		name   string
		fail   func(h *halfWay) *atomic.Bool
		refuse bool // right after the failed Revoke
		again  error
	}{
		// Nothing changed: the key still works, and the caller knows it.
		{"the record cannot be written", func(h *halfWay) *atomic.Bool { return &h.recordFails }, false, nil},
		// The record says revoked; the store's mark still holds until
		// MarkTTL. Calling again writes the store's half (ErrNotFound:
		// no live key any more).
		{"the store cannot be written", func(h *halfWay) *atomic.Bool { return &h.storeFails }, false, security.ErrNotFound},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := &halfWay{KeyRecords: security.NewMemoryKeyRecords(clock), MemoryStore: security.NewMemoryStore(clock)}
			keys := apikeys.New(h, h, apikeys.WithClock(clock))
			full, k, err := keys.Create(ctx, "alice", "ci", []string{"a:read"})
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := keys.Verify(ctx, full); err != nil {
				t.Fatalf("fresh key: %v", err)
			}
			c.fail(h).Store(true)
			if err := keys.Revoke(ctx, "alice", k.ID); !errors.Is(err, security.ErrUnavailable) {
				t.Fatalf("Revoke failing half-way: %v, want ErrUnavailable", err)
			}
			if _, _, err := keys.Verify(ctx, full); (err != nil) != c.refuse {
				t.Fatalf("right after: Verify = %v, refused want %v", err, c.refuse)
			}
			c.fail(h).Store(false)
			if err := keys.Revoke(ctx, "alice", k.ID); !errors.Is(err, c.again) || (c.again == nil) != (err == nil) {
				t.Fatalf("Revoke again: %v, want %v", err, c.again)
			}
			for _, later := range []time.Duration{0, security.KeyRevocationTTL + time.Second, security.MarkTTL + time.Second} {
				now = now.Add(later)
				if _, _, err := keys.Verify(ctx, full); !errors.Is(err, security.ErrInvalid) {
					t.Errorf("%v after calling again: Verify = %v, want ErrInvalid", later, err)
				}
			}
		})
	}
}

// Without the second call, a revocation whose store half failed still
// ends with the key refused once its mark runs out: the record decides.
func TestRevokeStoreHalfFailedRecordDecides(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	clock := func() time.Time { return now }
	h := &halfWay{KeyRecords: security.NewMemoryKeyRecords(clock), MemoryStore: security.NewMemoryStore(clock)}
	keys := apikeys.New(h, h, apikeys.WithClock(clock))
	full, k, err := keys.Create(ctx, "alice", "ci", []string{"a:read"})
	if err != nil {
		t.Fatal(err)
	}
	h.storeFails.Store(true)
	if err := keys.Revoke(ctx, "alice", k.ID); !errors.Is(err, security.ErrUnavailable) {
		t.Fatalf("Revoke: %v, want ErrUnavailable", err)
	}
	now = now.Add(security.MarkTTL + time.Second)
	if _, _, err := keys.Verify(ctx, full); !errors.Is(err, security.ErrInvalid) {
		t.Errorf("after the mark ran out: Verify = %v, want ErrInvalid (the record says revoked)", err)
	}
}

// readCount counts the reads of key records.
type readCount struct {
	*security.MemoryKeyRecords
	reads atomic.Int32
}

func (c *readCount) APIKey(ctx context.Context, id string) (*security.APIKey, error) {
	c.reads.Add(1)
	return c.MemoryKeyRecords.APIKey(ctx, id)
}

// An instance whose clock runs behind the store's (Redis's TIME) found a
// key at its expiry unmarked in the store, refilled the mark from the
// record, which the store declined as expired, took that for done, and
// after three rounds answered 503 ("the account keeps changing"), each
// request costing four record reads. The store says the key expired, and
// the key is refused 401.
func TestKeyExpiredByTheStoresClockIsInvalid(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var now atomic.Pointer[time.Time]
	now.Store(&start)
	clock := func() time.Time { return *now.Load() }
	store := security.NewMemoryStore(func() time.Time { return clock().Add(10 * time.Second) }) // ahead
	records := &readCount{MemoryKeyRecords: security.NewMemoryKeyRecords(clock)}
	keys := apikeys.New(store, records, apikeys.WithTTL(time.Hour), apikeys.WithClock(clock))
	full, _, err := keys.Create(ctx, "alice", "k", []string{"a:read"})
	if err != nil {
		t.Fatal(err)
	}
	late := start.Add(time.Hour - 5*time.Second) // live here, expired at the store
	now.Store(&late)
	records.reads.Store(0)
	r, _ := http.NewRequest("GET", "/", nil)
	r.Header.Set("X-API-Key", full)
	_, err = keys.Authenticate(ctx, r, &policy.Scheme{Name: "apiKeyAuth", Type: policy.SchemeAPIKeyHeader, Param: "X-API-Key"})
	if !errors.Is(err, security.ErrInvalid) || records.reads.Load() > 2 {
		t.Errorf("a key expired by the store's clock: %v after %d record reads, want ErrInvalid after 2 at most", err, records.reads.Load())
	}
}
