package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/specguard/specguard/security"
)

// Run checks that a store implements security.Store as specguard relies
// on: atomic rotation with reuse detection, caps, revocation of a whole
// subject, key marks, account mirrors and their stamps. open returns a
// fresh, empty store for each subtest.
func Run(t *testing.T, open func(t *testing.T) security.Store) {
	for _, c := range []struct {
		name string
		test func(*testing.T, security.Store)
	}{
		{"Families", testFamilies},
		{"RevokeFamily", testRevokeFamily},
		{"ConcurrentRotationHasOneWinner", testConcurrentRotationHasOneWinner},
		{"RevokeSubject", testRevokeSubject},
		{"Sessions", testSessions},
		{"KeyMarks", testKeyMarks},
		{"Accounts", testAccounts},
		{"SessionCheckMarksUse", testSessionCheckMarksUse},
		{"SessionIdle", testSessionIdle},
		{"Caps", testCaps},
		{"KeyCapCountsRevocations", testKeyCapCountsRevocations},
		{"CreateAgainAtTheCap", testCreateAgainAtTheCap},
	} {
		t.Run(c.name, func(t *testing.T) { c.test(t, open(t)) })
	}
}

func testFamilies(t *testing.T, s security.Store) {
	ctx := context.Background()
	f := newFamily("alice")
	if err := s.CreateFamily(ctx, f, 0); err != nil {
		t.Fatal(err)
	}
	if f.Created.IsZero() {
		t.Error("CreateFamily did not set Created")
	}
	if err := checkAccess(ctx, s, "alice", f.ID, "a1"); err != nil {
		t.Fatalf("CheckAccess(current) = %v, want nil", err)
	}
	if err := checkAccess(ctx, s, "bob", f.ID, "a1"); !errors.Is(err, security.ErrNotFound) {
		t.Errorf("CheckAccess(other subject) = %v, want ErrNotFound", err)
	}
	if err := s.RotateFamily(ctx, "alice", f.ID, "r1", "r2", "a2"); err != nil {
		t.Fatalf("RotateFamily = %v", err)
	}
	// The same rotation again, as a client retries a call whose answer
	// was lost: not a reuse.
	if err := s.RotateFamily(ctx, "alice", f.ID, "r1", "r2", "a2"); err != nil {
		t.Fatalf("the same rotation again: RotateFamily = %v, want nil", err)
	}
	if err := checkAccess(ctx, s, "alice", f.ID, "a1"); !errors.Is(err, security.ErrNotFound) {
		t.Errorf("replaced access token: CheckAccess = %v, want ErrNotFound", err)
	}
	if err := checkAccess(ctx, s, "alice", f.ID, "a2"); err != nil {
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
	if err := checkAccess(ctx, s, "alice", f.ID, "a2"); !errors.Is(err, security.ErrNotFound) {
		t.Errorf("after reuse: CheckAccess = %v, want ErrNotFound", err)
	}
	if err := s.RotateFamily(ctx, "alice", f.ID, "r2", "r4", "a4"); !errors.Is(err, security.ErrNotFound) {
		t.Errorf("after reuse, the newest token: RotateFamily = %v, want ErrNotFound", err)
	}
	if fams, _ := s.Families(ctx, "alice"); len(fams) != 0 {
		t.Errorf("Families after reuse = %d, want 0", len(fams))
	}
}

func testRevokeFamily(t *testing.T, s security.Store) {
	ctx := context.Background()
	f := newFamily("alice")
	_ = s.CreateFamily(ctx, f, 0)
	if err := s.RevokeFamily(ctx, "bob", f.ID); !errors.Is(err, security.ErrNotFound) {
		t.Errorf("RevokeFamily(other subject) = %v, want ErrNotFound", err)
	}
	if err := s.RevokeFamily(ctx, "alice", f.ID); err != nil {
		t.Fatal(err)
	}
	if err := checkAccess(ctx, s, "alice", f.ID, "a1"); !errors.Is(err, security.ErrNotFound) {
		t.Errorf("CheckAccess after revoke = %v", err)
	}
	if err := s.RevokeFamily(ctx, "alice", f.ID); !errors.Is(err, security.ErrNotFound) {
		t.Errorf("second RevokeFamily = %v, want ErrNotFound", err)
	}
}

func testConcurrentRotationHasOneWinner(t *testing.T, s security.Store) {
	ctx := context.Background()
	f := newFamily("alice")
	_ = s.CreateFamily(ctx, f, 0)
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
}

func testRevokeSubject(t *testing.T, s security.Store) {
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	for _, sub := range []string{"alice", "bob"} {
		_ = s.CreateFamily(ctx, &security.Family{ID: sub + "-f", Subject: sub, RefreshJTI: "r", AccessJTI: "a", Expires: exp}, 0)
		_ = s.CreateSession(ctx, &security.Session{ID: sub + "-s", Subject: sub, Role: "user", SecretHash: []byte("h"), Expires: exp}, 0)
		_, _ = s.MarkKey(ctx, &security.APIKey{ID: sub + "-k", Subject: sub, Expires: exp}, false, 0)
	}
	if err := s.RevokeSubject(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := checkAccess(ctx, s, "alice", "alice-f", "a"); !errors.Is(err, security.ErrNotFound) {
		t.Errorf("alice's family survived: %v", err)
	}
	if _, err := s.Session(ctx, "alice", "alice-s"); !errors.Is(err, security.ErrNotFound) {
		t.Errorf("alice's session survived: %v", err)
	}
	if err := checkKey(ctx, s, "alice", "alice-k"); !errors.Is(err, security.ErrUnmarked) {
		t.Errorf("alice's key mark survived: %v", err)
	}
	if err := checkAccess(ctx, s, "bob", "bob-f", "a"); err != nil {
		t.Errorf("bob's family was revoked: %v", err)
	}
	if _, err := s.Session(ctx, "bob", "bob-s"); err != nil {
		t.Errorf("bob's session was revoked: %v", err)
	}
	if err := checkKey(ctx, s, "bob", "bob-k"); err != nil {
		t.Errorf("bob's key mark was dropped: %v", err)
	}
	// A login after the revocation works.
	_ = s.CreateFamily(ctx, &security.Family{ID: "alice-f2", Subject: "alice", RefreshJTI: "r", AccessJTI: "a", Expires: exp}, 0)
	if err := checkAccess(ctx, s, "alice", "alice-f2", "a"); err != nil {
		t.Errorf("login after RevokeSubject: %v", err)
	}
}

func testSessions(t *testing.T, s security.Store) {
	ctx := context.Background()
	in := &security.Session{ID: "s1", Subject: "alice", Role: "admin", Device: "firefox", SecretHash: []byte{0, 1, 2, 255}, Expires: time.Now().Add(time.Hour)}
	if err := s.CreateSession(ctx, in, 0); err != nil {
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
	_ = s.CreateSession(ctx, expired, 0)
	time.Sleep(120 * time.Millisecond)
	if _, err := s.Session(ctx, "alice", "s2"); !errors.Is(err, security.ErrNotFound) {
		t.Errorf("expired session: %v, want ErrNotFound", err)
	}
}

func testKeyMarks(t *testing.T, s security.Store) {
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	k := &security.APIKey{ID: "k1", Subject: "alice", Expires: exp}
	if err := checkKey(ctx, s, "alice", "k1"); !errors.Is(err, security.ErrUnmarked) {
		t.Fatalf("never marked: Check = %v, want ErrUnmarked", err)
	}
	if wrote, err := s.MarkKey(ctx, k, false, 0); !wrote || err != nil {
		t.Fatalf("MarkKey = %v, %v", wrote, err)
	}
	if err := checkKey(ctx, s, "alice", "k1"); err != nil {
		t.Fatalf("marked: Check = %v", err)
	}
	if err := checkKey(ctx, s, "bob", "k1"); err == nil {
		t.Errorf("Check of another subject's key passed")
	}
	for _, kind := range []security.CredentialKind{0, security.KeyCredential + 1, 255} {
		if err := s.Check(ctx, security.Check{Kind: kind, Subject: "alice", ID: "k1"}); !errors.Is(err, security.ErrNotFound) {
			t.Errorf("Check of kind %d over a live key's mark = %v, want ErrNotFound", kind, err)
		}
	}
	if wrote, err := s.MarkKey(ctx, k, true, 0); wrote || err != nil {
		t.Errorf("MarkKey(ifAbsent) over a mark = %v, %v; want false", wrote, err)
	}
	// A key expired by the store's clock (an instance's may run behind
	// it) is not marked, and says so: refilling its mark was taken for
	// done, and the check that followed failed again, answered 503.
	for _, ifAbsent := range []bool{false, true} {
		gone := &security.APIKey{ID: "k-expired", Subject: "alice", Expires: time.Now().Add(-time.Second)}
		if wrote, err := s.MarkKey(ctx, gone, ifAbsent, 0); wrote || !errors.Is(err, security.ErrNotFound) {
			t.Errorf("MarkKey(ifAbsent %v) of an expired key = %v, %v; want ErrNotFound", ifAbsent, wrote, err)
		}
	}
	if err := s.RevokeKey(ctx, "alice", "k1", exp); err != nil {
		t.Fatal(err)
	}
	if err := checkKey(ctx, s, "alice", "k1"); !errors.Is(err, security.ErrNotFound) {
		t.Errorf("revoked: Check = %v, want ErrNotFound", err)
	}
	// A refill from the durable record never undoes a revocation, and
	// neither does dropping the subject's marks.
	if wrote, err := s.MarkKey(ctx, k, true, 0); wrote || err != nil {
		t.Errorf("MarkKey(ifAbsent) over a revocation = %v, %v; want false", wrote, err)
	}
	if err := s.RevokeSubject(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := checkKey(ctx, s, "alice", "k1"); !errors.Is(err, security.ErrNotFound) {
		t.Errorf("revoked, after RevokeSubject: Check = %v, want ErrNotFound", err)
	}
	expired := &security.APIKey{ID: "k2", Subject: "alice", Expires: time.Now().Add(50 * time.Millisecond)}
	_, _ = s.MarkKey(ctx, expired, false, 0)
	time.Sleep(120 * time.Millisecond)
	if err := checkKey(ctx, s, "alice", "k2"); err == nil {
		t.Errorf("expired key: Check passed")
	}
}

func testAccounts(t *testing.T, s security.Store) {
	ctx := context.Background()
	if _, err := s.Account(ctx, "alice"); !errors.Is(err, security.ErrNotFound) {
		t.Fatalf("Account of nobody = %v, want ErrNotFound", err)
	}
	put := func(a security.Account) security.Account {
		t.Helper()
		held, err := s.PutAccount(ctx, "alice", a)
		if err != nil {
			t.Fatal(err)
		}
		return held
	}
	same := func(a, b security.Account) bool { a.Stamp, b.Stamp = "", ""; return a == b }
	v3 := security.Account{Version: 3, Role: "moderator", NotBefore: 2}
	held3 := put(v3)
	if !same(held3, v3) || held3.Stamp == "" {
		t.Errorf("PutAccount(v3) holds %+v", held3)
	}
	if got := put(security.Account{Version: 2, Role: "admin"}); got != held3 {
		t.Errorf("PutAccount(older) holds %+v, want v3 kept with its stamp", got)
	}
	// The same state again (instances re-reading the database at once when
	// the mirror expired) keeps its stamp: credentials checked against it
	// stay good.
	if got := put(v3); got != held3 {
		t.Errorf("PutAccount(the same state) holds %+v, want %+v kept with its stamp", got, held3)
	}
	// The same version again (a state whose database commit failed,
	// then the real one) is overwritten, with a stamp of its own.
	again := security.Account{Version: 3, Role: "user", Disabled: true, NotBefore: 3}
	heldAgain := put(again)
	if !same(heldAgain, again) || heldAgain.Stamp == held3.Stamp {
		t.Errorf("PutAccount(same version) holds %+v, want it overwritten with a new stamp (old %q)", heldAgain, held3.Stamp)
	}
	if got, err := s.Account(ctx, "alice"); err != nil || *got != heldAgain {
		t.Errorf("Account = %+v, %v; want %+v", got, err, heldAgain)
	}
	cur := put(security.Account{Version: 4, Role: "user", NotBefore: 3})

	// Versions up to MaxAccountVersion compare exactly (Redis compares
	// them as Lua numbers); past it a state is refused, and the one held
	// stays.
	top := security.Account{Version: security.MaxAccountVersion, Role: "user"}
	if held, err := s.PutAccount(ctx, "carol", top); err != nil || held.Version != top.Version {
		t.Fatalf("PutAccount(MaxAccountVersion) = %+v, %v", held, err)
	}
	if held, err := s.PutAccount(ctx, "carol", security.Account{Version: security.MaxAccountVersion - 1, Role: "admin"}); err != nil || held.Version != top.Version || held.Role != "user" {
		t.Errorf("PutAccount(one below MaxAccountVersion) after it = %+v, %v; want MaxAccountVersion kept", held, err)
	}
	for _, past := range []security.Account{{Version: security.MaxAccountVersion + 1, Role: "admin"}, {Version: 5, NotBefore: security.MaxAccountVersion + 1}} {
		if held, err := s.PutAccount(ctx, "carol", past); !errors.Is(err, security.ErrUnavailable) {
			t.Errorf("PutAccount(%+v) = %+v, %v; want ErrUnavailable", past, held, err)
		}
	}
	if got, err := s.Account(ctx, "carol"); err != nil || got.Version != top.Version || got.Role != "user" {
		t.Errorf("Account after refused states = %+v, %v; want MaxAccountVersion kept", got, err)
	}

	exp := time.Now().Add(time.Hour)
	_ = s.CreateFamily(ctx, &security.Family{ID: "old", Subject: "alice", RefreshJTI: "r", AccessJTI: "a", AccountVersion: 2, Expires: exp}, 0)
	_ = s.CreateFamily(ctx, &security.Family{ID: "new", Subject: "alice", RefreshJTI: "r", AccessJTI: "a", AccountVersion: 3, Expires: exp}, 0)
	_ = s.CreateSession(ctx, &security.Session{ID: "s-old", Subject: "alice", SecretHash: []byte("h"), AccountVersion: 1, Expires: exp}, 0)
	_ = s.CreateSession(ctx, &security.Session{ID: "s-new", Subject: "alice", SecretHash: []byte("h"), AccountVersion: 4, Expires: exp}, 0)
	_, _ = s.MarkKey(ctx, &security.APIKey{ID: "k-old", Subject: "alice", AccountVersion: 2, Expires: exp}, false, 0)
	_, _ = s.MarkKey(ctx, &security.APIKey{ID: "k-new", Subject: "alice", AccountVersion: 3, Expires: exp}, false, 0)
	for _, tc := range []struct {
		kind    security.CredentialKind
		id, jti string
		stamp   string
		want    error
	}{
		{security.AccessCredential, "new", "a", cur.Stamp, nil},
		{security.AccessCredential, "new", "a", "", nil}, // no account state asked for
		{security.AccessCredential, "new", "a", heldAgain.Stamp, security.ErrStale},
		{security.AccessCredential, "old", "a", cur.Stamp, security.ErrNotFound}, // minted before NotBefore
		{security.AccessCredential, "old", "a", "", nil},
		{security.SessionCredential, "s-new", "", cur.Stamp, nil},
		{security.SessionCredential, "s-new", "", "forged", security.ErrStale},
		{security.SessionCredential, "s-old", "", cur.Stamp, security.ErrNotFound},
		{security.KeyCredential, "k-new", "", cur.Stamp, nil},
		{security.KeyCredential, "k-new", "", held3.Stamp, security.ErrStale},
		{security.KeyCredential, "k-old", "", cur.Stamp, security.ErrNotFound},
	} {
		err := s.Check(ctx, security.Check{Kind: tc.kind, Subject: "alice", ID: tc.id, JTI: tc.jti, AccountStamp: tc.stamp})
		if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("Check(%d %s, stamp %q) = %v, want %v", tc.kind, tc.id, tc.stamp, err, tc.want)
		}
	}
	err := s.Check(ctx, security.Check{Kind: security.AccessCredential, Subject: "bob", ID: "x", JTI: "a", AccountStamp: cur.Stamp})
	if !errors.Is(err, security.ErrNotFound) {
		t.Errorf("Check of a missing family = %v, want ErrNotFound", err)
	}
	_ = s.CreateFamily(ctx, &security.Family{ID: "b", Subject: "bob", RefreshJTI: "r", AccessJTI: "a", AccountVersion: 1, Expires: exp}, 0)
	err = s.Check(ctx, security.Check{Kind: security.AccessCredential, Subject: "bob", ID: "b", JTI: "a", AccountStamp: cur.Stamp})
	if !errors.Is(err, security.ErrStale) {
		t.Errorf("Check with no account state stored = %v, want ErrStale", err)
	}
}

func testSessionCheckMarksUse(t *testing.T, s security.Store) {
	ctx := context.Background()
	_ = s.CreateSession(ctx, &security.Session{ID: "s1", Subject: "alice", SecretHash: []byte("h"), Expires: time.Now().Add(time.Hour)}, 0)
	before, _ := s.Sessions(ctx, "alice")
	time.Sleep(5 * time.Millisecond)
	if err := s.Check(ctx, security.Check{Kind: security.SessionCredential, Subject: "alice", ID: "s1"}); err != nil {
		t.Fatal(err)
	}
	after, _ := s.Sessions(ctx, "alice")
	if len(before) != 1 || len(after) != 1 || !after[0].LastUsed.After(before[0].LastUsed) {
		t.Errorf("LastUsed %v -> %v, want it moved by the Check", before, after)
	}
	// A check that fails is no use: an account state other than the one
	// held (none here) leaves LastUsed, and with it an idle bound, as it was.
	time.Sleep(5 * time.Millisecond)
	if err := s.Check(ctx, security.Check{Kind: security.SessionCredential, Subject: "alice", ID: "s1", AccountStamp: "not-held"}); err == nil {
		t.Fatal("a check against an account state the store does not hold held")
	}
	failed, _ := s.Sessions(ctx, "alice")
	if len(failed) != 1 || !failed[0].LastUsed.Equal(after[0].LastUsed) {
		t.Errorf("LastUsed %v -> %v after a check that failed, want it unmoved", after, failed)
	}
}

// A session with an idle bound holds while it is used within it, each
// check counting as a use, and ends once unused that long: its check fails,
// and it is neither read nor listed. One without a bound is unaffected.
func testSessionIdle(t *testing.T, s security.Store) {
	ctx := context.Background()
	const idle = 900 * time.Millisecond // wide: a loaded machine runs tests under -race
	exp := time.Now().Add(time.Hour)
	for _, id := range []string{"idle", "plain"} {
		sess := &security.Session{ID: id, Subject: "alice", SecretHash: []byte("h"), Expires: exp}
		if id == "idle" {
			sess.Idle = idle
		}
		if err := s.CreateSession(ctx, sess, 0); err != nil {
			t.Fatal(err)
		}
	}
	check := func(id string) error {
		return s.Check(ctx, security.Check{Kind: security.SessionCredential, Subject: "alice", ID: id})
	}
	if got, err := s.Session(ctx, "alice", "idle"); err != nil || got.Idle != idle {
		t.Fatalf("Session = %+v, %v; want Idle %s kept", got, err, idle)
	}
	for i := range 3 { // used every third of the bound: past it in all
		time.Sleep(idle / 3)
		if err := check("idle"); err != nil {
			t.Fatalf("use %d within the idle bound: %v", i+1, err)
		}
	}
	time.Sleep(idle + idle/2)
	if err := check("idle"); !errors.Is(err, security.ErrNotFound) {
		t.Errorf("after going unused past the idle bound: Check = %v, want ErrNotFound", err)
	}
	if _, err := s.Session(ctx, "alice", "idle"); !errors.Is(err, security.ErrNotFound) {
		t.Errorf("after going unused past the idle bound: Session = %v, want ErrNotFound", err)
	}
	if list, err := s.Sessions(ctx, "alice"); err != nil || len(list) != 1 || list[0].ID != "plain" {
		t.Errorf("Sessions = %+v, %v; want the one without a bound", list, err)
	}
	if err := check("plain"); err != nil {
		t.Errorf("the session without a bound: %v", err)
	}
	// Ending it finds nothing to end, as for one that expired.
	if err := s.DeleteSession(ctx, "alice", "idle"); !errors.Is(err, security.ErrNotFound) {
		t.Errorf("after going unused past the idle bound: DeleteSession = %v, want ErrNotFound", err)
	}
	// Nor does it hold a place under the cap: beside "plain", a cap of two
	// has room for one more.
	if err := s.CreateSession(ctx, &security.Session{ID: "next", Subject: "alice", SecretHash: []byte("h"), Expires: exp}, 2); err != nil {
		t.Errorf("a session beside an idle-ended one under a cap of 2: %v", err)
	}
}

// A store refuses a subject's login or session past the cap it is given;
// expired ones do not count, and other subjects are not affected.
func testCaps(t *testing.T, s security.Store) {
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	_ = s.CreateFamily(ctx, &security.Family{ID: "gone", Subject: "alice", RefreshJTI: "r", AccessJTI: "a", Expires: time.Now().Add(30 * time.Millisecond)}, 2)
	time.Sleep(60 * time.Millisecond)
	for i := range 2 {
		if err := s.CreateFamily(ctx, &security.Family{ID: fmt.Sprint("f", i), Subject: "alice", RefreshJTI: "r", AccessJTI: "a", Expires: exp}, 2); err != nil {
			t.Fatalf("login %d under the cap: %v", i+1, err)
		}
		if err := s.CreateSession(ctx, &security.Session{ID: fmt.Sprint("s", i), Subject: "alice", SecretHash: []byte("h"), Expires: exp}, 2); err != nil {
			t.Fatalf("session %d under the cap: %v", i+1, err)
		}
	}
	if err := s.CreateFamily(ctx, &security.Family{ID: "f3", Subject: "alice", RefreshJTI: "r", AccessJTI: "a", Expires: exp}, 2); !errors.Is(err, security.ErrTooMany) {
		t.Errorf("a third login under a cap of 2: %v, want ErrTooMany", err)
	}
	if err := s.CreateSession(ctx, &security.Session{ID: "s3", Subject: "alice", SecretHash: []byte("h"), Expires: exp}, 2); !errors.Is(err, security.ErrTooMany) {
		t.Errorf("a third session under a cap of 2: %v, want ErrTooMany", err)
	}
	if err := s.CreateFamily(ctx, &security.Family{ID: "b1", Subject: "bob", RefreshJTI: "r", AccessJTI: "a", Expires: exp}, 2); err != nil {
		t.Errorf("another subject's login: %v", err)
	}
	_ = s.RevokeFamily(ctx, "alice", "f0")
	if err := s.CreateFamily(ctx, &security.Family{ID: "f4", Subject: "alice", RefreshJTI: "r", AccessJTI: "a", Expires: exp}, 2); err != nil {
		t.Errorf("a login after ending one: %v", err)
	}
}

func newFamily(sub string) *security.Family {
	return &security.Family{ID: security.NewID(), Subject: sub, Device: "laptop", RefreshJTI: "r1", AccessJTI: "a1", Expires: time.Now().Add(time.Hour)}
}

func checkAccess(ctx context.Context, s security.Store, subject, family, jti string) error {
	return s.Check(ctx, security.Check{Kind: security.AccessCredential, Subject: subject, ID: family, JTI: jti})
}

func checkKey(ctx context.Context, s security.Store, subject, id string) error {
	return s.Check(ctx, security.Check{Kind: security.KeyCredential, Subject: subject, ID: id})
}

// A revocation the store holds counts toward the subject's cap of keys, so
// making and revoking keys cannot fill it; live marks that RevokeSubject
// drops make room.
func testKeyCapCountsRevocations(t *testing.T, s security.Store) {
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	mark := func(id string, max int) error {
		_, err := s.MarkKey(ctx, &security.APIKey{ID: id, Subject: "alice", Expires: exp}, false, max)
		return err
	}
	if err := mark("k1", 1); err != nil {
		t.Fatal(err)
	}
	if err := mark("k2", 1); !errors.Is(err, security.ErrTooMany) {
		t.Fatalf("a second key under a cap of one: %v, want ErrTooMany", err)
	}
	if err := s.RevokeKey(ctx, "alice", "k1", exp); err != nil {
		t.Fatal(err)
	}
	if err := mark("k2", 1); !errors.Is(err, security.ErrTooMany) {
		t.Fatalf("a key right after revoking the only one: %v, want ErrTooMany (the revocation is held)", err)
	}
	if err := s.RevokeSubject(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := mark("k2", 1); !errors.Is(err, security.ErrTooMany) {
		t.Fatalf("after RevokeSubject: %v, want ErrTooMany (a single key's revocation is kept)", err)
	}
	if err := mark("k3", 3); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeSubject(ctx, "alice"); err != nil { // drops k3's mark
		t.Fatal(err)
	}
	if err := mark("k4", 2); err != nil {
		t.Errorf("a key once RevokeSubject dropped the live marks: %v", err)
	}
	if _, err := s.MarkKey(ctx, &security.APIKey{ID: "b1", Subject: "bob", Expires: exp}, false, 1); err != nil {
		t.Errorf("a key of another subject: %v", err)
	}
}

// The same create again (a client retrying a call whose answer was lost,
// after the store ran it: ids are fresh per call, so only that call knows
// them) succeeds, even at the cap the first one filled: it used to be
// refused as one too many, with the record stored, taking a place under
// the cap for its whole life.
func testCreateAgainAtTheCap(t *testing.T, s security.Store) {
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	f := &security.Family{ID: "f1", Subject: "alice", RefreshJTI: "r", AccessJTI: "a", Expires: exp}
	for i := range 2 {
		if err := s.CreateFamily(ctx, f, 1); err != nil {
			t.Fatalf("CreateFamily at cap 1, time %d: %v", i+1, err)
		}
	}
	if err := s.CreateFamily(ctx, &security.Family{ID: "f2", Subject: "alice", RefreshJTI: "r", AccessJTI: "a", Expires: exp}, 1); !errors.Is(err, security.ErrTooMany) {
		t.Errorf("another family at cap 1 = %v, want ErrTooMany", err)
	}
	sess := &security.Session{ID: "s1", Subject: "alice", SecretHash: []byte("h"), Expires: exp}
	for i := range 2 {
		if err := s.CreateSession(ctx, sess, 1); err != nil {
			t.Fatalf("CreateSession at cap 1, time %d: %v", i+1, err)
		}
	}
	if list, err := s.Sessions(ctx, "alice"); err != nil || len(list) != 1 {
		t.Errorf("Sessions = %d, %v; want the one", len(list), err)
	}
	k := &security.APIKey{ID: "k1", Subject: "alice", Expires: exp}
	for i := range 2 {
		if wrote, err := s.MarkKey(ctx, k, false, 1); err != nil || !wrote {
			t.Fatalf("MarkKey at cap 1, time %d = %v, %v; want true, nil", i+1, wrote, err)
		}
	}
	if err := s.Check(ctx, security.Check{Kind: security.KeyCredential, Subject: "alice", ID: "k1"}); err != nil {
		t.Errorf("the key marked twice: %v", err)
	}
}
