package service_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/specguard/specguard/service"
)

// serve and migrate, given one command line and one environment, mean one
// database. An empty --database-url or --data-dir (a script's
// "--database-url $DB" with DB unset) was read by migrate as "use the
// variable", by serve as "replace the variable" (--database-url: the
// SQLite default; --data-dir: refused): migrate migrated one database and
// serve served another, without an error.
func TestServeAndMigrateReadAnEmptyFlagAlike(t *testing.T) {
	for _, flag := range []string{"--database-url=", "--data-dir="} {
		t.Run(flag, func(t *testing.T) {
			vol, dataDir := t.TempDir(), t.TempDir()
			env := map[string]string{"SPECGUARD_DATABASE_URL": "sqlite:" + filepath.Join(vol, "app.db"), "SPECGUARD_DATA_DIR": dataDir,
				"SPECGUARD_ADDR": "127.0.0.1:0", "SPECGUARD_ADMIN_ADDR": "off"}
			if flag == "--data-dir=" {
				delete(env, "SPECGUARD_DATABASE_URL") // the database is specguard.db in the data dir
			}
			var environ []string
			for k, v := range env {
				environ = append(environ, k+"="+v)
			}
			getenv := func(k string) string { return env[k] }
			migErr := service.Command(context.Background(), testApp(), []string{"migrate", flag}, getenv, environ, io.Discard, io.Discard)
			migrated := files(t, vol, dataDir)
			srv, serveErr := service.Build(context.Background(), testApp(), []string{flag}, getenv, io.Discard, io.Discard)
			if serveErr == nil {
				srv.Close()
			}
			if (migErr == nil) != (serveErr == nil) {
				t.Errorf("migrate %s: %v; serve %s: %v: one refuses what the other takes", flag, migErr, flag, serveErr)
			}
			if migErr == nil && serveErr == nil {
				if got := files(t, vol, dataDir); len(got) != len(migrated) {
					t.Errorf("migrate %s wrote %q, serve %s then %q: two databases", flag, migrated, flag, got)
				}
			}
		})
	}
}

func files(t *testing.T, dirs ...string) []string {
	t.Helper()
	var out []string
	for _, d := range dirs {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if filepath.Ext(e.Name()) == ".db" {
				out = append(out, filepath.Join(d, e.Name()))
			}
		}
	}
	return out
}
