// Package credentialstest is the contract every implementation of
// credentials.Accounts and security.KeyRecords must keep: run it from the
// tests of yours, as sqlstore's and the memory ones' tests do.
package credentialstest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/security"
)

var ctx = context.Background()

// NewAccount is an account of address email, role user, to create.
func NewAccount(email string) *credentials.Account {
	return &credentials.Account{ID: security.NewID(), Email: email, Role: "user", PasswordHash: "$2a$10$hash"}
}

// RunAccounts checks accounts: creation (one per address, whatever its
// case and Unicode form), lookups, listing, updates that publish before they commit and
// roll back when the publish fails, and their serialisation. open returns
// empty accounts for each subtest.
func RunAccounts(t *testing.T, open func(t *testing.T) credentials.Accounts) {
	t.Run("Accounts", func(t *testing.T) { testAccounts(t, open(t)) })
	t.Run("UnicodeAddresses", func(t *testing.T) { testUnicodeAddresses(t, open(t)) })
	t.Run("ConcurrentUpdates", func(t *testing.T) { testConcurrentUpdates(t, open(t)) })
	t.Run("ConcurrentCreates", func(t *testing.T) { testConcurrentCreates(t, open(t)) })
}

func testUnicodeAddresses(t *testing.T, d credentials.Accounts) {
	// One address however it is written in Unicode: é as one code point
	// (NFC) or as e and a combining accent (NFD); full-width letters.
	// A capital J with a combining caron has no composed form, but its
	// small letter has one (ǰ): lower-casing must not leave it apart.
	for first, others := range map[string][]string{
		"jos\u00e9@example.com": {"jose\u0301@example.com", "JOSE\u0301@example.com", "\uff4aos\u00e9@example.com"},
		"\u01f0oe@example.com":  {"J\u030coe@example.com", "j\u030coe@example.com"},
		"J\u030cim@example.com": {"\u01f0im@example.com", "j\u030cim@example.com"},
	} {
		a := NewAccount(first)
		if err := d.CreateAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
		for _, other := range others {
			if err := d.CreateAccount(ctx, NewAccount(other)); !errors.Is(err, credentials.ErrExists) {
				t.Errorf("%+q beside %+q: %v, want ErrExists", other, a.Email, err)
			}
			if got, err := d.AccountByEmail(ctx, other); err != nil || got.ID != a.ID {
				t.Errorf("AccountByEmail(%+q) = %+v, %v; want %+q's account", other, got, err, a.Email)
			}
		}
	}
}

