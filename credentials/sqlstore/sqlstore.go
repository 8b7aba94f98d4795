// Package sqlstore keeps the credential operations' durable records,
// accounts and API keys, in SQLite or PostgreSQL (package sqldb): a
// credentials.Accounts and a security.KeyRecords. Its schema is a set of
// migrations of its own (Migrations), applied before an app's (whose
// tables may refer to users).
//
// Start with sqldb.Open, apply Migrations (DB.Migrate), then New: the
// Store is both credentials.Stores' Accounts and its Keys.
package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/text/unicode/norm"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/sqldb"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations is the schema of accounts and API keys; migrate it before an
// app's own set.
var Migrations = sqldb.Migrations{Name: "credentials", FS: migrations, Dir: "migrations", Table: "specguard_credentials_version",
	Go: map[int64]func(context.Context, *sql.Tx) error{2: rekeyEmails, 3: rekeyEmails, 4: indexBytewise, 5: rekeyEmails}}

// indexBytewise (version 4) indexes users by email_key in the order of its
// bytes on PostgreSQL, the order ListAccounts pages in (COLLATE "C"): the
// unique index, in the database's collation, serves no page, and each
// would read the whole table. SQLite's own order is the bytes', which the
// unique index has already.
func indexBytewise(ctx context.Context, tx *sql.Tx) error {
	if sqldb.KindOf(ctx) != sqldb.Postgres {
		return nil
	}
	_, err := tx.ExecContext(ctx, `CREATE INDEX IF NOT EXISTS users_by_email_key_bytes ON users (email_key COLLATE "C")`)
	return err
}

// rekeyEmails (versions 2, 3 and 5) keys every account by its address as
// credentials.EmailKey does: since version 2, it normalizes Unicode (an
// account made before under an address in another form, e and a combining
// accent for é, would otherwise not stop another from taking the address
// in its composed form); since version 3, it normalizes again after
// lower-casing (J and a combining caron were one address, ǰ another);
// since version 5, it folds case rather than lower-casing (οδος and ΟΔΟΣ,
// which lower-cases to οδοσ, were two addresses). An
// account whose new key another already holds (one address made twice
// before, in two forms; the older account moves first) keeps its old key,
// under which AccountByEmail still finds it by its address as written.
func rekeyEmails(ctx context.Context, tx *sql.Tx) error {
	type row struct{ id, email, key string }
	var all []row
	rows, err := tx.QueryContext(ctx, `SELECT id, email, email_key FROM users ORDER BY created_at, id`)
	if err != nil {
		return err
	}
	defer rows.Close()
	taken := map[string]bool{}
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.email, &r.key); err != nil {
			return err
		}
		all = append(all, r)
		taken[r.key] = true
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, r := range all {
		key := credentials.EmailKey(r.email)
		if key == r.key || taken[key] {
			continue
		}
		taken[key] = true
		if _, err := tx.ExecContext(ctx, `UPDATE users SET email_key = $1 WHERE id = $2`, key, r.id); err != nil {
			return err
		}
	}
	return nil
}

// Store is accounts and API keys in one database.
type Store struct{ db *sqldb.DB }

var (
	_ credentials.Accounts = (*Store)(nil)
	_ security.KeyRecords  = (*Store)(nil)
)

// New returns the store of db, which Migrations has migrated.
func New(db *sqldb.DB) *Store { return &Store{db: db} }

// now is the database's clock, to the microsecond times are kept at.
func (s *Store) now() time.Time { return s.db.Now().UTC().Truncate(time.Microsecond) }

const accountColumns = `id, email, role, password_hash, disabled, version, not_before, created_at, updated_at`

func scanAccount(row sqldb.Scanner) (*credentials.Account, error) {
	var a credentials.Account
	var created, updated int64
	if err := row.Scan(&a.ID, &a.Email, &a.Role, &a.PasswordHash, &a.Disabled, &a.Version, &a.NotBefore, &created, &updated); err != nil {
		return nil, err
	}
	a.Created, a.Updated = sqldb.FromMicros(created), sqldb.FromMicros(updated)
	return &a, nil
}

// CreateAccount implements credentials.Accounts.
func (s *Store) CreateAccount(ctx context.Context, a *credentials.Account) error {
	return s.insert(ctx, a, false)
}

