package sqldb

import (
	"context"
	"database/sql"
)

// ExecForTest runs a statement on the writer as it is, for tests that put
// the database in a state no repository makes. It exists only in tests.
func (d *DB) ExecForTest(ctx context.Context, query string) (sql.Result, error) {
	return d.w.ExecContext(ctx, query)
}

// LockMigrationsForTest takes the lock Migrate holds, as another instance
// migrating would.
func (d *DB) LockMigrationsForTest(ctx context.Context) (unlock func(), err error) {
	_, unlock, err = d.lockMigrations(ctx)
	return unlock, err
}

// Numbered is numbered, for its table test.
var Numbered = numbered
