package sqlstore_test

import (
	"context"
	"path/filepath"
	"testing"

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

// An account made before email keys were Unicode-normalized, under an
// address in decomposed form, is kept under that form's key: it is still
// found by the address as it was written, the current key first.
func TestAccountUnderAnOldEmailKey(t *testing.T) {
	ctx := context.Background()
	for _, kind := range []sqldb.Kind{sqldb.SQLite, sqldb.Postgres} {
		t.Run(string(kind), func(t *testing.T) {
			d := open(t, kind)
			s := sqlstore.New(d)
			nfd := "Jose\u0301@example.com"
			a := credentialstest.NewAccount(nfd)
			if err := s.CreateAccount(ctx, a); err != nil {
				t.Fatal(err)
			}
			// As the key was written then: trimmed and lower-cased only.
			if _, err := d.Exec(ctx, `UPDATE users SET email_key = ? WHERE id = ?`, "jose\u0301@example.com", a.ID); err != nil {
				t.Fatal(err)
			}
			if got, err := s.AccountByEmail(ctx, nfd); err != nil || got.ID != a.ID {
				t.Errorf("AccountByEmail(%+q) = %+v, %v; want the account", nfd, got, err)
			}
			if _, err := s.AccountByEmail(ctx, "jos\u00e9@example.com"); err == nil {
				t.Errorf("the composed spelling found the old key's account: only the current key is looked up for it")
			}
			// Once made under the current key too, that one comes first.
			b := credentialstest.NewAccount("jos\u00e9@example.com")
			if err := s.CreateAccount(ctx, b); err != nil {
				t.Fatal(err)
			}
			if got, err := s.AccountByEmail(ctx, nfd); err != nil || got.ID != b.ID {
				t.Errorf("AccountByEmail(%+q) beside both = %+v, %v; want the current key's account", nfd, got, err)
			}
		})
	}
}
