package db

import (
	"context"
	"database/sql"
)

// ExecForTest runs a statement as it is, for tests that put the database
// in a state no method makes.
func (d *DB) ExecForTest(ctx context.Context, query string) (sql.Result, error) {
	return d.w.ExecContext(ctx, query)
}
