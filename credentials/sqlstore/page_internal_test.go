package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/specguard/specguard/internal/pgtest"
	"github.com/specguard/specguard/sqldb"
)

// A page of accounts on PostgreSQL reads an index in its order (the bytes
// of email_key), not the whole table: the unique index is in the
// database's collation, which the page's COLLATE "C" cannot use, so every
// page was a scan of every account and a sort. Here on a database whose
// locale orders text otherwise, and with sequential scans priced out, so
// that the plan says whether an index can serve the page at all.
func TestPagesReadAnIndexOnPostgres(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewIn(t, "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'")
	d, err := sqldb.Open(ctx, sqldb.Source{Kind: sqldb.Postgres, DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, _, err := d.Migrate(ctx, Migrations, nil); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	conn, err := raw.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET enable_seqscan = off"); err != nil {
		t.Fatal(err)
	}
	for _, after := range []bool{false, true} {
		query := pageQuery(d.Bytewise(), after)
		for n := 1; strings.Contains(query, "?"); n++ {
			query = strings.Replace(query, "?", fmt.Sprintf("$%d", n), 1)
		}
		args := []any{50}
		if after {
			args = []any{"a@example.com", "a@example.com", "a@example.com", "a@example.com", 50}
		}
		rows, err := conn.QueryContext(ctx, "EXPLAIN "+query, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, line)
		}
		rows.Close()
		if p := strings.Join(plan, "\n"); !strings.Contains(p, "users_by_email_key_bytes") {
			t.Errorf("a page (after a key: %v) reads no index in its order:\n%s", after, p)
		}
	}
}
