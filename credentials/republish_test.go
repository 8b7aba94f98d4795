package credentials_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/sqldb"
)

// orderedAccounts are accounts in a real database whose updates a test can
// order: onEnter runs before an update takes the row, onRead (then
// afterRead) around the next read of an account, afterPub after an update
// published, before it commits; failNext makes the next update's commit
// fail after its publish.
type orderedAccounts struct {
	credentials.Accounts
	mu                                   sync.Mutex
	failNext                             bool
	onEnter, onRead, afterRead, afterPub func()
}

func (m *orderedAccounts) take(f *func()) func() {
	m.mu.Lock()
	defer m.mu.Unlock()
	g := *f
	*f = nil
	return g
}

func (m *orderedAccounts) Account(ctx context.Context, id string) (*credentials.Account, error) {
	f := m.take(&m.onRead)
	if f != nil {
		f()
	}
	a, err := m.Accounts.Account(ctx, id)
	if f != nil {
		if g := m.take(&m.afterRead); g != nil {
			g()
		}
	}
	return a, err
}

func (m *orderedAccounts) UpdateAccount(ctx context.Context, id string, change func(*credentials.Account) error, publish func(*credentials.Account) error) (*credentials.Account, error) {
	if f := m.take(&m.onEnter); f != nil {
		f()
	}
	m.mu.Lock()
	fail := m.failNext
	m.failNext = false
	m.mu.Unlock()
	return m.Accounts.UpdateAccount(ctx, id, change, func(a *credentials.Account) error {
		if err := publish(a); err != nil {
			return err
		}
		if f := m.take(&m.afterPub); f != nil {
			f()
		}
		if fail {
			return fmt.Errorf("%w: commit failed", security.ErrUnavailable)
		}
		return nil
	})
}

// A change (U1) publishes and fails to commit, and puts the store back
// from the database; a demotion (U2) waiting for the row meanwhile
// publishes and commits. U1's repair reads the database before U2's
// commit. U2 used to take U1's version (its floor read before it took the
// row), so the repair put the old role back over U2's at that version: the
// acknowledged demotion went unenforced until the store forgot the state.
func TestRepairOfAFailedCommitLeavesALaterChange(t *testing.T) {
	accounts, keys := sqlRecords(sqldb.SQLite)(t)
	acc := &orderedAccounts{Accounts: accounts}
	e := newEnv(t, nil, acc, keys, security.NewMemoryStore(nil), limits.NewMemoryStore(nil))
	if err := e.svc.Seed(ctx, []credentials.SeedAccount{{Email: "mod@example.com", Password: "mod-password-1", Role: "moderator"}}, nil); err != nil {
		t.Fatal(err)
	}
	access, _ := e.login("mod@example.com", "mod-password-1")
	id := e.meID(bearer(access)...)
	if r := e.do("GET", "/admin/users", "", "", bearer(access)...); r.code != 200 {
		t.Fatalf("a moderator's token on GET /admin/users: %d, want 200", r.code)
	}
	u1published, u2published, readDone, entered := make(chan struct{}), make(chan struct{}), make(chan struct{}), make(chan struct{})
	acc.onEnter = func() { close(entered); <-u1published } // U2 waits for the row
	var wg sync.WaitGroup
	var u2err error
	wg.Add(1)
	go func() { defer wg.Done(); u2err = e.svc.SetRole(ctx, id, "user") }()
	<-entered
	acc.mu.Lock()
	acc.failNext = true
	acc.onRead = func() { // U1's repair, once it rolled back
		acc.mu.Lock()
		acc.afterPub = func() { close(u2published); <-readDone }
		acc.afterRead = func() { close(readDone) }
		acc.mu.Unlock()
		close(u1published)
		<-u2published
	}
	acc.mu.Unlock()
	if err := e.svc.Enable(ctx, id); err == nil {
		t.Fatal("U1's commit failed, and Enable said nil")
	}
	wg.Wait()
	if u2err != nil {
		t.Fatalf("the demotion: %v", u2err)
	}
	st, _ := e.store.Account(ctx, id)
	db, _ := accounts.Account(ctx, id)
	if r := e.do("GET", "/admin/users", "", "", bearer(access)...); r.code != 403 {
		t.Errorf("the demoted account's token on GET /admin/users: %d, want 403 (database: version %d, role %s; store: version %d, role %s)",
			r.code, db.Version, db.Role, st.Version, st.Role)
	}
}

// lostAnswer is a store whose next PutAccount is applied and then
// reported failed, as a Redis reply lost to the client's timeout.
type lostAnswer struct {
	*security.MemoryStore
	lose atomic.Bool
}

func (a *lostAnswer) PutAccount(ctx context.Context, subject string, st security.Account) (security.Account, error) {
	held, err := a.MemoryStore.PutAccount(ctx, subject, st)
	if err == nil && a.lose.CompareAndSwap(true, false) {
		return security.Account{}, fmt.Errorf("%w: i/o timeout", security.ErrUnavailable)
	}
	return held, err
}

// A change whose publish the store applied but answered as failed is
// rolled back (the caller gets an error), and the store is put back: it
// used to keep the change, enforced though never committed (here a
// promotion, which let a demoted account's key read users again).
func TestPublishWithALostAnswerIsPutBack(t *testing.T) {
	st := &lostAnswer{MemoryStore: security.NewMemoryStore(nil)}
	acc := credentials.NewMemoryAccounts(nil)
	e := newEnv(t, nil, acc, security.NewMemoryKeyRecords(nil), st, limits.NewMemoryStore(nil))
	if err := e.svc.Seed(ctx, []credentials.SeedAccount{{Email: "mod@example.com", Password: "mod-password-1", Role: "moderator"}}, nil); err != nil {
		t.Fatal(err)
	}
	access, _ := e.login("mod@example.com", "mod-password-1")
	r := e.json("POST", "/api-keys", `{"name":"k","scopes":["users:read"]}`, bearer(access)...)
	if r.code != 201 {
		t.Fatalf("making a key: %d %s", r.code, r.raw)
	}
	key := r.body["key"].(string)
	id := e.meID(bearer(access)...)
	if err := e.svc.SetRole(ctx, id, "user"); err != nil {
		t.Fatal(err)
	}
	if got := e.do("GET", "/admin/users", "", "", "X-API-Key", key).code; got != 403 {
		t.Fatalf("the demoted account's key on GET /admin/users: %d, want 403", got)
	}
	st.lose.Store(true)
	if err := e.svc.SetRole(ctx, id, "moderator"); err == nil {
		t.Fatal("a promotion whose publish was answered as failed said nil")
	}
	if db, _ := acc.Account(ctx, id); db.Role != "user" {
		t.Fatalf("the database holds role %s after a change that failed, want user", db.Role)
	}
	if got := e.do("GET", "/admin/users", "", "", "X-API-Key", key).code; got != 403 {
		t.Errorf("the key after a promotion that failed: %d on GET /admin/users, want 403 (the change was enforced, never committed)", got)
	}
}