func testAccounts(t *testing.T, d credentials.Accounts) {
	u := NewAccount("Alice@Example.com")
	if err := d.CreateAccount(ctx, u); err != nil {
		t.Fatal(err)
	}
	if u.Version != 1 || u.Created.IsZero() {
		t.Errorf("CreateAccount set version %d, created %v", u.Version, u.Created)
	}
	if err := d.CreateAccount(ctx, NewAccount(" alice@example.COM ")); !errors.Is(err, credentials.ErrExists) {
		t.Errorf("same address in another case: %v, want ErrExists", err)
	}
	got, err := d.AccountByEmail(ctx, "ALICE@example.com")
	if err != nil || got.ID != u.ID || got.Email != "Alice@Example.com" || got.PasswordHash != u.PasswordHash || !got.Created.Equal(u.Created) {
		t.Fatalf("AccountByEmail = %+v, %v; want %+v", got, err, u)
	}
	if _, err := d.Account(ctx, "nobody"); !errors.Is(err, security.ErrNotFound) {
		t.Errorf("Account(nobody) = %v, want ErrNotFound", err)
	}
	created, err := d.EnsureAccount(ctx, &credentials.Account{ID: u.ID, Email: "other@example.com", Role: "admin", PasswordHash: "x"})
	if err != nil || created {
		t.Errorf("EnsureAccount of a taken id = %v, %v; want false", created, err)
	}
	created, err = d.EnsureAccount(ctx, NewAccount("bob@example.com"))
	if err != nil || !created {
		t.Errorf("EnsureAccount of a new account = %v, %v; want true", created, err)
	}
	all, err := d.ListAccounts(ctx, "", 10)
	if err != nil || len(all) != 2 || all[0].Email != "Alice@Example.com" || all[1].Email != "bob@example.com" {
		t.Errorf("ListAccounts = %+v, %v", all, err)
	}
	for _, limit := range []int{0, -1} {
		if page, err := d.ListAccounts(ctx, "", limit); err == nil {
			t.Errorf("ListAccounts(limit %d) = %d accounts, want an error", limit, len(page))
		}
	}
	// Pages: limit bounds one, and the next starts after the last
	// address of the one before, given in any case.
	for _, c := range []struct {
		after string
		limit int
		want  []string
	}{
		{"", 1, []string{"Alice@Example.com"}},
		{"Alice@Example.com", 1, []string{"bob@example.com"}},
		{" ALICE@example.com", 5, []string{"bob@example.com"}},
		{"bob@example.com", 5, nil},
		{"a", 5, []string{"Alice@Example.com", "bob@example.com"}},
		// Bytes no address holds (PostgreSQL cannot compare text holding
		// them, and answered 500): paged from where the text falls.
		{"\x00", 5, []string{"Alice@Example.com", "bob@example.com"}},
		{"alice@example.com\x00x", 5, []string{"bob@example.com"}},
		{"b\xff", 5, nil},
	} {
		page, err := d.ListAccounts(ctx, c.after, c.limit)
		var got []string
		for _, a := range page {
			got = append(got, a.Email)
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("ListAccounts(after %q, limit %d) = %q, %v; want %q", c.after, c.limit, got, err, c.want)
		}
	}

	var published []credentials.Account
	after, err := d.UpdateAccount(ctx, u.ID, func(a *credentials.Account) error { a.Role, a.PasswordHash = "moderator", "$2a$10$changed"; return nil },
		func(a *credentials.Account) error { published = append(published, *a); return nil })
	if err != nil || after.Version != 2 || after.Role != "moderator" || len(published) != 1 || published[0].Version != 2 {
		t.Fatalf("UpdateAccount = %+v, %v, published %+v", after, err, published)
	}
	// Every field the change edits is written: a password hash too (a
	// login upgrades an old one this way, over the hash it checked).
	if got, _ := d.Account(ctx, u.ID); got.Role != "moderator" || got.PasswordHash != "$2a$10$changed" || got.Version != 2 {
		t.Errorf("after UpdateAccount: role %q, hash %q, version %d; want moderator, the new hash, 2", got.Role, got.PasswordHash, got.Version)
	}
	// A publish that fails leaves the database as it was.
	_, err = d.UpdateAccount(ctx, u.ID, func(a *credentials.Account) error { a.Disabled = true; return nil },
		func(*credentials.Account) error { return errors.New("store down") })
	if err == nil || err.Error() != "store down" {
		t.Fatalf("UpdateAccount with a failing publish = %v", err)
	}
	if got, _ := d.Account(ctx, u.ID); got.Disabled || got.Version != 2 {
		t.Errorf("after a failed publish: %+v, want version 2, enabled", got)
	}
	// A change that fails writes nothing, publishes nothing, and its error
	// is returned: a password rehash over a hash changed meanwhile relies
	// on it.
	errChanged := errors.New("changed meanwhile")
	_, err = d.UpdateAccount(ctx, u.ID, func(a *credentials.Account) error { a.Role = "admin"; return errChanged },
		func(*credentials.Account) error { t.Error("published after a failed change"); return nil })
	if !errors.Is(err, errChanged) {
		t.Errorf("UpdateAccount with a failing change = %v, want its error", err)
	}
	// An address, an id, a creation time are fixed: refused, not written
	// (or dropped while the change is said to be done).
	for name, edit := range map[string]func(*credentials.Account){
		"email":   func(a *credentials.Account) { a.Email = "mallory@example.com" },
		"id":      func(a *credentials.Account) { a.ID = "other" },
		"created": func(a *credentials.Account) { a.Created = a.Created.Add(-time.Hour) },
	} {
		_, err = d.UpdateAccount(ctx, u.ID, func(a *credentials.Account) error { edit(a); return nil },
			func(*credentials.Account) error { t.Errorf("published a change of %s", name); return nil })
		if !errors.Is(err, credentials.ErrFixed) {
			t.Errorf("UpdateAccount changing the %s = %v, want ErrFixed", name, err)
		}
	}
	if got, _ := d.Account(ctx, u.ID); got.Role != "moderator" || got.Email != "Alice@Example.com" || got.Version != 2 {
		t.Errorf("after refused changes: %+v, want version 2, as it was", got)
	}
	// Disabled is written: a store that dropped it would let a disabled
	// account log in again once the state it published expired.
	if _, err := d.UpdateAccount(ctx, u.ID, func(a *credentials.Account) error { a.Disabled = true; return nil },
		func(*credentials.Account) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.Account(ctx, u.ID); !got.Disabled || got.Version != 3 {
		t.Errorf("after disabling: disabled %v, version %d; want true, 3", got.Disabled, got.Version)
	}
	if _, err := d.UpdateAccount(ctx, "nobody", func(*credentials.Account) error { return nil }, func(*credentials.Account) error { return nil }); !errors.Is(err, security.ErrNotFound) {
		t.Errorf("UpdateAccount(nobody) = %v, want ErrNotFound", err)
	}
}

// Concurrent updates of one account serialise: every one bumps the version
// once, and each publishes the version it commits.
func testConcurrentUpdates(t *testing.T, d credentials.Accounts) {
	u := NewAccount("alice@example.com")
	if err := d.CreateAccount(ctx, u); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := d.UpdateAccount(ctx, u.ID, func(a *credentials.Account) error { a.NotBefore = a.Version + 1; return nil },
				func(a *credentials.Account) error { mu.Lock(); defer mu.Unlock(); seen[a.Version] = true; return nil })
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, _ := d.Account(ctx, u.ID)
	if got.Version != 11 || got.NotBefore != 11 || len(seen) != 10 {
		t.Errorf("after 10 updates: version %d, not before %d, %d versions published; want 11, 11, 10", got.Version, got.NotBefore, len(seen))
	}
}

// Of 20 concurrent registrations of one address exactly one succeeds.
func testConcurrentCreates(t *testing.T, d credentials.Accounts) {
	var created, exists atomic.Int64
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch err := d.CreateAccount(ctx, NewAccount(fmt.Sprintf("%sCarol@example.com", strings.Repeat(" ", i%3)))); {
			case err == nil:
				created.Add(1)
			case errors.Is(err, credentials.ErrExists):
				exists.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if created.Load() != 1 || exists.Load() != 19 {
		t.Errorf("created %d, exists %d; want 1 and 19", created.Load(), exists.Load())
	}
}

// RunKeys checks API-key records: creation under a cap, lookups, listing
// (live, newest first), touches, revocation of one and of all. open
// returns records of one owner, subject, with no key yet, for each
// subtest.
func RunKeys(t *testing.T, open func(t *testing.T) (records security.KeyRecords, subject string)) {
	t.Run("Keys", func(t *testing.T) {
		d, subject := open(t)
		now := time.Now().UTC().Truncate(time.Microsecond)
		key := func(id string, created time.Time, ttl time.Duration) *security.APIKey {
			k := &security.APIKey{ID: id, Subject: subject, Name: "ci " + id, Prefix: "sg_" + id, Scopes: []string{"posts:read", "posts:write"},
				SecretHash: []byte{0, 1, 2, 0xfe, 0xff}, AccountVersion: 3, Created: created, Expires: created.Add(ttl)}
			if err := d.CreateAPIKey(ctx, k, 0); err != nil {
				t.Fatal(err)
			}
			return k
		}
		k1 := key("k1", now.Add(-time.Minute), time.Hour)
		key("k2", now, time.Hour)
		key("gone", now.Add(-2*time.Hour), time.Hour) // expired
		got, err := d.APIKey(ctx, "k1")
		if err != nil || got.Subject != subject || got.Name != "ci k1" || got.Prefix != "sg_k1" || strings.Join(got.Scopes, " ") != "posts:read posts:write" ||
			string(got.SecretHash) != string(k1.SecretHash) || got.AccountVersion != 3 || !got.Created.Equal(k1.Created) || !got.Expires.Equal(k1.Expires) ||
			!got.LastUsed.IsZero() || !got.Revoked.IsZero() {
			t.Fatalf("APIKey = %+v, %v; want %+v", got, err, k1)
		}
		ids := func() string {
			t.Helper()
			ks, err := d.APIKeys(ctx, subject)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, k := range ks {
				out = append(out, k.ID)
			}
			return strings.Join(out, ",")
		}
		if got := ids(); got != "k2,k1" {
			t.Errorf("APIKeys = %s, want k2,k1 (live, newest first)", got)
		}
		if err := d.CreateAPIKey(ctx, &security.APIKey{ID: "k3", Subject: subject, Name: "x", Prefix: "sg_k3", SecretHash: []byte{1},
			Created: now, Expires: now.Add(time.Hour)}, 2); !errors.Is(err, security.ErrTooMany) {
			t.Errorf("a third live key under a cap of 2: %v, want ErrTooMany", err)
		}
		used := now.Add(time.Second)
		if err := d.TouchAPIKey(ctx, "k1", used); err != nil {
			t.Fatal(err)
		}
		_ = d.TouchAPIKey(ctx, "k1", used.Add(-time.Hour)) // never moves back
		if got, _ := d.APIKey(ctx, "k1"); !got.LastUsed.Equal(used) {
			t.Errorf("LastUsed = %v, want %v", got.LastUsed, used)
		}
		if err := d.RevokeAPIKey(ctx, "someone-else", "k1"); !errors.Is(err, security.ErrNotFound) {
			t.Errorf("RevokeAPIKey by another subject = %v, want ErrNotFound", err)
		}
		if err := d.RevokeAPIKey(ctx, subject, "k1"); err != nil {
			t.Fatal(err)
		}
		if err := d.RevokeAPIKey(ctx, subject, "k1"); !errors.Is(err, security.ErrNotFound) {
			t.Errorf("RevokeAPIKey twice = %v, want ErrNotFound", err)
		}
		if got, _ := d.APIKey(ctx, "k1"); got.Revoked.IsZero() {
			t.Errorf("a revoked key has no revocation time")
		}
		if got := ids(); got != "k2" {
			t.Errorf("APIKeys after a revocation = %s, want k2", got)
		}
		if err := d.RevokeAPIKeys(ctx, subject); err != nil {
			t.Fatal(err)
		}
		if got := ids(); got != "" {
			t.Errorf("APIKeys after RevokeAPIKeys = %s, want none", got)
		}
		if _, err := d.APIKey(ctx, "nope"); !errors.Is(err, security.ErrNotFound) {
			t.Errorf("APIKey(nope) = %v, want ErrNotFound", err)
		}
	})
}
