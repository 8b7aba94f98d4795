// Command specguard is the toolkit of services guarded from their OpenAPI
// document: it starts a new one, checks and explains a document, makes
// signing keys, and checks a running service against its document. It
// links no app: it works on any document, before its handlers exist.
// (A service is its own command: the example app's is cmd/blog.)
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
)

func main() {
	ctx := context.Background()
	if len(os.Args) > 1 && (os.Args[1] == "new" || os.Args[1] == "conform" || os.Args[1] == "keygen") {
		// These end cleanly when interrupted (new removes what it wrote,
		// conform enables again an account it disabled, keygen writes
		// no key, or says the one it wrote). The others are ended by the
		// signal, as any command: caught, it would be swallowed.
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
	}
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	if err != nil && !errors.Is(err, flag.ErrHelp) && !errors.Is(err, errReported) {
		fmt.Fprintln(os.Stderr, "specguard:", err)
	}
	os.Exit(exitCode(err))
}

// exitCode is the exit status for run's error: 0 for none (or --help), 2
// for a mistake in the command line (a flag, an argument), 1 for a
// command that ran and failed (a document with errors, a failed case).
func exitCode(err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, speccli.ErrUsage):
		return 2
	}
	return 1
}

// usageErr marks an error of the command line: exit status 2.
func usageErr(format string, args ...any) error { return speccli.Usage(fmt.Errorf(format, args...)) }

// errReported is returned by a command that has already said why it failed.
var errReported = speccli.ErrReported

const usage = `Usage: specguard <command> [flags] [arguments]

Commands:
  new      start a new service in a directory: document, generated code, handlers, tests
  lint     check an OpenAPI document: the errors serve would stop on, and warnings
  routes   print the compiled policy: who may call each operation, and how often
  keygen   write a new token signing key for SPECGUARD_SIGNING_KEY_FILE
  conform  check a running server against the security and limits its document declares
  fragment print the document of the credential operations, to start or extend a document from
  specsum  record a document's SHA-256 beside the code generated from it (make generate)

Run 'specguard <command> --help' for a command's flags and examples.
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageErr("no command given")
	}
	switch args[0] {
	case "new":
		return newService(ctx, args[1:], stdout, stderr)
	case "lint":
		return specCommands.Lint(args[1:], stdout, stderr)
	case "routes":
		return specCommands.Routes(args[1:], stdout, stderr)
	case "keygen":
		return keygen(ctx, args[1:], stdout, stderr)
	case "conform":
		return conformCmd(ctx, args[1:], stdout, stderr)
	case "specsum":
		return specsum(args[1:], stdout, stderr)
	case "fragment":
		return fragment(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return usageErr("unknown command %q (try 'specguard help')", args[0])
}

// newFlags makes a command's flag set; usage is printed by --help before the
// flags.
func newFlags(name, usage string) *flag.FlagSet {
	return speccli.NewFlags("specguard "+name, func(w io.Writer) { fmt.Fprint(w, usage) })
}
