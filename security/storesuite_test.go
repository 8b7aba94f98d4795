package security_test

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/specguard/specguard/e2e/redistest"
	"github.com/specguard/specguard/security"
)

// stores runs one suite against every Store implementation.
func stores(t *testing.T, suite func(t *testing.T, s security.Store)) {
	t.Run("memory", func(t *testing.T) { suite(t, security.NewMemoryStore(nil)) })
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		suite(t, security.NewRedisStore(srv.Client(t), srv.Prefix, time.Second))
	})
}

func newFamily(sub string) *security.Family {
	return &security.Family{ID: security.NewID(), Subject: sub, Device: "laptop", RefreshJTI: "r1", AccessJTI: "a1", Expires: time.Now().Add(time.Hour)}
}

func TestStoreFamilies(t *testing.T) {
	stores(t, func(t *testing.T, s security.Store) {
		ctx := context.Background()
		f := newFamily("alice")
		if err := s.CreateFamily(ctx, f); err != nil {
			t.Fatal(err)
		}
		if f.Created.IsZero() {
			t.Error("CreateFamily did not set Created")
		}
		if err := s.CheckAccess(ctx, "alice", f.ID, "a1"); err != nil {
			t.Fatalf("CheckAccess(current) = %v, want nil", err)
		}
		if err := s.CheckAccess(ctx, "bob", f.ID, "a1"); !errors.Is(err, security.ErrNotFound) {
			t.Errorf("CheckAccess(other subject) = %v, want ErrNotFound", err)
		}
		if err := s.RotateFamily(ctx, "alice", f.ID, "r1", "r2", "a2"); err != nil {
			t.Fatalf("RotateFamily = %v", err)
		}
		if err := s.CheckAccess(ctx, "alice", f.ID, "a1"); !errors.Is(err, security.ErrNotFound) {
			t.Errorf("replaced access token: CheckAccess = %v, want ErrNotFound", err)
		}
		if err := s.CheckAccess(ctx, "alice", f.ID, "a2"); err != nil {
			t.Errorf("new access token: CheckAccess = %v", err)
		}
		fams, err := s.Families(ctx, "alice")
		if err != nil || len(fams) != 1 || fams[0].ID != f.ID || fams[0].Device != "laptop" {
			t.Fatalf("Families = %+v, %v; want the one family", fams, err)
		}
		// Reuse of r1 (already rotated) revokes the family.
		if err := s.RotateFamily(ctx, "alice", f.ID, "r1", "r3", "a3"); !errors.Is(err, security.ErrReused) {
			t.Fatalf("reuse: RotateFamily = %v, want ErrReused", err)
		}
		if err := s.CheckAccess(ctx, "alice", f.ID, "a2"); !errors.Is(err, security.ErrNotFound) {
			t.Errorf("after reuse: CheckAccess = %v, want ErrNotFound", err)
		}
		if err := s.RotateFamily(ctx, "alice", f.ID, "r2", "r4", "a4"); !errors.Is(err, security.ErrNotFound) {
			t.Errorf("after reuse, the newest token: RotateFamily = %v, want ErrNotFound", err)
		}
		if fams, _ := s.Families(ctx, "alice"); len(fams) != 0 {
			t.Errorf("Families after reuse = %d, want 0", len(fams))
		}
	})
}

