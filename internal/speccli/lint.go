package speccli

import (
	"fmt"
	"io"

	"github.com/specguard/specguard/policy"
)

const lintUsage = `Usage: %[1]s lint [--strict] [path/to/openapi.yaml]

Runs the compiler serve uses on an OpenAPI 3 document, %[2]s
when no file is given, and prints every error and warning
as one line: file:line: operation: message. Errors are what would stop
serve; warnings are what it would serve but probably should not:
  unlimited-write   an unsafe method with x-rate-limit: false
  auth-responses    a protected operation that does not declare 401, 403
                    or 400 where the guard can answer them
  limit-responses   a limited operation that does not declare 429 and the
                    RateLimit, RateLimit-Policy and Retry-After headers
  unused-scope      an oauth2 scope that no operation requires
  ungranted-scope   a scope an operation requires that no role of x-roles
                    grants: no credential specguard issues holds it
  anonymous-write   an unsafe method reachable without credentials
  validation-responses
                    an operation whose parameters or body are validated
                    that does not declare 400
  example-schema    an example that does not match its schema (examples
                    are not enforced, so serve accepts them)
  cookie-prefix     a session cookie not named __Host-..., which a sibling
                    subdomain can set
  unthrottled-failures
                    an operation that takes credentials whose tiers all
                    count authenticated callers only: failed attempts are
                    not limited
  unchecked-format  a format of a parameter or request body that no
                    validation checks (any text passes it)
  server-path       a servers URL with a path (/api/v1): the operations
                    are served at their own paths, not under it
Silence a warning you have weighed with x-lint-ignore: [code] on the
operation (on the oauth2 security scheme for unused-scope, on the cookie
scheme for cookie-prefix, at the document's root for server-path and for
example-schema of components and path items). One put where it silences
nothing is a lint-ignore warning.

Exit status: 2 when the command line is wrong; 1 when there are errors,
or warnings and --strict; else 0.

Examples:
  %[1]s lint api/openapi.yaml
  %[1]s lint --strict api/openapi.yaml
`

// Lint is the lint command: args are its flags and file; read finds the
// document.
func (p Program) Lint(args []string, stdout, stderr io.Writer) error {
	fs := p.flags("lint", lintUsage)
	strict := fs.Bool("strict", false, "exit 1 on warnings too")
	if err := ParseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	source, data, err := p.Read(fs.Args())
	if err != nil {
		return err
	}
	table, errs, warnings := policy.LintTable(source, data)
	for _, e := range errs {
		fmt.Fprintln(stdout, e)
	}
	if table != nil && len(errs) == 0 && p.Check != nil {
		if err := p.Check(table); err != nil {
			refused, ok := err.(policy.Errors)
			if !ok {
				refused = policy.Errors{{Source: source, Msg: err.Error()}}
			}
			for _, e := range refused {
				fmt.Fprintln(stdout, e)
			}
			errs = append(errs, refused...)
		}
	}
	for _, w := range warnings {
		fmt.Fprintln(stdout, w)
	}
	if table != nil {
		printProviders(stdout, table)
	}
	fmt.Fprintf(stderr, "%s: %s, %s\n", source, plural(len(errs), "error"), plural(len(warnings), "warning"))
	if len(errs) > 0 || *strict && len(warnings) > 0 {
		return ErrReported
	}
	return nil
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// printProviders says, one line each, which outside tokens the
// openIdConnect schemes accept.
func printProviders(w io.Writer, t *policy.Table) {
	for _, s := range t.Providers() {
		fmt.Fprintf(w, "%s:%d: components.securitySchemes.%s: openIdConnect: %s\n", t.Source, s.Provider.Line, s.Name, s.Provider)
	}
}
