package main

import (
	"context"
	"fmt"
	"io"

	"github.com/specguard/specguard/conform"
	"github.com/specguard/specguard/policy"
)

const conformUsage = `Usage: specguard conform --base URL [--spec openapi.yaml] [--credentials creds.yaml] [--format text|json]

Checks a running server against the security and rate limits its OpenAPI
document declares. For every operation it derives, from the document alone:
  no-credential       401 with a challenge (or the anonymous answer when {} admits it)
  malformed:SCHEME    a malformed credential: 400 or 401
  other-scheme:NAME   a valid credential of a scheme it does not accept: 401
  scope:SCHEME:SCOPE  a valid credential lacking SCOPE: 403 insufficient_scope
  schema              a request breaking the declared schema: 400 naming the field
  limit:TIER          what RateLimit says is left is admitted, then 429 with
                      RateLimit-Policy, RateLimit and Retry-After as declared
Credentials come from the credentials file (see README "Conformance");
cases that need one it does not give are skipped, with the reason. It
exhausts every tier it can: run it against a server of its own, never a
shared one. Unsafe methods are only sent without a valid credential, with a
credential the document says must be refused, or breaking the schema.

Exit status: 1 when a case fails; 0 otherwise (skips included).

Examples:
  specguard conform --base http://127.0.0.1:8080 --credentials api/conform.yaml
  specguard conform --spec my.yaml --base http://127.0.0.1:9000 --format json > report.json
`

func conformCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("conform", conformUsage, stderr)
	spec := fs.String("spec", "", "the OpenAPI document (api/openapi.yaml in the current directory when empty)")
	base := fs.String("base", "", "the server's URL, such as http://127.0.0.1:8080 (required)")
	credsFile := fs.String("credentials", "", "YAML file of the credentials the cases may use")
	format := fs.String("format", "text", "text or json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *base == "" {
		return fmt.Errorf("--base is required (the server to check, such as http://127.0.0.1:8080)")
	}
	if *format != "text" && *format != "json" {
		return fmt.Errorf("--format %q: want text or json", *format)
	}
	var specArgs []string
	if *spec != "" {
		specArgs = []string{*spec}
	}
	source, data, err := readSpec(specArgs)
	if err != nil {
		return err
	}
	table, err := policy.Compile(source, data)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return errReported
	}
	var creds []conform.Credential
	if *credsFile != "" {
		if creds, err = conform.LoadConfig(*credsFile); err != nil {
			return err
		}
	}
	rep, err := conform.Run(ctx, table, conform.Options{Base: *base, Credentials: creds})
	if err != nil {
		return err
	}
	if *format == "json" {
		if err := rep.WriteJSON(stdout); err != nil {
			return err
		}
	} else {
		rep.WriteText(stdout)
	}
	if !rep.OK() {
		return errReported
	}
	return nil
}
