package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/specguard/specguard/internal/speccli"
	"github.com/specguard/specguard/sqldb"
)

// Main is a service's whole command: `NAME serve` serves it (the default
// with no command), `NAME migrate` applies its migrations and exits. It
// reads os.Args and the environment, stops gracefully on SIGINT and
// SIGTERM (a second one ends it at once), and exits 1 on an error, printed
// as one line, and 2 on a wrong command line (a bad flag, printed in one
// line when the flags were read; an unknown command or argument).
func Main(app App) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first signal asks for a graceful stop; a second, while the
	// requests in flight drain, ends the process at once, as an operator
	// pressing Ctrl-C again expects.
	go func() { <-ctx.Done(); stop() }()
	err := Command(ctx, app, os.Args[1:], os.Getenv, os.Environ(), os.Stdout, os.Stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return
	case errors.Is(err, speccli.ErrReported):
		os.Exit(2) // said already, in one line, when the flags were read
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", app.Name, err)
	if errors.Is(err, speccli.ErrUsage) {
		os.Exit(2) // the command line was wrong
	}
	os.Exit(1)
}

// Command runs one command of the service: serve (the default), migrate,
// or help. A SPECGUARD_* variable of environ that is no setting is
// refused, naming the one it was probably meant to be.
func Command(ctx context.Context, app App, args []string, getenv func(string) string, environ []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && (args[0][0] != '-' || slices.Contains([]string{"-h", "-help", "--help"}, args[0])) {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve", "migrate":
		if err := checkEnviron(app.Name, environ); err != nil {
			return err
		}
		app.environ = environ
		if cmd == "migrate" {
			return Migrate(ctx, app, args, getenv, stdout, stderr)
		}
		return Run(ctx, app, args, getenv, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprintf(stdout, commandUsage, app.Name)
		return nil
	}
	fmt.Fprintf(stderr, commandUsage, app.Name)
	return speccli.Usage(fmt.Errorf("unknown command %q", cmd))
}

const commandUsage = `Usage: %[1]s [serve|migrate] [flags]

Commands:
  serve    serve the API (the default): every setting is a SPECGUARD_* variable or a flag
  migrate  apply the database schema migrations (serve applies them at start too)

Run '%[1]s serve --help' or '%[1]s migrate --help' for the flags.
`

const migrateUsage = `Usage: %[1]s migrate [--status] [--database-url URL] [--data-dir DIR]

Applies the schema migrations the database lacks (serve applies them at
start too), holding a lock so that instances starting at once are safe.
A database at a newer schema version than this binary knows is refused,
and so is one whose applied migration has been edited since.

The database is SPECGUARD_DATABASE_URL (a flag wins): sqlite:PATH,
postgres://... or postgresql://...; empty means specguard.db in
SPECGUARD_DATA_DIR (default .specguard).

Examples:
  %[1]s migrate
  %[1]s migrate --status --database-url postgres://specguard@db:5432/specguard
`

// Migrate applies the migrations the database lacks, each set in turn
// (the credential operations', then the app's), and exits; --status shows
// the versions and changes nothing.
func Migrate(ctx context.Context, app App, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := speccli.NewFlags(app.Name+" migrate", func(w io.Writer) { fmt.Fprintf(w, migrateUsage, app.Name) })
	status := fs.Bool("status", false, "print the schema versions and change nothing")
	// The variables are read after the flags, not given as their defaults:
	// the usage, printed on --help, shows defaults, and a database URL
	// holds a password.
	url := fs.String("database-url", "", "the database (default SPECGUARD_DATABASE_URL)")
	dataDir := fs.String("data-dir", "", "directory of the default SQLite file (default SPECGUARD_DATA_DIR, else .specguard)")
	if err := speccli.ParseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	// As serve reads them: a flag given wins, even empty (an empty
	// --database-url is the SQLite file in the data directory, an empty
	// --data-dir is refused); the variable otherwise.
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	urlFrom, dirFrom := "--database-url", "--data-dir" // what an error names
	if !given["database-url"] {
		*url, urlFrom = getenv("SPECGUARD_DATABASE_URL"), "SPECGUARD_DATABASE_URL"
	}
	if !given["data-dir"] {
		*dataDir, dirFrom = getenv("SPECGUARD_DATA_DIR"), "SPECGUARD_DATA_DIR"
	} else if *dataDir == "" {
		return speccli.Usage(errors.New("migrate: --data-dir: must not be empty; leave it out for the default"))
	}
	if fs.NArg() > 0 {
		return speccli.Usage(fmt.Errorf("migrate: unexpected argument %q", fs.Arg(0)))
	}
	if err := bare(*url); err != nil {
		return fmt.Errorf("migrate: %s: %v", urlFrom, err)
	}
	if err := bare(*dataDir); err != nil {
		return fmt.Errorf("migrate: %s: %v", dirFrom, err)
	}
	if *dataDir == "" {
		*dataDir = ".specguard"
	}
	src, err := sqldb.ParseURL(*url, *dataDir)
	if err != nil {
		return fmt.Errorf("migrate: %s: %v", urlFrom, err)
	}
	if *status && src.Kind == sqldb.SQLite {
		// Opening creates the file: a mistyped path would leave an empty
		// database behind, reported as one with every migration to apply.
		if _, err := os.Stat(src.DSN); errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("migrate --status: no SQLite database at %s: migrate creates it", src.DSN)
		} else if err != nil {
			return fmt.Errorf("migrate --status: %v", err)
		}
	}
	d, err := sqldb.Open(ctx, src)
	if err != nil {
		return fmt.Errorf("migrate: %v", err)
	}
	defer d.Close()
	if *status {
		for _, set := range app.migrationSets() {
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
	// Every set is checked before any is migrated (see migrate).
	done, err := d.MigrateAll(ctx, app.migrationSets(), log)
	for i, m := range done {
		if err != nil && i == len(done)-1 {
			break // the set that failed: the error says it
		}
		fmt.Fprintf(stdout, "%s: %s: schema version %d (was %d)\n", src, m.Name, m.To, m.From)
	}
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}
