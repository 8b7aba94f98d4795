package service_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/specguard/specguard/internal/keytest"
	"github.com/specguard/specguard/internal/redistest"
	"github.com/specguard/specguard/service"
)

// A single login's end (a logout, a deleted session) is kept in Redis
// alone. A Redis that snapshots (its default save settings) and restarts
// from the last snapshot brings it back, working: the start says so, with
// the settings to use, and says nothing of a Redis that keeps no copy.
func TestRedisSnapshotsWarned(t *testing.T) {
	for _, c := range []struct {
		name string
		set  []string
		warn string
	}{
		{"no copy kept", nil, ""},
		{"snapshots", []string{"save", "3600 1 300 100"}, "save 3600 1 300 100"},
		{"append-only, synced each second", []string{"appendonly", "yes", "appendfsync", "everysec"}, "appendfsync everysec"},
		{"append-only, synced at every write", []string{"appendonly", "yes", "appendfsync", "always", "save", "60 1"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			red := redistest.StartOwn(t)
			ctx := context.Background()
			rdb := red.Client(t)
			for i := 0; i < len(c.set); i += 2 {
				if err := rdb.ConfigSet(ctx, c.set[i], c.set[i+1]).Err(); err != nil {
					t.Fatal(err)
				}
			}
			env := map[string]string{"SPECGUARD_SIGNING_KEY_FILE": keytest.File(t), "SPECGUARD_DATA_DIR": t.TempDir(),
				"SPECGUARD_ADMIN_ADDR": "off", "SPECGUARD_REDIS_URL": red.URL}
			var logs bytes.Buffer
			srv, err := service.Build(ctx, testApp(), nil, func(k string) string { return env[k] }, &logs, &logs)
			if err != nil {
				t.Fatal(err)
			}
			srv.Close()
			warned := strings.Contains(logs.String(), "Redis may restart from an older copy")
			if warned != (c.warn != "") || c.warn != "" && !strings.Contains(logs.String(), c.warn) {
				t.Errorf("logs %s; want a warning naming %q: %v", logs.String(), c.warn, c.warn != "")
			}
		})
	}
}