func TestStoreRevokeFamily(t *testing.T) {
	stores(t, func(t *testing.T, s security.Store) {
		ctx := context.Background()
		f := newFamily("alice")
		_ = s.CreateFamily(ctx, f)
		if err := s.RevokeFamily(ctx, "bob", f.ID); !errors.Is(err, security.ErrNotFound) {
			t.Errorf("RevokeFamily(other subject) = %v, want ErrNotFound", err)
		}
		if err := s.RevokeFamily(ctx, "alice", f.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.CheckAccess(ctx, "alice", f.ID, "a1"); !errors.Is(err, security.ErrNotFound) {
			t.Errorf("CheckAccess after revoke = %v", err)
		}
		if err := s.RevokeFamily(ctx, "alice", f.ID); !errors.Is(err, security.ErrNotFound) {
			t.Errorf("second RevokeFamily = %v, want ErrNotFound", err)
		}
	})
}

func TestStoreConcurrentRotationHasOneWinner(t *testing.T) {
	stores(t, func(t *testing.T, s security.Store) {
		ctx := context.Background()
		f := newFamily("alice")
		_ = s.CreateFamily(ctx, f)
		var ok, reused atomic.Int64
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				switch err := s.RotateFamily(ctx, "alice", f.ID, "r1", "next", "a"+string(rune('A'+i))); {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, security.ErrReused), errors.Is(err, security.ErrNotFound):
					reused.Add(1)
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 1 || reused.Load() != 49 {
			t.Fatalf("successes = %d, refusals = %d; want 1 and 49", ok.Load(), reused.Load())
		}
	})
}

func TestStoreRevokeSubject(t *testing.T) {
	stores(t, func(t *testing.T, s security.Store) {
		ctx := context.Background()
		exp := time.Now().Add(time.Hour)
		for _, sub := range []string{"alice", "bob"} {
			_ = s.CreateFamily(ctx, &security.Family{ID: sub + "-f", Subject: sub, RefreshJTI: "r", AccessJTI: "a", Expires: exp})
			_ = s.CreateSession(ctx, &security.Session{ID: sub + "-s", Subject: sub, Role: "user", SecretHash: []byte("h"), Expires: exp})
			_ = s.CreateKey(ctx, &security.APIKey{ID: sub + "-k", Subject: sub, Name: "ci", Scopes: []string{"a:read"}, SecretHash: []byte("h"), Expires: exp})
		}
		if err := s.RevokeSubject(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		if err := s.CheckAccess(ctx, "alice", "alice-f", "a"); !errors.Is(err, security.ErrNotFound) {
			t.Errorf("alice's family survived: %v", err)
		}
		if _, err := s.Session(ctx, "alice", "alice-s"); !errors.Is(err, security.ErrNotFound) {
			t.Errorf("alice's session survived: %v", err)
		}
		if _, err := s.Key(ctx, "alice", "alice-k"); !errors.Is(err, security.ErrNotFound) {
			t.Errorf("alice's key survived: %v", err)
		}
		if err := s.CheckAccess(ctx, "bob", "bob-f", "a"); err != nil {
			t.Errorf("bob's family was revoked: %v", err)
		}
		if _, err := s.Session(ctx, "bob", "bob-s"); err != nil {
			t.Errorf("bob's session was revoked: %v", err)
		}
		if _, err := s.Key(ctx, "bob", "bob-k"); err != nil {
			t.Errorf("bob's key was revoked: %v", err)
		}
		// A login after the revocation works.
		_ = s.CreateFamily(ctx, &security.Family{ID: "alice-f2", Subject: "alice", RefreshJTI: "r", AccessJTI: "a", Expires: exp})
		if err := s.CheckAccess(ctx, "alice", "alice-f2", "a"); err != nil {
			t.Errorf("login after RevokeSubject: %v", err)
		}
	})
}

func TestStoreSessions(t *testing.T) {
	stores(t, func(t *testing.T, s security.Store) {
		ctx := context.Background()
		in := &security.Session{ID: "s1", Subject: "alice", Role: "admin", Device: "firefox", SecretHash: []byte{0, 1, 2, 255}, Expires: time.Now().Add(time.Hour)}
		if err := s.CreateSession(ctx, in); err != nil {
			t.Fatal(err)
		}
		got, err := s.Session(ctx, "alice", "s1")
		if err != nil {
			t.Fatal(err)
		}
		if got.Role != "admin" || got.Device != "firefox" || string(got.SecretHash) != string(in.SecretHash) || got.LastUsed.Before(got.Created) {
			t.Errorf("Session = %+v, want the stored fields", got)
		}
		if _, err := s.Session(ctx, "bob", "s1"); !errors.Is(err, security.ErrNotFound) {
			t.Errorf("Session(other subject) = %v, want ErrNotFound", err)
		}
		list, err := s.Sessions(ctx, "alice")
		if err != nil || len(list) != 1 || list[0].ID != "s1" {
			t.Errorf("Sessions = %+v, %v", list, err)
		}
		if err := s.DeleteSession(ctx, "alice", "s1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Session(ctx, "alice", "s1"); !errors.Is(err, security.ErrNotFound) {
			t.Errorf("after DeleteSession: %v", err)
		}
		expired := &security.Session{ID: "s2", Subject: "alice", SecretHash: []byte("h"), Expires: time.Now().Add(50 * time.Millisecond)}
		_ = s.CreateSession(ctx, expired)
		time.Sleep(120 * time.Millisecond)
		if _, err := s.Session(ctx, "alice", "s2"); !errors.Is(err, security.ErrNotFound) {
			t.Errorf("expired session: %v, want ErrNotFound", err)
		}
	})
}

func TestStoreKeys(t *testing.T) {
	stores(t, func(t *testing.T, s security.Store) {
		ctx := context.Background()
		k := &security.APIKey{ID: "k1", Subject: "alice", Name: "ci", Prefix: "sg_k1", Scopes: []string{"a:read", "a:write"}, SecretHash: []byte{9, 8, 7}, Expires: time.Now().Add(time.Hour)}
		if err := s.CreateKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		list, _ := s.Keys(ctx, "alice")
		if len(list) != 1 || !list[0].LastUsed.IsZero() {
			t.Fatalf("Keys before use = %+v, want one never-used key", list)
		}
		got, err := s.Key(ctx, "alice", "k1")
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != "ci" || len(got.Scopes) != 2 || got.Scopes[1] != "a:write" || string(got.SecretHash) != string(k.SecretHash) {
			t.Errorf("Key = %+v", got)
		}
		list, _ = s.Keys(ctx, "alice")
		if len(list) != 1 || list[0].LastUsed.IsZero() {
			t.Errorf("Keys after use = %+v, want LastUsed set", list)
		}
		if err := s.RevokeKey(ctx, "bob", "k1"); !errors.Is(err, security.ErrNotFound) {
			t.Errorf("RevokeKey(other subject) = %v", err)
		}
		if err := s.RevokeKey(ctx, "alice", "k1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Key(ctx, "alice", "k1"); !errors.Is(err, security.ErrNotFound) {
			t.Errorf("revoked key: %v", err)
		}
	})
}

// Every Redis key must expire, so nothing outlives what it protects.
func TestRedisKeysHaveTTL(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	s := security.NewRedisStore(rdb, srv.Prefix, time.Second)
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	_ = s.CreateFamily(ctx, &security.Family{ID: "f", Subject: "alice", RefreshJTI: "r", AccessJTI: "a", Expires: exp})
	_ = s.CreateSession(ctx, &security.Session{ID: "s", Subject: "alice", SecretHash: []byte("h"), Expires: exp})
	_ = s.CreateKey(ctx, &security.APIKey{ID: "k", Subject: "alice", SecretHash: []byte("h"), Expires: exp})
	keys, err := rdb.Keys(ctx, srv.Prefix+"*").Result()
	if err != nil || len(keys) != 6 {
		t.Fatalf("keys = %v, %v; want 6", keys, err)
	}
	for _, k := range keys {
		ttl, _ := rdb.PTTL(ctx, k).Result()
		if ttl <= 0 || ttl > time.Hour+time.Second {
			t.Errorf("%s: TTL %s, want (0, 1h]", k, ttl)
		}
	}
}

// A store that cannot be reached gives ErrUnavailable, never a pass.
func TestRedisStoreDownIsUnavailable(t *testing.T) {
	srv := redistest.Start(t)
	if os.Getenv("SPECGUARD_TEST_REDIS_URL") != "" {
		t.Skip("cannot stop a shared Redis")
	}
	s := security.NewRedisStore(srv.Client(t), srv.Prefix, 200*time.Millisecond)
	ctx := context.Background()
	_ = s.CreateFamily(ctx, &security.Family{ID: "f", Subject: "alice", RefreshJTI: "r", AccessJTI: "a", Expires: time.Now().Add(time.Hour)})
	srv.Stop()
	start := time.Now()
	err := s.CheckAccess(ctx, "alice", "f", "a")
	if !errors.Is(err, security.ErrUnavailable) {
		t.Fatalf("CheckAccess with Redis down = %v, want ErrUnavailable", err)
	}
	t.Logf("failed in %s", time.Since(start))
	srv.Restart(t)
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("after restart: Ping = %v", err)
	}
}
