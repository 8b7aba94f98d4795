package speccli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/specguard/specguard/policy"
)

const routesUsage = `Usage: %[1]s routes [--format table|json] [path/to/openapi.yaml]

Prints the compiled policy of every operation of an OpenAPI 3 document,
%[2]s when no file is given: method, path, operationId,
who may call it (each security alternative with its schemes and scopes, or
"public" / "anonymous allowed"), and its rate-limit tiers. A document that
does not compile prints its errors, as lint does, and exits 1.

Examples:
  %[1]s routes
  %[1]s routes --format json api/openapi.yaml | jq '.[] | select(.access == "public")'
`

// Routes is the routes command.
func (p Program) Routes(args []string, stdout, stderr io.Writer) error {
	fs := p.flags("routes", routesUsage)
	format := fs.String("format", "table", "output format: table or json")
	if err := ParseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if *format != "table" && *format != "json" {
		return Usage(fmt.Errorf("--format %q: want table or json", *format))
	}
	source, data, err := p.Read(fs.Args())
	if err != nil {
		return err
	}
	table, err := policy.Compile(source, data)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return ErrReported
	}
	rs := table.Routes()
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rs)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "METHOD\tPATH\tOPERATION\tWHO MAY CALL\tLIMITS")
	for _, r := range rs {
		who := strings.Join(r.Who, " | ")
		if r.RequireFresh {
			who += " (fresh token)"
		}
		if r.Owner != "" {
			who += " (" + r.Owner + ")"
		}
		limits := "unlimited"
		if len(r.Limits) > 0 {
			summaries := make([]string, len(r.Limits))
			for i, l := range r.Limits {
				summaries[i] = l.Summary
			}
			limits = strings.Join(summaries, "; ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Method, r.Path, r.OperationID, who, limits)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(table.Providers()) > 0 {
		fmt.Fprintln(stdout)
		printProviders(stdout, table)
	}
	return nil
}