// EnsureAccount implements credentials.Accounts.
func (s *Store) EnsureAccount(ctx context.Context, a *credentials.Account) (bool, error) {
	err := s.insert(ctx, a, true)
	if errors.Is(err, credentials.ErrExists) {
		return false, nil
	}
	return err == nil, err
}

func (s *Store) insert(ctx context.Context, a *credentials.Account, ignoreConflict bool) error {
	if a.ID == "" {
		return errors.New("CreateAccount: the id is empty")
	}
	now := s.now()
	a.Created, a.Updated, a.Version = now, now, 1
	query := `INSERT INTO users (` + accountColumns + `, email_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	if ignoreConflict {
		query += ` ON CONFLICT DO NOTHING`
	}
	res, err := s.db.Exec(ctx, query, a.ID, a.Email, a.Role, a.PasswordHash, a.Disabled, a.Version, a.NotBefore,
		sqldb.Micros(now), sqldb.Micros(now), credentials.EmailKey(a.Email))
	if errors.Is(err, sqldb.ErrExists) {
		return credentials.ErrExists
	} else if err != nil {
		return err
	}
	if ignoreConflict {
		if n, err := res.RowsAffected(); err == nil && n == 0 {
			return credentials.ErrExists
		}
	}
	return nil
}

// Account implements credentials.Accounts.
func (s *Store) Account(ctx context.Context, id string) (*credentials.Account, error) {
	return sqldb.Get(ctx, s.db, scanAccount, `SELECT `+accountColumns+` FROM users WHERE id = ?`, id)
}

// AccountByEmail implements credentials.Accounts. An account made under an
// earlier form of email keys (see credentials.EmailKey) whose address
// another account holds in another form keeps its key of then (see
// rekeyEmails): trimmed and lower-cased only, before version 2; in NFKC
// then lower-cased, before version 3; in NFKC, lower-cased and in NFKC
// again, before version 5. The address written as its owner wrote it
// finds it, before the current key's account.
func (s *Store) AccountByEmail(ctx context.Context, email string) (*credentials.Account, error) {
	if strings.IndexByte(email, 0) >= 0 {
		// No address holds one: registration refuses control characters,
		// and PostgreSQL cannot even compare text holding one.
		return nil, sqldb.ErrNotFound
	}
	trimmed := strings.TrimSpace(email)
	key, v1, v2 := credentials.EmailKey(email), strings.ToLower(trimmed), strings.ToLower(norm.NFKC.String(trimmed))
	v4 := norm.NFKC.String(v2)
	if v1 == key && v2 == key && v4 == key {
		a, err := sqldb.Get(ctx, s.db, scanAccount, `SELECT `+accountColumns+` FROM users WHERE email_key = ?`, key)
		if err == nil && credentials.EmailKey(a.Email) != key {
			// An account that kept an older key of its address, which is
			// this address's key today: another address.
			return nil, sqldb.ErrNotFound
		}
		return a, err
	}
	rows, err := sqldb.List(ctx, s.db, scanKeyed, `SELECT `+accountColumns+`, email_key FROM users WHERE email_key IN (?, ?, ?, ?)`,
		key, v1, v2, v4)
	if err != nil {
		return nil, err
	}
	// The account of the address exactly as written first: an older form
	// of it may be another's kept key (ά and U+0345, registered before
	// keys were normalised, is Ά and U+0345 lower-cased, an address of
	// its own today).
	for i := range rows {
		if rows[i].Email == trimmed {
			return &rows[i].Account, nil
		}
	}
	// An older form finds only an account that kept it (one whose key is
	// not its own address's EmailKey) and is this address today (its
	// address has this one's EmailKey): one address made twice before
	// keys were normalised. Another account's current key that
	// happens to equal an older form of this address is another address
	// (Ά and U+0345 folds to άι, while ᾴ, its NFKC, is an address of its
	// own): taken first, it opened that account to this address's logins.
	for _, form := range []string{v1, v2, v4} {
		for i := range rows {
			if r := &rows[i]; form != key && r.key == form && credentials.EmailKey(r.Email) != r.key && credentials.EmailKey(r.Email) == key {
				return &r.Account, nil
			}
		}
	}
	for i := range rows {
		if rows[i].key == key && credentials.EmailKey(rows[i].Email) == key {
			return &rows[i].Account, nil
		}
	}
	return nil, sqldb.ErrNotFound
}

// keyed is an account with the key it is stored under (email_key).
type keyed struct {
	credentials.Account
	key string
}

// scanKeyed scans accountColumns and email_key.
func scanKeyed(row sqldb.Scanner) (*keyed, error) {
	var key string
	a, err := scanAccount(scanWith{row, &key})
	if err != nil {
		return nil, err
	}
	return &keyed{*a, key}, nil
}

// scanWith scans one column more, into extra.
type scanWith struct {
	sqldb.Scanner
	extra any
}

func (s scanWith) Scan(dest ...any) error { return s.Scanner.Scan(append(dest, s.extra)...) }

// ListAccounts implements credentials.Accounts.
func (s *Store) ListAccounts(ctx context.Context, after string, limit int) ([]credentials.Account, error) {
	if limit < 1 {
		// SQLite reads LIMIT -1 as none, PostgreSQL refuses it.
		return nil, fmt.Errorf("ListAccounts: limit %d, want at least 1", limit)
	}
	// No address holds a NUL or bytes that are not UTF-8 (registration
	// refuses them), and PostgreSQL cannot compare text holding them: the
	// page starts where the text before them falls.
	if i := strings.IndexByte(after, 0); i >= 0 {
		after = after[:i]
	}
	after = strings.ToValidUTF8(after, "\uFFFD")
	if after == "" {
		return sqldb.List(ctx, s.db, scanAccount, pageQuery(s.db.Bytewise(), false), limit)
	}
	key := credentials.EmailKey(after)
	return sqldb.List(ctx, s.db, scanAccount, pageQuery(s.db.Bytewise(), true), key, after, after, key, limit)
}

// pageQuery is ListAccounts' query, in the order of the bytes of email_key
// (collate: sqldb.DB.Bytewise), from the first account or after the key
// of the account of an address. That is the address's EmailKey (the
// first two arguments: the key, the address), unless an account kept an
// older key (see rekeyEmails) and has the address (the third): paging
// from EmailKey of its address would skip every account in between. An
// address no account has pages from its EmailKey (the fourth).
func pageQuery(collate string, after bool) string {
	where := ""
	if after {
		where = ` WHERE email_key` + collate + ` > COALESCE(
			(SELECT email_key FROM users WHERE email_key = ? AND email = ?),
			(SELECT min(email_key` + collate + `) FROM users WHERE email = ?),
			?)`
	}
	return `SELECT ` + accountColumns + ` FROM users` + where + ` ORDER BY email_key` + collate + ` LIMIT ?`
}

// UpdateAccount implements credentials.Accounts: the row is held (FOR
// UPDATE on PostgreSQL; SQLite's write transaction holds the database)
// from the read to the commit, and publish runs before the commit. A
// commit that fails after publish leaves the store stricter than the
// database, never looser, for a change that narrows; the caller gets the
// error and puts the store back.
func (s *Store) UpdateAccount(ctx context.Context, id string, change func(*credentials.Account) error, publish func(*credentials.Account) error) (*credentials.Account, error) {
	var out *credentials.Account
	err := s.db.Tx(ctx, func(tx *sqldb.Tx) error {
		a, err := scanAccount(tx.QueryRow(`SELECT `+accountColumns+` FROM users WHERE id = ?`+s.db.ForUpdate(), id))
		if err != nil {
			return s.db.Fail(err)
		}
		before := *a
		if err := change(a); err != nil {
			return err
		}
		if err := credentials.CheckFixed(&before, a); err != nil {
			return err
		}
		a.Version++
		a.Updated = s.now()
		if _, err := tx.Exec(`UPDATE users SET role = ?, disabled = ?, not_before = ?, password_hash = ?, version = ?, updated_at = ? WHERE id = ?`,
			a.Role, a.Disabled, a.NotBefore, a.PasswordHash, a.Version, sqldb.Micros(a.Updated), a.ID); err != nil {
			return err
		}
		if err := publish(a); err != nil {
			return err
		}
		out = a
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

const keyColumns = `id, user_id, name, prefix, secret_hash, scopes, account_version, created_at, expires_at, last_used_at, revoked_at`

func scanKey(row sqldb.Scanner) (*security.APIKey, error) {
	var k security.APIKey
	var hash, scopes string
	var created, expires int64
	var used, revoked sql.NullInt64
	if err := row.Scan(&k.ID, &k.Subject, &k.Name, &k.Prefix, &hash, &scopes, &k.AccountVersion, &created, &expires, &used, &revoked); err != nil {
		return nil, err
	}
	var err error
	if k.SecretHash, err = hex.DecodeString(hash); err != nil {
		return nil, fmt.Errorf("api_keys %s: secret_hash is not hex: %v", k.ID, err)
	}
	k.Scopes = strings.Fields(scopes)
	k.Created, k.Expires = sqldb.FromMicros(created), sqldb.FromMicros(expires)
	k.LastUsed, k.Revoked = sqldb.NullMicros(used), sqldb.NullMicros(revoked)
	return &k, nil
}

// CreateAPIKey implements security.KeyRecords: the count and the insert
// run in one transaction holding the owner's row, so concurrent creations
// never pass max.
func (s *Store) CreateAPIKey(ctx context.Context, k *security.APIKey, max int) error {
	return s.db.Tx(ctx, func(tx *sqldb.Tx) error {
		if max > 0 {
			var id string
			if err := tx.QueryRow(`SELECT id FROM users WHERE id = ?`+s.db.ForUpdate(), k.Subject).Scan(&id); err != nil {
				return s.db.Fail(err)
			}
			var n int
			if err := tx.QueryRow(`SELECT COUNT(*) FROM api_keys WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ?`,
				k.Subject, sqldb.Micros(s.db.Now())).Scan(&n); err != nil {
				return s.db.Fail(err)
			}
			if n >= max {
				return security.ErrTooMany
			}
		}
		_, err := tx.Exec(`INSERT INTO api_keys (`+keyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)`,
			k.ID, k.Subject, k.Name, k.Prefix, hex.EncodeToString(k.SecretHash), strings.Join(k.Scopes, " "),
			k.AccountVersion, sqldb.Micros(k.Created), sqldb.Micros(k.Expires))
		return err
	})
}

