package main

import (
	"io"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/internal/speccli"
)

const fragmentUsage = `Usage: specguard fragment > openapi.yaml

Prints the OpenAPI document of the credential operations package
credentials serves (credentials.Fragment): register, login, the OAuth2
token endpoint, refresh, logout, browser sessions, API keys, accounts and
JWKS, with their schemas, security and limits. Start a document from it,
or copy the operations you serve (each keeps its x-credential) and the
components they use into yours; then add your own operations under paths.
Paths, security, limits, summaries and scopes are yours to change; the
requests and answers are checked against this document at start-up.

Example:
  specguard fragment > api/openapi.yaml
`

func fragment(args []string, stdout, stderr io.Writer) error {
	flags := newFlags("fragment", fragmentUsage)
	if err := speccli.ParseFlags(flags, args, stdout, stderr); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return usageErr("fragment: unexpected argument %q", flags.Arg(0))
	}
	_, err := stdout.Write(credentials.Fragment)
	return err
}
