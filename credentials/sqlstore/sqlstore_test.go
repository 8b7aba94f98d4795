package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/text/unicode/norm"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/credentials/credentialstest"
	"github.com/specguard/specguard/credentials/sqlstore"
	"github.com/specguard/specguard/internal/pgtest"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/sqldb"
)

// open opens a fresh database of kind, migrated, closed when the test ends.
func open(t *testing.T, kind sqldb.Kind) *sqldb.DB {
	t.Helper()
	src := sqldb.Source{Kind: kind, DSN: filepath.Join(t.TempDir(), "specguard.db")}
	if kind == sqldb.Postgres {
		src.DSN = pgtest.New(t)
	}
	d, err := sqldb.Open(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if _, _, err := d.Migrate(context.Background(), sqlstore.Migrations, nil); err != nil {
		t.Fatal(err)
	}
	return d
}

// keyedAs returns a function that makes an account keyed as key makes
// keys (as an earlier version did), and migrateFrom sets the database
// back to version from and migrates it again.
func keyedAs(t *testing.T, d *sqldb.DB, s *sqlstore.Store, key func(string) string) func(email string) *credentials.Account {
	return func(email string) *credentials.Account {
		t.Helper()
		a := credentialstest.NewAccount(email)
		if err := s.CreateAccount(context.Background(), a); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Exec(context.Background(), `UPDATE users SET email_key = ? WHERE id = ?`, key(email), a.ID); err != nil {
			t.Fatal(err)
		}
		return a
	}
}

func migrateFrom(t *testing.T, d *sqldb.DB, from int64) {
	t.Helper()
	ctx := context.Background()
	if _, err := d.Exec(ctx, `DELETE FROM specguard_credentials_version WHERE version_id > ?`, from); err != nil {
		t.Fatal(err)
	}
	if got, to, err := d.Migrate(ctx, sqlstore.Migrations, nil); err != nil || got != from || to != latest() {
		t.Fatalf("Migrate = %d, %d, %v; want %d to %d", got, to, err, from, latest())
	}
}

func TestStore(t *testing.T) {
	for _, kind := range []sqldb.Kind{sqldb.SQLite, sqldb.Postgres} {
		t.Run(string(kind), func(t *testing.T) {
			credentialstest.RunAccounts(t, func(t *testing.T) credentials.Accounts { return sqlstore.New(open(t, kind)) })
			credentialstest.RunKeys(t, func(t *testing.T) (security.KeyRecords, string) {
				s := sqlstore.New(open(t, kind))
				a := credentialstest.NewAccount("owner@example.com")
				if err := s.CreateAccount(context.Background(), a); err != nil {
					t.Fatal(err)
				}
				return s, a.ID
			})
		})
	}
}

// Accounts made before email keys were Unicode-normalized, under an
// address in decomposed form, are moved to the current key by migration 2,
// so that nobody takes the address in its composed form. One whose address
// another account already holds in another form keeps its old key, and its
// own spelling still finds it.
func TestOldEmailKeysMoved(t *testing.T) {
	ctx := context.Background()
	for _, kind := range []sqldb.Kind{sqldb.SQLite, sqldb.Postgres} {
		t.Run(string(kind), func(t *testing.T) {
			d := open(t, kind)
			s := sqlstore.New(d)
			// made as they were before: keyed trimmed and lower-cased only
			old := keyedAs(t, d, s, strings.ToLower)
			jose := old("Jose\u0301@example.com")
			zoeD := old("zoe\u0301@example.com")
			zoeC := credentialstest.NewAccount("zo\u00e9@example.com") // the same address, composed: a second account then
			if err := s.CreateAccount(ctx, zoeC); err != nil {
				t.Fatal(err)
			}
			// Migrate again from version 1, as a binary before it left it.
			migrateFrom(t, d, 1)
			if err := s.CreateAccount(ctx, credentialstest.NewAccount("jos\u00e9@example.com")); !errors.Is(err, credentials.ErrExists) {
				t.Errorf("the composed form of an old account's address: %v, want ErrExists", err)
			}
			for email, want := range map[string]string{
				"Jose\u0301@example.com": jose.ID, "jos\u00e9@example.com": jose.ID,
				"zoe\u0301@example.com": zoeD.ID, "zo\u00e9@example.com": zoeC.ID,
			} {
				if got, err := s.AccountByEmail(ctx, email); err != nil || got.ID != want {
					t.Errorf("AccountByEmail(%+q) = %+v, %v; want account %s", email, got, err, want)
				}
			}
			// Paged one by one, after the old key of zoeD, the accounts
			// between it and its address's new key (zoeC's) were skipped.
			for _, email := range []string{"zof@example.com", "zoz@example.com"} {
				if err := s.CreateAccount(ctx, credentialstest.NewAccount(email)); err != nil {
					t.Fatal(err)
				}
			}
			all, err := s.ListAccounts(ctx, "", 100)
			if err != nil {
				t.Fatal(err)
			}
			var want, paged []string
			for _, a := range all {
				want = append(want, a.Email)
			}
			for after := ""; ; {
				page, err := s.ListAccounts(ctx, after, 1)
				if err != nil {
					t.Fatal(err)
				}
				if len(page) == 0 || len(paged) > len(all) {
					break
				}
				paged = append(paged, page[0].Email)
				after = page[0].Email
			}
			if !slices.Equal(paged, want) {
				t.Errorf("paged one by one: %+q; one page: %+q", paged, want)
			}
		})
	}
}

// Accounts keyed as version 2 left them (in NFKC, then lower-cased) are
// moved by migration 3 to keys in NFKC again after lower-casing, so that
// J and a combining caron and ǰ are one address. One whose new key
// another account holds keeps its key, and its own spelling still finds
// it, also where that spelling was not in NFKC (a full-width letter).
func TestEmailKeysMovedAgain(t *testing.T) {
	ctx := context.Background()
	for _, kind := range []sqldb.Kind{sqldb.SQLite, sqldb.Postgres} {
		t.Run(string(kind), func(t *testing.T) {
			d := open(t, kind)
			s := sqlstore.New(d)
			// made as they were under version 2
			made := keyedAs(t, d, s, func(email string) string { return strings.ToLower(norm.NFKC.String(email)) })
			joe := made("J\u030coe@example.com")
			jimD := made("J\u030cim@example.com")
			jimC := made("\u01f0im@example.com") // the same address, composed: a second account then
			jaxW := made("\uff2a\u030cax@example.com")
			jaxC := made("\u01f0ax@example.com")
			// A database at version 2, migrated from there.
			migrateFrom(t, d, 2)
			if err := s.CreateAccount(ctx, credentialstest.NewAccount("\u01f0oe@example.com")); !errors.Is(err, credentials.ErrExists) {
				t.Errorf("the composed form of a moved account's address: %v, want ErrExists", err)
			}
			for email, want := range map[string]string{
				"J\u030coe@example.com": joe.ID, "\u01f0oe@example.com": joe.ID,
				"J\u030cim@example.com": jimD.ID, "\u01f0im@example.com": jimC.ID,
				"\uff2a\u030cax@example.com": jaxW.ID, "\u01f0ax@example.com": jaxC.ID,
			} {
				if got, err := s.AccountByEmail(ctx, email); err != nil || got.ID != want {
					t.Errorf("AccountByEmail(%+q) = %+v, %v; want account %s", email, got, err, want)
				}
			}
			if _, err := s.AccountByEmail(ctx, "ann\x00@example.com"); !errors.Is(err, security.ErrNotFound) {
				t.Errorf("AccountByEmail with a NUL = %v, want ErrNotFound", err)
			}
		})
	}
}

// Accounts keyed as versions 3 and 4 left them (NFKC, lower-cased, NFKC)
// are moved by migration 5 to keys whose case is folded, so that οδος and
// ΟΔΟΣ (lower-cased: οδοσ) are one address, as are о and the Cyrillic
// narrow ᲂ. One whose new key another account holds keeps its key, and
// its own spelling still finds it.
func TestEmailKeysFolded(t *testing.T) {
	ctx := context.Background()
	for _, kind := range []sqldb.Kind{sqldb.SQLite, sqldb.Postgres} {
		t.Run(string(kind), func(t *testing.T) {
			d := open(t, kind)
			s := sqlstore.New(d)
			// made as they were under version 4
			made := keyedAs(t, d, s, func(email string) string { return norm.NFKC.String(strings.ToLower(norm.NFKC.String(email))) })
			odos := made("\u03bf\u03b4\u03bf\u03c2@example.com") // οδος, final sigma
			ivanN := made("ivan.petr\u1c82v@example.com")        // narrow o
			ivanO := made("ivan.petr\u043ev@example.com")        // о: the same address, a second account then
			migrateFrom(t, d, 4)
			if err := s.CreateAccount(ctx, credentialstest.NewAccount("\u039f\u0394\u039f\u03a3@example.com")); !errors.Is(err, credentials.ErrExists) {
				t.Errorf("a moved account's address in capitals: %v, want ErrExists", err)
			}
			for email, want := range map[string]string{
				"\u03bf\u03b4\u03bf\u03c2@example.com": odos.ID, "\u039f\u0394\u039f\u03a3@example.com": odos.ID,
				"ivan.petr\u1c82v@example.com": ivanN.ID, "ivan.petr\u043ev@example.com": ivanO.ID,
				"IVAN.PETR\u041eV@example.com": ivanO.ID,
			} {
				if got, err := s.AccountByEmail(ctx, email); err != nil || got.ID != want {
					t.Errorf("AccountByEmail(%+q) = %+v, %v; want account %s", email, got, err, want)
				}
			}
		})
	}
}

// Accounts are listed in the order of their keys' bytes on both
// databases, as in memory, whole and page by page: also on a PostgreSQL
// database whose locale orders text otherwise (é beside e, _ ignored).
func TestListOrderIsBytewise(t *testing.T) {
	ctx := context.Background()
	emails := []string{"zoe@example.com", "\u00e9lise@example.com", "a1@example.com", "a_b@example.com", "B@example.com"}
	var want []string
	for _, e := range emails {
		want = append(want, credentials.EmailKey(e))
	}
	slices.Sort(want)
	stores := map[string]credentials.Accounts{"memory": credentials.NewMemoryAccounts(nil), "sqlite": sqlstore.New(open(t, sqldb.SQLite))}
	icu, err := sqldb.Open(ctx, sqldb.Source{Kind: sqldb.Postgres, DSN: pgtest.NewIn(t, "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { icu.Close() })
	if _, _, err := icu.Migrate(ctx, sqlstore.Migrations, nil); err != nil {
		t.Fatal(err)
	}
	stores["postgres en-US"] = sqlstore.New(icu)
	for name, s := range stores {
		for _, e := range emails {
			if err := s.CreateAccount(ctx, credentialstest.NewAccount(e)); err != nil {
				t.Fatal(err)
			}
		}
		list, err := s.ListAccounts(ctx, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, a := range list {
			got = append(got, credentials.EmailKey(a.Email))
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: ListAccounts in the order %q, want %q", name, got, want)
		}
		// Page by page, each after the last address of the one before,
		// the same order: the page's WHERE compares bytes as its ORDER BY
		// does (by the locale, é was before zoe and after it).
		got, after := nil, ""
		for range len(emails) + 1 {
			page, err := s.ListAccounts(ctx, after, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			for _, a := range page {
				got = append(got, credentials.EmailKey(a.Email))
			}
			after = page[len(page)-1].Email
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: ListAccounts page by page in the order %q, want %q", name, got, want)
		}
	}
}

// The cap on an account's API keys (the account's row locked, then a
// count, then an insert) held only at READ COMMITTED: with a database
// whose default isolation is REPEATABLE READ (an operator's ALTER DATABASE
// ... SET default_transaction_isolation, or the URL) the count could not
// see the other transactions' inserts and ten concurrent creations made
// eight keys under a cap of three.
func TestKeyCapWhateverTheDefaultIsolation(t *testing.T) {
	for _, isolation := range []string{"repeatable%20read", "serializable"} {
		t.Run(isolation, func(t *testing.T) {
			ctx := context.Background()
			d, err := sqldb.Open(ctx, sqldb.Source{Kind: sqldb.Postgres, DSN: pgtest.New(t) + "&default_transaction_isolation=" + isolation})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if _, _, err := d.Migrate(ctx, sqlstore.Migrations, nil); err != nil {
				t.Fatal(err)
			}
			s := sqlstore.New(d)
			a := credentialstest.NewAccount("owner@example.com")
			if err := s.CreateAccount(ctx, a); err != nil {
				t.Fatal(err)
			}
			const limit = 3
			errs := make([]error, 10)
			var wg sync.WaitGroup
			for i := range errs {
				wg.Go(func() {
					now := time.Now()
					errs[i] = s.CreateAPIKey(ctx, &security.APIKey{ID: fmt.Sprint("k", i), Subject: a.ID, Name: "n", Prefix: "p", SecretHash: []byte{1},
						Scopes: []string{"posts:read"}, AccountVersion: a.Version, Created: now, Expires: now.Add(time.Hour)}, limit)
				})
			}
			wg.Wait()
			created := 0
			for _, err := range errs {
				switch {
				case err == nil:
					created++
				case !errors.Is(err, security.ErrTooMany):
					t.Errorf("a concurrent creation: %v, want created or security.ErrTooMany", err)
				}
			}
			if n, err := s.CountAPIKeys(ctx, a.ID); created != limit || n != limit || err != nil {
				t.Errorf("10 concurrent creations under a cap of %d: %d created, %d live (%v)", limit, created, n, err)
			}
		})
	}
}

// latest is the credential set's last version (its Go migrations come
// after its one file).
func latest() int64 { return slices.Max(slices.Collect(maps.Keys(sqlstore.Migrations.Go))) }

// An account that kept an older key may hold one that is an older form of
// another address too: C registered ά and U+0345 before keys were
// normalised (key: its lower case) and kept it, its current key ᾴ@ being
// D's. V registers Ά and U+0345 today (key άι@), whose lower case is C's
// kept key: a login by the very address V registered found C
// (helper-191). The address as written finds its own account first.
func TestAddressAsWrittenFindsItsOwnAccount(t *testing.T) {
	ctx := context.Background()
	for _, kind := range []sqldb.Kind{sqldb.SQLite, sqldb.Postgres} {
		t.Run(string(kind), func(t *testing.T) {
			d := open(t, kind)
			s := sqlstore.New(d)
			old := keyedAs(t, d, s, strings.ToLower)
			c := old("\u03ac\u0345@x.org")
			old("\u1fb4@x.org")
			migrateFrom(t, d, 1)
			if got, err := s.AccountByEmail(ctx, "\u03ac\u0345@x.org"); err != nil || got.ID != c.ID {
				t.Fatalf("C by its own address: %+v, %v", got, err)
			}
			v := credentialstest.NewAccount("\u0386\u0345@x.org")
			if err := s.CreateAccount(ctx, v); err != nil {
				t.Fatalf("V registers: %v", err)
			}
			if got, err := s.AccountByEmail(ctx, v.Email); err != nil || got.ID != v.ID {
				t.Errorf("V by the address it registered: %+q, %v; want V's account", got.Email, err)
			}
			if got, err := s.AccountByEmail(ctx, "\u03ac\u0345@x.org"); err != nil || got.ID != c.ID {
				t.Errorf("C by its own address, V registered: %+q, %v; want C's account", got.Email, err)
			}
			// V's address in another case (X.org): one address with V's,
			// which the memory store finds V by; its lower case is C's
			// kept key, and the SQL store found C (helper-193). An older
			// form finds only an account that is this address today.
			other := "\u0386\u0345@X.org"
			if credentials.EmailKey(other) != credentials.EmailKey(v.Email) {
				t.Fatal("not one address")
			}
			if got, err := s.AccountByEmail(ctx, other); err != nil || got.ID != v.ID {
				t.Errorf("V's address written %+q: %+q, %v; want V's account", other, got.Email, err)
			}
		})
	}
}

// X registered Ά and U+0345 before version 5 (key: NFKC of its lower
// case, ᾴ@) and kept that key, Z holding its current key άι@. ᾴ@ is an
// address of its own today, not X's: the memory store finds nobody by it,
// the SQL store found X, so X's password opened logins typed as ᾴ@
// (helper-194). It finds nobody. (ᾴ@ still cannot register while X keeps
// the key: left, see the closing note.)
func TestKeptKeyIsNotAnotherAddressesKey(t *testing.T) {
	ctx := context.Background()
	v3 := func(e string) string {
		return norm.NFKC.String(strings.ToLower(norm.NFKC.String(strings.TrimSpace(e))))
	}
	for _, kind := range []sqldb.Kind{sqldb.SQLite, sqldb.Postgres} {
		t.Run(string(kind), func(t *testing.T) {
			d := open(t, kind)
			s := sqlstore.New(d)
			old := keyedAs(t, d, s, v3)
			x := old("\u0386\u0345@x.org")
			old("\u03ac\u03b9@x.org")
			migrateFrom(t, d, 3)
			y := "\u1fb4@x.org"
			if credentials.EmailKey(y) == credentials.EmailKey(x.Email) {
				t.Fatal("one address")
			}
			if got, err := s.AccountByEmail(ctx, y); !errors.Is(err, sqldb.ErrNotFound) {
				t.Errorf("AccountByEmail(%+q) = %+v, %v; want not found: X is another address today", y, got, err)
			}
			if got, err := s.AccountByEmail(ctx, x.Email); err != nil || got.ID != x.ID {
				t.Errorf("X by its own address: %+v, %v", got, err)
			}
		})
	}
}
