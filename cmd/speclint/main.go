// Command speclint checks an OpenAPI document with the compiler specguard
// serves with, and prints its compiled policy. It imports nothing of the
// example app, so it runs while the document is being written: before
// `make generate`, and before the handlers of new operations exist.
//
//	go run ./cmd/speclint lint [--strict] [api/openapi.yaml]
//	go run ./cmd/speclint routes [--format table|json] [api/openapi.yaml]
//
// It reads api/openapi.yaml (from the current directory) when no file is
// given. `specguard lint` and `specguard routes` are the same commands.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/specguard/specguard/internal/speccli"
)

const defaultSpec = "api/openapi.yaml"

const usage = `Usage: speclint <command> [flags] [path/to/openapi.yaml]

Commands:
  lint     the errors specguard serve would stop on, and warnings
  routes   the compiled policy: who may call each operation, and how often

The document is ` + defaultSpec + ` when no file is given.
Run 'speclint <command> --help' for a command's flags and examples.
`

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return
	case errors.Is(err, speccli.ErrReported):
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "speclint:", err)
	os.Exit(1)
}

var program = speccli.Program{Name: "speclint", Default: defaultSpec, Read: func(args []string) (string, []byte, error) {
	name := defaultSpec
	switch len(args) {
	case 0:
	case 1:
		name = args[0]
	default:
		return "", nil, fmt.Errorf("unexpected argument %q: give one spec file at most", args[1])
	}
	data, err := os.ReadFile(name)
	return name, data, err
}}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "lint":
		return program.Lint(args[1:], stdout, stderr)
	case "routes":
		return program.Routes(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q (try 'speclint help')", args[0])
}