// APIKey implements security.KeyRecords.
func (s *Store) APIKey(ctx context.Context, id string) (*security.APIKey, error) {
	return sqldb.Get(ctx, s.db, scanKey, `SELECT `+keyColumns+` FROM api_keys WHERE id = ?`, id)
}

// APIKeys implements security.KeyRecords.
func (s *Store) APIKeys(ctx context.Context, subject string) ([]security.APIKey, error) {
	return sqldb.List(ctx, s.db, scanKey, `SELECT `+keyColumns+` FROM api_keys
		WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ?
		ORDER BY created_at DESC, id`+s.db.Bytewise(), subject, sqldb.Micros(s.db.Now()))
}

// CountAPIKeys counts subject's live keys.
func (s *Store) CountAPIKeys(ctx context.Context, subject string) (int, error) {
	n, err := s.db.Count(ctx, `SELECT COUNT(*) FROM api_keys WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ?`,
		subject, sqldb.Micros(s.db.Now()))
	return int(n), err
}

// RevokeAPIKey implements security.KeyRecords.
func (s *Store) RevokeAPIKey(ctx context.Context, subject, id string) error {
	now := sqldb.Micros(s.db.Now())
	return sqldb.Affected(s.db.Exec(ctx, `UPDATE api_keys SET revoked_at = ?
		WHERE id = ? AND user_id = ? AND revoked_at IS NULL AND expires_at > ?`, now, id, subject, now))
}

// RevokeAPIKeys implements security.KeyRecords.
func (s *Store) RevokeAPIKeys(ctx context.Context, subject string) error {
	_, err := s.db.Exec(ctx, `UPDATE api_keys SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL`, sqldb.Micros(s.db.Now()), subject)
	return err
}

// TouchAPIKey implements security.KeyRecords.
func (s *Store) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	_, err := s.db.Exec(ctx, `UPDATE api_keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)`,
		sqldb.Micros(at), id, sqldb.Micros(at))
	return err
}
