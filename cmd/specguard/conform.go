package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/specguard/specguard/conform"
	"github.com/specguard/specguard/internal/speccli"
	"github.com/specguard/specguard/policy"
)

const conformUsage = `Usage: specguard conform --base URL [--spec openapi.yaml] [--credentials creds.yaml]
                         [--format text|json|junit] [--only CASES] [--skip CASES]

Checks a running server against the security and rate limits its OpenAPI
document declares. For every operation it derives, from the document alone:
  no-credential       401 with a challenge (or the anonymous answer when {} admits it)
  malformed:SCHEME    a malformed credential: 400 invalid_request or 401
  forged:SCHEME       a credential with its signature or secret changed: 401
  ignored:SCHEME      on an operation declaring no security, a credential
                      is not read: never 401/403
  and:SCHEME          where two schemes are asked for at once, one alone: 401/403
  other-scheme:NAME   a valid credential of a scheme it does not accept: 401
  scope:SCHEME:SCOPE  a valid credential lacking SCOPE: 403 insufficient_scope
  schema              a request breaking the declared schema: 400 naming the field
  method              a method its path does not declare: 405 with Allow
  csrf:SCHEME         a session cookie without its CSRF token, with a wrong
                      one, or one planted in cookie and header: 403
  owner:other|self|override
                      on an owner-only operation (x-owner), another account's
                      resource: 403 or 404; its owner's, an override's: 2xx
  revoked:KIND        a credential used after it ended (api-key, session,
                      refresh-reuse, logout, disabled, logout-all): 401
  limit:TIER          what RateLimit says is left is admitted, then 429 with
                      RateLimit-Policy, RateLimit and Retry-After as declared
  response[:STATUS]   every answer as declared: status, headers, body schema
Credentials come from the credentials file (see README "Conformance");
cases that need one it does not give are skipped, with the reason. It
exhausts every tier it can, makes and changes resources, and ends the
credentials marked retire: run it against a server of its own, never a
shared one.

Exit status: 2 when the command line is wrong; 1 when a case fails, or
when no case passed (nothing was checked); else 0.

Examples:
  specguard conform --base http://127.0.0.1:8080 --credentials api/conform.yaml
  specguard conform --spec my.yaml --base http://127.0.0.1:9000 --format json > report.json
  specguard conform --base http://127.0.0.1:8080 --credentials api/conform.yaml --only owner,revoked --format junit
`

func conformCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("conform", conformUsage)
	spec := fs.String("spec", "", "the OpenAPI document (api/openapi.yaml in the current directory when empty)")
	base := fs.String("base", "", "the server's URL, such as http://127.0.0.1:8080 (required)")
	credsFile := fs.String("credentials", "", "YAML file of the credentials the cases may use")
	format := fs.String("format", "text", "text, json or junit (JUnit XML, for CI systems)")
	only := fs.String("only", "", "run only the cases whose names start with one of these (comma-separated: owner,revoked,limit:login-ip)")
	skip := fs.String("skip", "", "do not run the cases whose names start with one of these (comma-separated)")
	if err := speccli.ParseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	if *base == "" {
		return usageErr("--base is required (the server to check, such as http://127.0.0.1:8080)")
	}
	if u, err := url.Parse(*base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return usageErr("--base %q: want the server's http:// or https:// URL, such as http://127.0.0.1:8080", *base)
	}
	if *format != "text" && *format != "json" && *format != "junit" {
		return usageErr("--format %q: want text, json or junit", *format)
	}
	var empty error
	fs.Visit(func(f *flag.Flag) {
		// An unset variable (--only "$CASES") would run every case,
		// those that spend tiers and end credentials too.
		if (f.Name == "only" || f.Name == "skip") && strings.Trim(f.Value.String(), ", \t") == "" && empty == nil {
			empty = usageErr("--%s is empty: name the cases (comma-separated, such as owner,revoked), or leave the flag out", f.Name)
		}
	})
	if empty != nil {
		return empty
	}
	var specArgs []string
	if *spec != "" {
		specArgs = []string{*spec}
	}
	source, data, err := readSpec(specArgs)
	if pe := new(os.PathError); errors.As(err, &pe) {
		return fmt.Errorf("--spec: %v", err)
	} else if err != nil {
		return err
	}
	table, err := policy.Compile(source, data)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return errReported
	}
	var creds []conform.Credential
	if beside := filepath.Join(filepath.Dir(source), "conform.yaml"); *credsFile == "" {
		// Not read unasked: a file's credentials may be retired (an account
		// disabled) by the run.
		if _, err := os.Stat(beside); err == nil {
			fmt.Fprintf(stderr, "specguard conform: no --credentials: the cases that need a credential are skipped (%s is beside the document: --credentials %s)\n", beside, beside)
		}
	} else {
		if creds, err = conform.LoadConfig(*credsFile); err != nil {
			if pe := new(os.PathError); errors.As(err, &pe) {
				return fmt.Errorf("--credentials: %v", err) // which file it is: a spec's would read alike
			}
			return err
		}
	}
	list := func(s string) []string {
		var out []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out
	}
	rep, err := conform.Run(ctx, table, conform.Options{Base: *base, Credentials: creds, Only: list(*only), Skip: list(*skip)})
	if ctx.Err() != nil {
		return fmt.Errorf("conform: interrupted; nothing is reported")
	} else if errors.Is(err, conform.ErrNoSuchCase) {
		return usageErr("--only/--skip: %v", err)
	} else if err != nil {
		return err
	}
	switch *format {
	case "json":
		if err := rep.WriteJSON(stdout); err != nil {
			return err
		}
	case "junit":
		if err := rep.WriteJUnit(stdout); err != nil {
			return err
		}
	default:
		rep.WriteText(stdout)
	}
	if !rep.OK() {
		return errReported
	}
	return nil
}
