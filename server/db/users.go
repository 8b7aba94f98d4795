package db

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// User is an account.
type User struct {
	ID           string
	Email        string
	Role         string
	PasswordHash string
	Disabled     bool
	// Version grows with every change of Role, Disabled or NotBefore.
	Version int64
	// NotBefore: credentials minted while Version was lower are dead.
	NotBefore int64
	Created   time.Time
	Updated   time.Time
}

// EmailKey is the form of an address that must be unique: trimmed and
// lower-cased.
func EmailKey(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

const userColumns = `id, email, role, password_hash, disabled, version, not_before, created_at, updated_at`

func scanUser(row interface{ Scan(...any) error }) (*User, error) {
	var u User
	var created, updated int64
	if err := row.Scan(&u.ID, &u.Email, &u.Role, &u.PasswordHash, &u.Disabled, &u.Version, &u.NotBefore, &created, &updated); err != nil {
		return nil, err
	}
	u.Created, u.Updated = fromUsec(created), fromUsec(updated)
	return &u, nil
}

// CreateUser inserts u, setting Version, Created and Updated (and ID when
// empty). An address taken already, in any case, gives ErrExists: with
// concurrent registrations of one address exactly one succeeds.
func (d *DB) CreateUser(ctx context.Context, u *User) error {
	return d.insertUser(ctx, u, false)
}

// EnsureUser inserts u unless an account with its id or address exists,
// and reports whether it did: seeding is idempotent, and instances that
// seed at once agree.
func (d *DB) EnsureUser(ctx context.Context, u *User) (bool, error) {
	err := d.insertUser(ctx, u, true)
	if err == ErrExists {
		return false, nil
	}
	return err == nil, err
}

func (d *DB) insertUser(ctx context.Context, u *User, ignoreConflict bool) error {
	if u.ID == "" {
		return fmt.Errorf("CreateUser: the id is empty")
	}
	now := d.now().UTC().Truncate(time.Microsecond)
	u.Created, u.Updated, u.Version = now, now, 1
	query := `INSERT INTO users (` + userColumns + `, email_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	if ignoreConflict {
		query += ` ON CONFLICT DO NOTHING`
	}
	res, err := d.exec(ctx, query, u.ID, u.Email, u.Role, u.PasswordHash, u.Disabled, u.Version, u.NotBefore, usec(now), usec(now), EmailKey(u.Email))
	if err != nil {
		return err
	}
	if ignoreConflict {
		if n, err := res.RowsAffected(); err == nil && n == 0 {
			return ErrExists
		}
	}
	return nil
}

// User returns the account id, or ErrNotFound.
func (d *DB) User(ctx context.Context, id string) (*User, error) {
	return d.userWhere(ctx, `id = ?`, id)
}

// UserByEmail returns the account of an address, whatever its case.
func (d *DB) UserByEmail(ctx context.Context, email string) (*User, error) {
	return d.userWhere(ctx, `email_key = ?`, EmailKey(email))
}

func (d *DB) userWhere(ctx context.Context, where string, arg any) (*User, error) {
	ctx, cancel := d.ctx(ctx)
	defer cancel()
	u, err := scanUser(d.queryRow(ctx, `SELECT `+userColumns+` FROM users WHERE `+where, arg))
	return u, d.fail(err)
}

// Users lists every account by address.
func (d *DB) Users(ctx context.Context) ([]User, error) {
	return queryAll(ctx, d, scanUser, `SELECT `+userColumns+` FROM users ORDER BY email_key`)
}

// UpdateUser changes account id in one transaction that holds the row:
// change edits it (an error aborts), the version is bumped, the row is
// written, then publish runs before the commit. publish mirrors the new
// state into the shared store every instance checks credentials against;
// when it fails nothing is committed, so the database never holds a state
// the instances do not enforce. A commit that fails after publish leaves
// the store stricter than the database, never looser, for a change that
// narrows (disable, logout everywhere); the caller gets the error and
// retries.
func (d *DB) UpdateUser(ctx context.Context, id string, change func(*User) error, publish func(*User) error) (*User, error) {
	ctx, cancel := d.ctx(ctx)
	defer cancel()
	tx, err := d.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, d.fail(err)
	}
	defer tx.Rollback()
	query := `SELECT ` + userColumns + ` FROM users WHERE id = ?`
	if d.src.Kind == Postgres {
		query += ` FOR UPDATE`
	}
	u, err := scanUser(tx.QueryRowContext(ctx, d.q(query), id))
	if err != nil {
		return nil, d.fail(err)
	}
	if err := change(u); err != nil {
		return nil, err
	}
	u.Version++
	u.Updated = d.now().UTC().Truncate(time.Microsecond)
	_, err = tx.ExecContext(ctx, d.q(`UPDATE users SET role = ?, disabled = ?, not_before = ?, version = ?, updated_at = ? WHERE id = ?`),
		u.Role, u.Disabled, u.NotBefore, u.Version, usec(u.Updated), u.ID)
	if err != nil {
		return nil, d.fail(err)
	}
	if err := publish(u); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, d.fail(err)
	}
	return u, nil
}

// SetPassword replaces the password hash of account id.
func (d *DB) SetPassword(ctx context.Context, id, hash string) error {
	return affected(d.exec(ctx, `UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?`, hash, usec(d.now()), id))
}
