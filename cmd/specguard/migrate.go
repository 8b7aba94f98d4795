package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/specguard/specguard/server"
	"github.com/specguard/specguard/sqldb"
)

const migrateUsage = `Usage: specguard migrate [--status] [--database-url URL] [--data-dir DIR]

Applies the schema migrations the database lacks (serve applies them at
start too), holding a lock so that instances starting at once are safe.
A database at a newer schema version than this binary knows is refused.

The database is SPECGUARD_DATABASE_URL (a flag wins): sqlite:PATH,
postgres://... or postgresql://...; empty means specguard.db in
SPECGUARD_DATA_DIR (default .specguard).

Examples:
  specguard migrate
  specguard migrate --status --database-url postgres://specguard@db:5432/specguard
`

func migrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("migrate", migrateUsage, stderr)
	status := fs.Bool("status", false, "print the schema versions and change nothing")
	url := fs.String("database-url", getenv("SPECGUARD_DATABASE_URL"), "the database (SPECGUARD_DATABASE_URL)")
	dataDir := fs.String("data-dir", getenv("SPECGUARD_DATA_DIR"), "directory of the default SQLite file (SPECGUARD_DATA_DIR, default .specguard)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("migrate: unexpected argument %q", fs.Arg(0))
	}
	if *dataDir == "" {
		*dataDir = ".specguard"
	}
	src, err := sqldb.ParseURL(*url, *dataDir)
	if err != nil {
		return fmt.Errorf("migrate: SPECGUARD_DATABASE_URL: %v", err)
	}
	d, err := sqldb.Open(ctx, src)
	if err != nil {
		return fmt.Errorf("migrate: %v", err)
	}
	defer d.Close()
	if *status {
		for _, set := range server.MigrationSets {
			current, known, err := d.Versions(ctx, set)
			if err != nil {
				return fmt.Errorf("migrate: %v", err)
			}
			fmt.Fprintf(stdout, "%s: %s: schema version %d; this binary knows up to %d", src, set.Name, current, known)
			switch {
			case current < known:
				fmt.Fprintf(stdout, " (%d to apply)\n", known-current)
			case current > known:
				fmt.Fprintln(stdout, " (the database is newer: upgrade this binary)")
			default:
				fmt.Fprintln(stdout, " (up to date)")
			}
		}
		return nil
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	for _, set := range server.MigrationSets {
		from, to, err := d.Migrate(ctx, set, log)
		if err != nil {
			return fmt.Errorf("migrate: %v", err)
		}
		fmt.Fprintf(stdout, "%s: %s: schema version %d (was %d)\n", src, set.Name, to, from)
	}
	return nil
}
