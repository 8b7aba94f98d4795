package server

// Accounts created at start: a users file's, or the demo accounts of the
// development setup; and demo accounts retired everywhere else.

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/server/db"
)

// devSetup reports whether cfg is the development setup, the only one
// that gets the demo accounts: the embedded SQLite database and no Redis,
// so one process on one machine (a fleet shares Redis or PostgreSQL).
func devSetup(cfg *Config, d *Deps) bool { return d.DB.Kind() == db.SQLite && cfg.RedisURL == "" }

// seedAccounts creates the accounts of SPECGUARD_USERS_FILE, or, in the
// development setup without one, the demo accounts. Anywhere else without
// a users file it creates none and says so. Outside the development setup
// without a users file, and wherever a users file is given, a demo account
// that still has its published password is retired (see retireDemo).
func seedAccounts(ctx context.Context, d *Deps, cfg *Config, table *policy.Table, log *slog.Logger) error {
	var users []SeedUser
	switch {
	case cfg.UsersFile != "":
		var err error
		if users, err = LoadUsers(cfg.UsersFile, table.Roles); err != nil {
			return err
		}
	case devSetup(cfg, d):
		log.Warn("no SPECGUARD_USERS_FILE: seeding the demo accounts (the development setup only: SQLite without Redis); never expose them")
		return seedUsers(ctx, d.Repo, DemoUsers, d.Argon2, table, log)
	default:
		log.Warn("no SPECGUARD_USERS_FILE: no accounts are seeded (the demo accounts exist only in the development setup, SQLite without Redis); give a users file, or register accounts with POST /auth/register")
	}
	if err := seedUsers(ctx, d.Repo, users, d.Argon2, table, log); err != nil {
		return err
	}
	return retireDemo(ctx, d, users, log)
}

// seedUsers creates the accounts of users that do not exist yet. An
// account that exists is left as it is: the database, not the file, is
// the truth once it holds the account.
func seedUsers(ctx context.Context, repo Repository, users []SeedUser, params Argon2, table *policy.Table, log *slog.Logger) error {
	pw, err := newPasswords(params)
	if err != nil {
		return err
	}
	for _, su := range users {
		if table.RoleScopes(su.Role) == nil {
			return fmt.Errorf("user %s: role %q is not declared in the spec's x-roles", su.Email, su.Role)
		}
		if _, err := repo.UserByEmail(ctx, su.Email); err == nil {
			continue
		} else if !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("seeding user %s: %v", su.Email, err)
		}
		hash, err := su.hash(pw)
		if err != nil {
			return err
		}
		created, err := repo.EnsureUser(ctx, &User{ID: seedID(su.Email), Email: su.Email, Role: su.Role, PasswordHash: hash})
		if err != nil {
			return fmt.Errorf("seeding user %s: %v", su.Email, err)
		}
		if created && log != nil {
			log.Info("seeded user", "email", su.Email, "role", su.Role)
		}
	}
	return nil
}

// hash is the password hash the account of su is created with.
func (su SeedUser) hash(pw *passwords) (string, error) {
	if su.Password == "" {
		return su.PasswordHash, nil
	}
	h, err := pw.encode(su.Password)
	if err != nil {
		return "", fmt.Errorf("user %s: %v", su.Email, err)
	}
	return h, nil
}

// retireDemo ends the demo accounts that still have their published
// password, in a setup that must not have them: a fleet's database seeded
// by an older specguard, or a development database now given a users
// file. Each is disabled, so every credential it holds stops working on
// every instance; one the users file names gets the file's password and
// role instead (enabled), its old credentials ended all the same, unless
// the file asks for the published password itself. A demo address whose
// password was changed is a real account and stays as it is.
func retireDemo(ctx context.Context, d *Deps, users []SeedUser, log *slog.Logger) error {
	app, err := NewApp(d)
	if err != nil {
		return err
	}
	for _, demo := range DemoUsers {
		u, err := d.Repo.UserByEmail(ctx, demo.Email)
		if errors.Is(err, ErrNotFound) {
			continue
		} else if err != nil {
			return fmt.Errorf("retiring the demo account %s: %v", demo.Email, err)
		}
		if ok, _, err := app.passwords.match(ctx, u.PasswordHash, demo.Password); err != nil {
			return fmt.Errorf("retiring the demo account %s: %v", demo.Email, err)
		} else if !ok {
			continue
		}
		i := slices.IndexFunc(users, func(su SeedUser) bool { return normEmail(su.Email) == normEmail(demo.Email) })
		if i < 0 {
			if u.Disabled {
				continue
			}
			if _, err := app.endAll(ctx, u.ID, func(u *User) { u.Disabled = true }); err != nil {
				return fmt.Errorf("disabling the demo account %s: %v", demo.Email, err)
			}
			log.Warn("disabled a demo account that still had its published password", "email", demo.Email)
			continue
		}
		su := users[i]
		if su.Password == demo.Password || su.PasswordHash != "" && app.passwords.matches(su.PasswordHash, demo.Password) {
			continue // the file asks for this very password
		}
		hash, err := su.hash(app.passwords)
		if err != nil {
			return err
		}
		if err := d.Repo.SetPassword(ctx, u.ID, hash); err != nil {
			return fmt.Errorf("setting the password of %s: %v", su.Email, err)
		}
		if _, err := app.endAll(ctx, u.ID, func(u *User) { u.Role, u.Disabled = su.Role, false }); err != nil {
			return fmt.Errorf("ending the credentials of %s: %v", su.Email, err)
		}
		log.Warn("a demo account still had its published password: it has the users file's password and role now, and its credentials are ended", "email", su.Email, "role", su.Role)
	}
	return nil
}

// seedID derives a seeded user's id from the email, so every instance
// seeded from the same file agrees on it and a token minted by one
// instance names the same user on another.
func seedID(email string) string {
	sum := sha256.Sum256([]byte("specguard seed user\x00" + normEmail(email)))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}
