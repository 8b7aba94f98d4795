package service_test

import (
	"context"
	"io"
	"maps"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/specguard/specguard/credentials/sqlstore"
	"github.com/specguard/specguard/service"
	"github.com/specguard/specguard/sqldb"
)

// A binary that knows a newer credentials schema but an older app schema
// than the database's (a hotfix of an older app release, rebuilt on a newer
// specguard) refuses the database without migrating any set. It migrated
// the credentials set, then refused the app's: the fleet serving the
// database then refused it at its next start ("schema newer than this
// binary").
func TestRefusedMigrationMigratesNoSet(t *testing.T) {
	ctx := context.Background()
	app := func(files ...string) sqldb.Migrations {
		fsys := fstest.MapFS{}
		for _, f := range files {
			fsys[f] = &fstest.MapFile{Data: []byte("-- +goose Up\nCREATE TABLE t_" + f[:5] + " (x INTEGER);\n")}
		}
		return sqldb.Migrations{Name: "app", FS: fsys, Table: "app_version"}
	}
	for _, cmd := range []string{"migrate", "serve"} {
		t.Run(cmd, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "svc.db")
			// The fleet's binary: the credentials set up to 4, the app's up to 2.
			older := sqlstore.Migrations
			older.Go = maps.Clone(older.Go)
			delete(older.Go, 5)
			db, err := sqldb.Open(ctx, sqldb.Source{Kind: sqldb.SQLite, DSN: path})
			if err != nil {
				t.Fatal(err)
			}
			for _, set := range []sqldb.Migrations{older, app("00001_a.sql", "00002_b.sql")} {
				if _, _, err := db.Migrate(ctx, set, nil); err != nil {
					t.Fatal(err)
				}
			}
			db.Close()

			// The other binary: the credentials set up to 5, the app's up to 1.
			b := testApp()
			b.Migrations = []sqldb.Migrations{app("00001_a.sql")}
			env := map[string]string{"SPECGUARD_DATABASE_URL": "sqlite:" + path, "SPECGUARD_DATA_DIR": dir,
				"SPECGUARD_ADDR": "127.0.0.1:0", "SPECGUARD_ADMIN_ADDR": "off"}
			getenv := func(k string) string { return env[k] }
			if cmd == "migrate" {
				err = service.Migrate(ctx, b, nil, getenv, io.Discard, io.Discard)
			} else {
				var srv *service.Server
				if srv, err = service.Build(ctx, b, nil, getenv, io.Discard, io.Discard); err == nil {
					srv.Close()
				}
			}
			if err == nil || !strings.Contains(err.Error(), sqldb.ErrSchemaTooNew.Error()) {
				t.Fatalf("%s: %v, want the schema refused as too new", cmd, err)
			}
			db, err = sqldb.Open(ctx, sqldb.Source{Kind: sqldb.SQLite, DSN: path})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if current, _, err := db.Versions(ctx, sqlstore.Migrations); err != nil || current != 4 {
				t.Errorf("%s refused, but the credentials set is at version %d (%v), want 4 (untouched): the fleet's binary now refuses the database", cmd, current, err)
			}
			if _, _, err := db.Migrate(ctx, older, nil); err == nil || !strings.Contains(err.Error(), sqldb.ErrSchemaTooNew.Error()) {
				t.Logf("the fleet's binary on the database: %v", err)
			} else {
				t.Errorf("the fleet's binary on the database afterwards: %v", err)
			}
		})
	}
}
