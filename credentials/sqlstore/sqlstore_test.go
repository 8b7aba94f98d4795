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
