// Package conform checks a running server against the security and the
// rate limits its OpenAPI document declares: for every operation it
// derives requests from the document alone (no credential, a malformed
// one, one of a scheme the operation does not accept, one lacking each
// required scope, a request breaking the declared schema, and enough calls
// to exhaust each x-rate-limit tier) and says, case by case, whether the
// answer is the one the document promises.
//
// It sends real requests, so run it against a server of its own: the
// tiers it exhausts stay exhausted for their window. It never sends a
// request that could change data unless the request is refused by
// validation or authentication first: unsafe methods are only ever called
// without a valid credential, or with a body or parameter that breaks the
// document's schema.
package conform

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/specguard/specguard/policy"
)

// Verdicts of a case.
const (
	Pass = "pass"
	Fail = "fail"
	Skip = "skip"
)

// Result is one case of one operation.
type Result struct {
	Method    string `json:"method"`
	Path      string `json:"path"`
	Operation string `json:"operation"`
	Case      string `json:"case"`
	Verdict   string `json:"verdict"`
	Detail    string `json:"detail"`
}

// Report is every result of a run.
type Report struct {
	Results []Result `json:"results"`
	Passed  int      `json:"passed"`
	Failed  int      `json:"failed"`
	Skipped int      `json:"skipped"`
}

// OK reports whether no case failed.
func (r *Report) OK() bool { return r.Failed == 0 }

// WriteText writes one line per case, then a summary line.
func (r *Report) WriteText(w io.Writer) {
	for _, res := range r.Results {
		fmt.Fprintf(w, "%-4s  %s %s (%s)  %s: %s\n", strings.ToUpper(res.Verdict), res.Method, res.Path, res.Operation, res.Case, res.Detail)
	}
	fmt.Fprintf(w, "%d passed, %d failed, %d skipped\n", r.Passed, r.Failed, r.Skipped)
}

// WriteJSON writes the report as one JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Options configure a run.
type Options struct {
	// Base is the server's URL, such as http://127.0.0.1:8080.
	Base string
	// Credentials are the credentials the cases may use (see Config).
	Credentials []Credential
	// Client sends the requests (a client with a 10s timeout when nil). A
	// redirect is never followed, whatever the client's CheckRedirect: it
	// is the server's answer, and following it would send the case's
	// credential (an API key, a cookie) wherever it points.
	Client *http.Client
	// MaxCalls bounds the calls spent exhausting one tier (2000 when 0): a
	// tier that admits more at once is skipped.
	MaxCalls int
}

// Run checks every operation of table against the server at opts.Base.
func Run(ctx context.Context, table *policy.Table, opts Options) (*Report, error) {
	client := http.Client{Timeout: 10 * time.Second}
	if opts.Client != nil {
		client = *opts.Client
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	opts.Client = &client
	if opts.MaxCalls == 0 {
		opts.MaxCalls = 2000
	}
	r := &runner{table: table, opts: opts, base: strings.TrimSuffix(opts.Base, "/")}
	creds, err := r.fetchAll(ctx, opts.Credentials)
	if err != nil {
		return nil, err
	}
	r.creds = creds
	ops := table.Operations()
	sort.Slice(ops, func(i, j int) bool {
		if ops[i].Path != ops[j].Path {
			return ops[i].Path < ops[j].Path
		}
		return ops[i].Method < ops[j].Method
	})
	// Every case that needs a tier not yet exhausted runs before any tier
	// is exhausted.
	for _, op := range ops {
		r.authCases(ctx, op)
		r.schemaCase(ctx, op)
	}
	for _, op := range ops {
		r.limitCases(ctx, op)
	}
	rep := &Report{Results: r.results}
	for _, res := range rep.Results {
		switch res.Verdict {
		case Pass:
			rep.Passed++
		case Fail:
			rep.Failed++
		default:
			rep.Skipped++
		}
	}
	return rep, nil
}

type runner struct {
	table   *policy.Table
	opts    Options
	base    string
	creds   []*credential
	results []Result
}

func (r *runner) report(op *policy.Operation, name, verdict, format string, args ...any) {
	r.results = append(r.results, Result{Method: op.Method, Path: op.Path, Operation: op.ID, Case: name, Verdict: verdict, Detail: fmt.Sprintf(format, args...)})
}
