package server

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/specguard/specguard/api"
	"github.com/specguard/specguard/internal/testenv"
	"github.com/specguard/specguard/policy"
)

// testDeps builds what Run serves from env, on the example spec; it is
// closed when the test ends.
func testDeps(t testing.TB, env map[string]string) *Deps {
	t.Helper()
	if env["SPECGUARD_REDIS_URL"] != "" && env["SPECGUARD_USERS_FILE"] == "" {
		env["SPECGUARD_USERS_FILE"] = testenv.DemoUsersFile(t) // no demo accounts outside development
	}
	cfg, err := LoadConfig(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	table, err := policy.Compile(SpecSource, api.Spec)
	if err != nil {
		t.Fatal(err)
	}
	d, err := buildDeps(context.Background(), cfg, table, slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}
