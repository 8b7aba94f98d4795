// Package speccli holds the commands of specguard that work on an OpenAPI
// document alone (lint, routes), apart from its command line.
package speccli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/specguard/specguard/policy"
)

// ErrReported is returned by a command that has already said why it failed.
var ErrReported = errors.New("failed")

// ErrUsage marks an error of the command line itself (a flag, an argument):
// a main exits 2 for it, 1 for a command that ran and failed, so that a
// script can tell a mistyped command from a document or server at fault.
var ErrUsage = errors.New("usage")

// Usage marks err as an error of the command line (ErrUsage).
func Usage(err error) error { return usageError{err} }

type usageError struct{ error }

func (usageError) Is(target error) bool { return target == ErrUsage }
func (u usageError) Unwrap() error      { return u.error }

// Program is the command the subcommands run in.
type Program struct {
	Name string // "specguard"
	// Default says which document is read when no file is given.
	Default string
	// Read returns the document named by args (one file at most), or the
	// default one.
	Read func(args []string) (source string, data []byte, err error)
	// Check, when not nil, reports what else a server would refuse to
	// start on in a compiled document (lint says it as errors).
	Check func(*policy.Table) error
}

// flags makes a subcommand's flag set, its usage formatted with the
// program's name and default document.
func (p Program) flags(name, usage string) *flag.FlagSet {
	return NewFlags(p.Name+" "+name, func(w io.Writer) { fmt.Fprintf(w, usage, p.Name, p.Default) })
}

// NewFlags makes a command's flag set whose usage is head, then the flags;
// ParseFlags says where it goes.
func NewFlags(name string, head func(w io.Writer)) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		head(fs.Output())
		fmt.Fprint(fs.Output(), "\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs
}

// ParseFlags parses args with fs (made with flag.ContinueOnError). On
// --help it prints the usage to stdout, asked for, and returns
// flag.ErrHelp. A mistake is printed to stderr in one line, the command
// named and where its usage is, and comes back marked ErrReported and
// ErrUsage (errors.Is), its text kept, so that a main does not say it
// twice.
func ParseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	var said bytes.Buffer
	fs.SetOutput(&said)
	err := fs.Parse(args)
	fs.SetOutput(stderr)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		if _, werr := stdout.Write(said.Bytes()); werr != nil {
			return werr
		}
		return err
	}
	// The flag package printed the usage after the mistake: dozens of
	// lines, the mistake scrolled away.
	fmt.Fprintf(stderr, "%s: %v (try '%s --help')\n", fs.Name(), err, fs.Name())
	return printed{err}
}

// printed is an error said already.
type printed struct{ error }

func (printed) Is(target error) bool { return target == ErrReported || target == ErrUsage }
func (p printed) Unwrap() error      { return p.error }
