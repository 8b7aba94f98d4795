// Command specguard serves an API whose security and rate limits come from
// its OpenAPI document, and checks and explains such documents.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/specguard/specguard/internal/speccli"
	"github.com/specguard/specguard/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := checkEnviron(os.Args[1:], os.Environ())
	if err == nil {
		err = run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return
	case errors.Is(err, errReported):
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "specguard:", err)
	os.Exit(1)
}

// checkEnviron refuses misspelled SPECGUARD_* variables for the commands
// that read them.
func checkEnviron(args, environ []string) error {
	if len(args) > 0 && (args[0] == "serve" || args[0] == "migrate") {
		return server.CheckEnviron(environ)
	}
	return nil
}

// errReported is returned by a command that has already said why it failed.
var errReported = speccli.ErrReported

const usage = `Usage: specguard <command> [flags] [arguments]

Commands:
  serve    serve the API described by the embedded api/openapi.yaml
  migrate  apply the database schema migrations (serve applies them at start too)
  lint     check an OpenAPI document: the errors serve would stop on, and warnings
  routes   print the compiled policy: who may call each operation, and how often
  keygen   write a new token signing key for SPECGUARD_SIGNING_KEY_FILE
  conform  check a running server against the security and limits its document declares

Run 'specguard <command> --help' for a command's flags and examples.
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("no command given")
	}
	switch args[0] {
	case "serve":
		return server.Run(ctx, args[1:], getenv, stdout, stderr)
	case "migrate":
		return migrate(ctx, args[1:], getenv, stdout, stderr)
	case "lint":
		return specCommands.Lint(args[1:], stdout, stderr)
	case "routes":
		return specCommands.Routes(args[1:], stdout, stderr)
	case "keygen":
		return keygen(args[1:], stdout, stderr)
	case "conform":
		return conformCmd(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q (try 'specguard help')", args[0])
}

// newFlags makes a command's flag set; usage is printed by --help before the
// flags.
func newFlags(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("specguard "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fmt.Fprint(stderr, "\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs
}
