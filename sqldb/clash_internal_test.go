package sqldb

import (
	"context"
	"testing"

	"github.com/specguard/specguard/internal/pgtest"
)

// createClashed knows PostgreSQL's three answers to a table created twice
// at once, taken from a real server here, and nothing else.
func TestCreateClashed(t *testing.T) {
	ctx := context.Background()
	d, err := Open(ctx, Source{Kind: Postgres, DSN: pgtest.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	mustExec := func(q string) {
		t.Helper()
		if _, err := d.w.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	mustExec(`CREATE TABLE t (id INT PRIMARY KEY)`)
	mustExec(`CREATE TYPE k AS ENUM ('a')`)
	mustExec(`INSERT INTO t VALUES (1)`)
	for q, want := range map[string]bool{
		`CREATE TABLE t (id INT)`:     true, // 42P07
		`CREATE TYPE k AS ENUM ('b')`: true, // 42710
		`INSERT INTO t VALUES (1)`:    true, // 23505
		`INSERT INTO t VALUES (NULL)`: false,
		`SELECT * FROM no_such_table`: false,
	} {
		_, err := d.w.ExecContext(ctx, q)
		if err == nil {
			t.Fatalf("%s: no error", q)
		}
		if got := createClashed(err); got != want {
			t.Errorf("createClashed(%s: %v) = %v, want %v", q, err, got, want)
		}
	}
	if createClashed(nil) {
		t.Error("createClashed(nil) = true")
	}
}
