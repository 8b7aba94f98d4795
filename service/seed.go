package service

// Accounts created at start: a users file's, or the demo accounts of the
// development setup; and demo accounts retired everywhere else.

import (
	"context"
	"log/slog"
	"net"
	"net/netip"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/sqldb"
)

// devSetup reports whether cfg is the development setup, the only one
// that gets the demo accounts: the embedded SQLite database and no Redis,
// so one process on one machine (a fleet shares Redis or PostgreSQL),
// listening on a loopback address (the default) and trusting no proxy, so
// that a published password is not served to the network (a proxy in
// front of a loopback address serves it to whoever reaches the proxy).
func devSetup(cfg *Config, d *Deps) bool {
	return d.DB.Kind() == sqldb.SQLite && cfg.RedisURL == "" && loopback(cfg.Addr) && len(cfg.TrustedProxies) == 0
}

// loopback reports whether the listen address addr is on a loopback
// interface only ("127.0.0.1:8080", "[::1]:8080", "localhost:8080"; not
// ":8080", which is every interface).
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// seedAccounts creates the accounts of SPECGUARD_USERS_FILE (users, read
// before anything was opened), or, in the
// development setup without one, the demo accounts (enabled again if a
// start elsewhere retired them). Anywhere else without
// a users file it creates none and says so. Outside the development setup
// without a users file, and wherever a users file is given, a demo account
// that still has its published password is retired.
func seedAccounts(ctx context.Context, app *App, d *Deps, cfg *Config, users []credentials.SeedAccount, log *slog.Logger) error {
	switch {
	case cfg.UsersFile != "":
	case devSetup(cfg, d):
		d.demo = len(app.DemoUsers) > 0
		log.Warn("no SPECGUARD_USERS_FILE: seeding the demo accounts (the development setup only: SQLite without Redis, on a loopback address, no trusted proxy); never expose them")
		if err := d.Credentials.Seed(ctx, app.DemoUsers, log); err != nil {
			return err
		}
		// A start outside the development setup (SPECGUARD_ADDR=0.0.0.0:8080
		// once) disabled them: they logged in nowhere after it.
		return d.Credentials.Restore(ctx, app.DemoUsers, log)
	default:
		log.Warn("no SPECGUARD_USERS_FILE: no accounts are seeded (the demo accounts exist only in the development setup, SQLite without Redis on a loopback address with no trusted proxy); give a users file, or register accounts with POST /auth/register")
	}
	if err := d.Credentials.Seed(ctx, users, log); err != nil {
		return err
	}
	return d.Credentials.Retire(ctx, app.DemoUsers, users, log)
}
