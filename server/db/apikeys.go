package db

import (
	"context"
	"database/sql"
	"encoding/hex"
	"strings"
	"time"

	"github.com/specguard/specguard/security"
)

// The API keys' durable records: DB implements security.KeyRecords.
var _ security.KeyRecords = (*DB)(nil)

const keyColumns = `id, user_id, name, prefix, secret_hash, scopes, account_version, created_at, expires_at, last_used_at, revoked_at`

func scanKey(row interface{ Scan(...any) error }) (*security.APIKey, error) {
	var k security.APIKey
	var hash, scopes string
	var created, expires int64
	var used, revoked sql.NullInt64
	if err := row.Scan(&k.ID, &k.Subject, &k.Name, &k.Prefix, &hash, &scopes, &k.AccountVersion, &created, &expires, &used, &revoked); err != nil {
		return nil, err
	}
	var err error
	if k.SecretHash, err = hex.DecodeString(hash); err != nil {
		return nil, err
	}
	k.Scopes = strings.Fields(scopes)
	k.Created, k.Expires = fromUsec(created), fromUsec(expires)
	k.LastUsed, k.Revoked = nullUsec(used), nullUsec(revoked)
	return &k, nil
}

// CreateAPIKey implements security.KeyRecords: the count and the insert
// run in one transaction holding the owner's row, so concurrent creations
// never pass max.
func (d *DB) CreateAPIKey(ctx context.Context, k *security.APIKey, max int) error {
	ctx, cancel := d.ctx(ctx)
	defer cancel()
	tx, err := d.w.BeginTx(ctx, nil)
	if err != nil {
		return d.fail(err)
	}
	defer tx.Rollback()
	if max > 0 {
		lock := `SELECT id FROM users WHERE id = ?`
		if d.src.Kind == Postgres {
			lock += ` FOR UPDATE`
		}
		var id string
		if err := tx.QueryRowContext(ctx, d.q(lock), k.Subject).Scan(&id); err != nil {
			return d.fail(err)
		}
		var n int
		if err := tx.QueryRowContext(ctx, d.q(`SELECT COUNT(*) FROM api_keys WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ?`),
			k.Subject, usec(d.now())).Scan(&n); err != nil {
			return d.fail(err)
		}
		if n >= max {
			return security.ErrTooMany
		}
	}
	if _, err := tx.ExecContext(ctx, d.q(`INSERT INTO api_keys (`+keyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)`),
		k.ID, k.Subject, k.Name, k.Prefix, hex.EncodeToString(k.SecretHash), strings.Join(k.Scopes, " "),
		k.AccountVersion, usec(k.Created), usec(k.Expires)); err != nil {
		return d.fail(err)
	}
	return d.fail(tx.Commit())
}

// APIKey implements security.KeyRecords.
func (d *DB) APIKey(ctx context.Context, id string) (*security.APIKey, error) {
	ctx, cancel := d.ctx(ctx)
	defer cancel()
	k, err := scanKey(d.queryRow(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE id = ?`, id))
	return k, d.fail(err)
}

// APIKeys implements security.KeyRecords.
func (d *DB) APIKeys(ctx context.Context, subject string) ([]security.APIKey, error) {
	return queryAll(ctx, d, scanKey, `SELECT `+keyColumns+` FROM api_keys
		WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ?
		ORDER BY created_at DESC, id`, subject, usec(d.now()))
}

// CountAPIKeys counts subject's live keys.
func (d *DB) CountAPIKeys(ctx context.Context, subject string) (int, error) {
	ctx, cancel := d.ctx(ctx)
	defer cancel()
	var n int
	err := d.r.QueryRowContext(ctx, d.q(`SELECT COUNT(*) FROM api_keys WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ?`),
		subject, usec(d.now())).Scan(&n)
	return n, d.fail(err)
}

// RevokeAPIKey implements security.KeyRecords.
func (d *DB) RevokeAPIKey(ctx context.Context, subject, id string) error {
	now := usec(d.now())
	return affected(d.exec(ctx, `UPDATE api_keys SET revoked_at = ?
		WHERE id = ? AND user_id = ? AND revoked_at IS NULL AND expires_at > ?`, now, id, subject, now))
}

// RevokeAPIKeys implements security.KeyRecords.
func (d *DB) RevokeAPIKeys(ctx context.Context, subject string) error {
	_, err := d.exec(ctx, `UPDATE api_keys SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL`, usec(d.now()), subject)
	return err
}

// TouchAPIKey implements security.KeyRecords.
func (d *DB) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	_, err := d.exec(ctx, `UPDATE api_keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)`,
		usec(at), id, usec(at))
	return err
}
