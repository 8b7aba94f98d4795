package redisstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/specguard/specguard/internal/redistest"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/redisstore"
)

// Redis replicates asynchronously: a replica promoted before it had a
// revocation brings the revoked record back, and a logged-out token
// passes again. A write that takes something away is answered only once
// every replica of its master has it: while one lags, it is refused
// (ErrUnavailable: the logout says it failed, and is tried again), and
// once answered it outlives the failover.
func TestRevocationOutlivesAFailover(t *testing.T) {
	cl := redistest.StartCluster(t)
	rdb := cl.Client(t)
	ctx := context.Background()
	s := redisstore.New(rdb, "sg:", 400*time.Millisecond)
	masterAddr := redistest.NodeOf(t, rdb, "sg:{u:alice}")
	replica := cl.AddReplica(t, masterAddr)
	master := redis.NewClient(&redis.Options{Addr: masterAddr})
	defer master.Close()

	exp := time.Now().Add(time.Hour)
	for _, id := range []string{"f0", "f1", "f2", "f3"} {
		if err := s.CreateFamily(ctx, &security.Family{ID: id, Subject: "alice", RefreshJTI: "r1", AccessJTI: "a1", Expires: exp}, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateSession(ctx, &security.Session{ID: "s1", Subject: "alice", SecretHash: []byte("h"), Expires: exp}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutAccount(ctx, "alice", security.Account{Version: 1, Role: "user"}); err != nil {
		t.Fatal(err)
	}
	access := func(id string) security.Check {
		return security.Check{Kind: security.AccessCredential, Subject: "alice", ID: id, JTI: "a1"}
	}
	// In sync: a revocation is answered at once.
	if err := s.RevokeFamily(ctx, "alice", "f0"); err != nil {
		t.Fatalf("a revocation with the replica in sync: %v", err)
	}

	// The replica falls behind: its link drops and cannot come back.
	if err := replica.ConfigSet(ctx, "masterauth", "wrong").Err(); err != nil {
		t.Fatal(err)
	}
	if err := master.Do(ctx, "CLIENT", "KILL", "TYPE", "replica").Err(); err != nil {
		t.Fatal(err)
	}
	// A rotation is answered: refused, its client would present the
	// token it replaced, a reuse, and be logged out.
	if err := s.RotateFamily(ctx, "alice", "f3", "r1", "r2", "a2"); err != nil {
		t.Errorf("a rotation while the replica lags: %v, want it answered", err)
	}
	for _, c := range []struct {
		what string
		run  func() error
	}{
		{"RevokeFamily", func() error { return s.RevokeFamily(ctx, "alice", "f1") }},
		{"RevokeFamily again", func() error { return s.RevokeFamily(ctx, "alice", "f1") }}, // found done: it waits all the same
		{"RotateFamily, a reuse", func() error { return s.RotateFamily(ctx, "alice", "f2", "r0", "r2", "a2") }},
		{"DeleteSession", func() error { return s.DeleteSession(ctx, "alice", "s1") }},
		{"RevokeKey", func() error { return s.RevokeKey(ctx, "alice", "k1", exp) }},
		{"PutAccount", func() error {
			_, err := s.PutAccount(ctx, "alice", security.Account{Version: 2, Role: "user", Disabled: true})
			return err
		}},
		{"RevokeSubject", func() error { return s.RevokeSubject(ctx, "alice") }},
	} {
		if err := c.run(); !errors.Is(err, security.ErrUnavailable) {
			t.Errorf("%s while the replica lacks it: %v, want ErrUnavailable", c.what, err)
		}
	}

	// The replica catches up: the logout tried again is answered.
	if err := replica.ConfigSet(ctx, "masterauth", "").Err(); err != nil {
		t.Fatal(err)
	}
	revoked(t, s, "f1") // done by the first try, and now on the replica too

	// The master dies; its replica takes over.
	cl.StopNode(masterAddr)
	if err := replica.Do(ctx, "CLUSTER", "FAILOVER", "TAKEOVER").Err(); err != nil {
		t.Fatal(err)
	}
	redistest.Until(t, "the replica to take over", func() bool {
		info, _ := replica.Info(ctx, "replication").Result()
		return strings.Contains(info, "role:master")
	})
	for _, id := range []string{"f0", "f1", "f2"} {
		var err error
		redistest.Until(t, "the Cluster to answer", func() bool {
			rdb.ReloadState(ctx)
			err = s.Check(ctx, access(id))
			return !errors.Is(err, security.ErrUnavailable)
		})
		if !errors.Is(err, security.ErrNotFound) {
			t.Errorf("after the failover, the revoked family %s: Check = %v, want ErrNotFound", id, err)
		}
	}
	if a, err := s.Account(ctx, "alice"); err == nil && !a.Disabled {
		t.Errorf("after the failover, the account: %+v, want it disabled or gone", a)
	}
}

// On one Redis with a replica (as Sentinel runs it), the same: while the
// replica does not answer, a revocation is refused; once it does, the
// revocation tried again is answered.
func TestRevocationWaitsForTheReplicaOfOneRedis(t *testing.T) {
	srv := redistest.StartOwn(t)
	replica := redistest.StartReplica(t, srv)
	s := redisstore.New(srv.Client(t), srv.Prefix, 400*time.Millisecond)
	ctx := context.Background()
	if err := s.CreateFamily(ctx, &security.Family{ID: "f1", Subject: "alice", RefreshJTI: "r1", AccessJTI: "a1", Expires: time.Now().Add(time.Hour)}, 0); err != nil {
		t.Fatal(err)
	}
	replica.Freeze(t)
	if err := s.RevokeFamily(ctx, "alice", "f1"); !errors.Is(err, security.ErrUnavailable) {
		t.Errorf("a revocation while the replica does not answer: %v, want ErrUnavailable", err)
	}
	replica.Thaw(t)
	revoked(t, s, "f1")
}

// revoked waits until alice's family id, revoked by a call refused while
// a replica lagged, is answered as gone when revoked again: done by the
// first call, and now on every replica.
func revoked(t *testing.T, s *redisstore.Store, id string) {
	t.Helper()
	redistest.Until(t, "the revocation tried again to be answered", func() bool {
		return errors.Is(s.RevokeFamily(context.Background(), "alice", id), security.ErrNotFound)
	})
}

// The account state Accounts fills from the database where the store
// holds none takes nothing away (lost, the database is read again): a
// lagging replica does not hold up a login or a credential check. A
// change published is waited for.
func TestAccountFillDoesNotWaitForReplicas(t *testing.T) {
	srv := redistest.StartOwn(t)
	replica := redistest.StartReplica(t, srv)
	s := redisstore.New(srv.Client(t), srv.Prefix, 400*time.Millisecond)
	accts := security.NewAccounts(s, oneRole{}, func(string) []string { return nil })
	ctx := context.Background()
	if _, err := accts.Get(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	replica.Freeze(t)
	if _, err := accts.Get(ctx, "bob"); err != nil {
		t.Errorf("bob's account, filled while a replica lags: %v", err)
	}
	if _, err := accts.MintVersion(ctx, "carol"); err != nil {
		t.Errorf("a login's version for carol, filled while a replica lags: %v", err)
	}
	if err := accts.Publish(ctx, "alice", security.Account{Version: 2, Role: "user", Disabled: true}); !errors.Is(err, security.ErrUnavailable) {
		t.Errorf("alice disabled while a replica lags: %v, want ErrUnavailable", err)
	}
	// Where the store holds no state too: lost, a fill of the state the
	// database held before the change could take its place.
	if err := accts.Publish(ctx, "dave", security.Account{Version: 2, Role: "user", Disabled: true}); !errors.Is(err, security.ErrUnavailable) {
		t.Errorf("dave, never read, disabled while a replica lags: %v, want ErrUnavailable", err)
	}
}

// oneRole is an account source where every account is a user at version 1.
type oneRole struct{}

func (oneRole) AccountState(context.Context, string) (security.Account, error) {
	return security.Account{Version: 1, Role: "user"}, nil
}

// Between a failover and the client's next look at the slots, the node it
// takes for the subject's master is a replica, which has no replicas of
// its own: counted as none, a revocation would not wait for the new
// master's. It is refused instead (helper-139's case: the map held stale).
func TestStaleSlotMapDoesNotSkipTheWait(t *testing.T) {
	cl := redistest.StartCluster(t)
	rdb := cl.Client(t)
	ctx := context.Background()
	s := redisstore.New(rdb, "sg:", 400*time.Millisecond)
	oldAddr := redistest.NodeOf(t, rdb, "sg:{u:alice}")
	promoted := cl.AddReplica(t, oldAddr)
	if err := s.CreateFamily(ctx, &security.Family{ID: "f1", Subject: "alice", RefreshJTI: "r1", AccessJTI: "a1", Expires: time.Now().Add(time.Hour)}, 0); err != nil {
		t.Fatal(err)
	}
	if err := promoted.Do(ctx, "CLUSTER", "FAILOVER").Err(); err != nil {
		t.Fatal(err)
	}
	old := redis.NewClient(&redis.Options{Addr: oldAddr})
	defer old.Close()
	asked := time.Now()
	redistest.Until(t, "the failover", func() bool {
		info, _ := old.Info(ctx, "replication").Result()
		if strings.Contains(info, "role:slave") {
			return true
		}
		if time.Since(asked) > 6*time.Second {
			// Redis gives a manual failover 5 s to agree with the master,
			// then drops it: on a busy machine, asked again (it failed
			// one CI run of twenty seconds).
			promoted.Do(ctx, "CLUSTER", "FAILOVER")
			asked = time.Now()
		}
		return false
	})
	stale := redis.NewClusterClient(&redis.ClusterOptions{ClusterSlots: func(context.Context) ([]redis.ClusterSlot, error) {
		return []redis.ClusterSlot{{Start: 0, End: 16383, Nodes: []redis.ClusterNode{{Addr: oldAddr}}}}, nil
	}})
	defer stale.Close()
	if err := redisstore.New(stale, "sg:", 400*time.Millisecond).RevokeFamily(ctx, "alice", "f1"); !errors.Is(err, security.ErrUnavailable) {
		t.Errorf("a revocation through a map that names the old master: %v, want ErrUnavailable", err)
	}
}

// A map that predates a resharding may name, for the subject's slot, a
// master that no longer holds it and has no replicas: the revocation is
// written where the slot now is (MOVED), and counted by the old node's
// replicas, none, it would not wait for the new master's (helper-176).
func TestMapOfAMovedSlotDoesNotSkipTheWait(t *testing.T) {
	cl := redistest.StartCluster(t)
	rdb := cl.Client(t)
	ctx := context.Background()
	s := redisstore.New(rdb, "sg:", 400*time.Millisecond)
	owner := redistest.NodeOf(t, rdb, "sg:{u:alice}")
	var other string // a master without replicas that does not hold alice's slot
	for _, n := range cl.Nodes {
		if n.Addr != owner {
			other = n.Addr
			break
		}
	}
	replica := cl.AddReplica(t, owner)
	exp := time.Now().Add(time.Hour)
	for _, id := range []string{"f1", "f2"} {
		if err := s.CreateFamily(ctx, &security.Family{ID: id, Subject: "alice", RefreshJTI: "r" + id, AccessJTI: "a" + id, Expires: exp}, 0); err != nil {
			t.Fatal(err)
		}
	}
	// The replica stops taking the master's writes.
	master := redis.NewClient(&redis.Options{Addr: owner})
	defer master.Close()
	if err := replica.ConfigSet(ctx, "masterauth", "wrong").Err(); err != nil {
		t.Fatal(err)
	}
	if err := master.Do(ctx, "CLIENT", "KILL", "TYPE", "replica").Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeFamily(ctx, "alice", "f1"); !errors.Is(err, security.ErrUnavailable) {
		t.Fatalf("control: a revocation while the replica lacks it: %v, want ErrUnavailable", err)
	}
	stale := redis.NewClusterClient(&redis.ClusterOptions{ClusterSlots: func(context.Context) ([]redis.ClusterSlot, error) {
		return []redis.ClusterSlot{{Start: 0, End: 16383, Nodes: []redis.ClusterNode{{Addr: other}}}}, nil
	}})
	defer stale.Close()
	if err := redisstore.New(stale, "sg:", 400*time.Millisecond).RevokeFamily(ctx, "alice", "f2"); !errors.Is(err, security.ErrUnavailable) {
		t.Errorf("a revocation through a map that names a master of no replicas, no longer the slot's: %v, want ErrUnavailable (the slot's master has a replica that lacks it)", err)
	}
}

// A slot migrating away is still its node's: a revocation on masters of
// no replicas is done, not refused for the migration's whole length as
// the first check of the slot's owner did (helper-180, on 03e6009).
func TestRevocationWhileTheSlotMigrates(t *testing.T) {
	cl := redistest.StartCluster(t)
	rdb := cl.Client(t)
	ctx := context.Background()
	s := redisstore.New(rdb, "sg:", 400*time.Millisecond)
	exp := time.Now().Add(time.Hour)
	if err := s.CreateFamily(ctx, &security.Family{ID: "f1", Subject: "alice", RefreshJTI: "r1", AccessJTI: "a1", Expires: exp}, 0); err != nil {
		t.Fatal(err)
	}
	slot, err := rdb.ClusterKeySlot(ctx, "sg:{u:alice}").Result()
	if err != nil {
		t.Fatal(err)
	}
	srcAddr := redistest.NodeOf(t, rdb, "sg:{u:alice}")
	var dstAddr string
	for _, n := range cl.Nodes {
		if n.Addr != srcAddr {
			dstAddr = n.Addr
			break
		}
	}
	src := redis.NewClient(&redis.Options{Addr: srcAddr})
	defer src.Close()
	dst := redis.NewClient(&redis.Options{Addr: dstAddr})
	defer dst.Close()
	id := func(c *redis.Client) string {
		out, err := c.Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	srcID, dstID := id(src), id(dst)
	if err := dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID).Err(); err != nil {
		t.Fatal(err)
	}
	if err := src.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeFamily(ctx, "alice", "f1"); err != nil {
		t.Errorf("a revocation while alice's slot migrates, on masters without replicas: %v, want it done", err)
	}
}

// A Redis user that may not run ROLE cannot learn what to wait for: the
// store refuses at start, naming the grant.
func TestUserThatMayNotAskForReplicasRefused(t *testing.T) {
	srv := redistest.StartOwn(t)
	ctx := context.Background()
	if err := srv.Client(t).Do(ctx, "ACL", "SETUSER", "app", "on", ">pw", "~*", "&*", "+@all", "-@dangerous").Err(); err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: "app", Password: "pw"})
	defer rdb.Close()
	err := redisstore.New(rdb, srv.Prefix, time.Second).Preload(ctx)
	if !errors.Is(err, security.ErrUnavailable) || !strings.Contains(err.Error(), "grant it +role (ACL SETUSER)") {
		t.Errorf("Preload as a user without ROLE: %v", err)
	}
	if err := srv.Client(t).Do(ctx, "ACL", "SETUSER", "app", "+role").Err(); err != nil {
		t.Fatal(err)
	}
	if err := redisstore.New(rdb, srv.Prefix, time.Second).Preload(ctx); err != nil {
		t.Errorf("Preload once granted +role: %v", err)
	}
}
