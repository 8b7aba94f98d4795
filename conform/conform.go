// Package conform checks a running server against the security and the
// rate limits its OpenAPI document declares: for every operation it
// derives requests from the document alone (no credential, a malformed
// one, one of a scheme the operation does not accept, one lacking each
// required scope, a request breaking the declared schema, a method the
// path does not declare, a session cookie without its CSRF token, enough
// calls to exhaust each x-rate-limit tier) and says, case by case, whether
// the answer is the one the document promises. Then what takes more than
// one request, as an attacker tries it: another account's resource on an
// owner-only operation (owner), a credential used after it ended (revoked:
// logout, a spent refresh token, a revoked API key, an ended session, a
// disabled account, logout everywhere); and every answer it got, checked
// against the document's status, headers and schemas (response).
//
// It sends real requests, so run it against a server of its own: the
// tiers it exhausts stay exhausted for their window, the owner cases make
// and change resources, and the revoked cases end the credentials marked
// retire (and disable an account for a moment). Otherwise an unsafe
// method is only ever called without a valid credential, or with a body or
// parameter that breaks the document's schema.
//
// Run checks a table against a server; its Report is text, JSON or JUnit.
// A service's own tests can run it against an httptest.Server.
package conform

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/specguard/specguard/internal/text"
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

// OK reports whether no case failed and at least one passed: a run that
// checked nothing (Only and Skip selected no case, or the server answered
// none) proves nothing.
func (r *Report) OK() bool { return r.Failed == 0 && r.Passed > 0 }

// WriteText writes one line per case, then a summary line, and says so
// when no case passed.
func (r *Report) WriteText(w io.Writer) {
	for _, res := range r.Results {
		// One line per case, whatever the server put in what a detail
		// quotes (a problem's type with a line break read as a PASS).
		fmt.Fprintf(w, "%-4s  %s %s (%s)  %s: %s\n", strings.ToUpper(res.Verdict), res.Method, res.Path, res.Operation, res.Case, printable(res.Detail))
	}
	fmt.Fprintf(w, "%d passed, %d failed, %d skipped\n", r.Passed, r.Failed, r.Skipped)
	if r.Passed == 0 && r.Failed == 0 {
		fmt.Fprintln(w, "nothing was checked: no case passed (did --only or --skip select none, or did the server answer none?)")
	}
}

// printable is s on one line, without control characters (a terminal's
// escapes).
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, text.OneLine(s))
}

// WriteJSON writes the report as one JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteJUnit writes the report as JUnit XML, for CI systems: one test
// suite, one test case per operation and case (classname the operation),
// a failure or a skip with its detail.
func (r *Report) WriteJUnit(w io.Writer) error {
	type message struct {
		Message string `xml:"message,attr"`
	}
	type testcase struct {
		Name      string   `xml:"name,attr"`
		Classname string   `xml:"classname,attr"`
		Failure   *message `xml:"failure,omitempty"`
		Skipped   *message `xml:"skipped,omitempty"`
	}
	type suite struct {
		XMLName  xml.Name   `xml:"testsuite"`
		Name     string     `xml:"name,attr"`
		Tests    int        `xml:"tests,attr"`
		Failures int        `xml:"failures,attr"`
		Skipped  int        `xml:"skipped,attr"`
		Cases    []testcase `xml:"testcase"`
	}
	s := suite{Name: "specguard conform", Tests: len(r.Results), Failures: r.Failed, Skipped: r.Skipped}
	for _, res := range r.Results {
		c := testcase{Name: res.Method + " " + res.Path + " " + res.Case, Classname: res.Operation}
		switch res.Verdict {
		case Fail:
			c.Failure = &message{Message: res.Detail}
		case Skip:
			c.Skipped = &message{Message: res.Detail}
		}
		s.Cases = append(s.Cases, c)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(s); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
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
	// tier that admits more at once is skipped, and a case stops MaxCalls
	// calls past what the tier should admit (skipped when what it refilled
	// meanwhile explains them, failed when not).
	MaxCalls int
	// Only and Skip select cases by the start of their names: a family
	// ("owner", "revoked", "limit"), or a whole name ("scope:oauth2:posts:read").
	// With Only, a case runs when a prefix matches; a case Skip matches
	// is not reported, and one that spends a tier or ends a credential
	// (limit, revoked) is not run either. Neither: every case.
	Only, Skip []string
}

// Families are the first parts of the cases' names (before the first
// ':'), by which Only and Skip choose.
var Families = []string{"and", "and-scope", "csrf", "forged", "ignored", "limit", "limits", "malformed", "method",
	"no-credential", "other-scheme", "owner", "response", "revoked", "schema", "scope"}

// ErrNoSuchCase: an Only or Skip pattern that no case's name can start
// with (a misspelt family, or a tier, scheme or scope the document does
// not have). Run refuses it before it sends anything: a run that selects
// nothing would still have made every credential, and a Skip that spares
// nothing would spend the tier it meant to spare.
var ErrNoSuchCase = errors.New("no case's name starts so")

// startsACase reports whether the name of some case of table can start
// with p: a family's start, or a name past its family ("limit:anon",
// "scope:oauth2:posts:read") that the document's schemes, scopes and
// tiers can give. A misspelt tier in --skip would otherwise spend the tier
// it was meant to spare.
func startsACase(table *policy.Table, p string) bool {
	family, _, qualified := strings.Cut(p, ":")
	if !qualified {
		return slices.ContainsFunc(Families, func(f string) bool { return strings.HasPrefix(f, p) })
	}
	if !slices.Contains(Families, family) {
		return false
	}
	if family == "response" {
		return true // "response:" and the status the server answers
	}
	return slices.ContainsFunc(caseNames(table), func(name string) bool { return strings.HasPrefix(name, p) })
}

// caseNames are the names past their family that cases of table can have
// ("response:" and a status aside).
func caseNames(table *policy.Table) []string {
	names := []string{"owner:other", "owner:self", "owner:override", "no-credential:HEAD", "revoked:logout-all",
		"revoked:api-key", "revoked:session", "revoked:refresh-reuse", "revoked:logout", "revoked:disabled"}
	for scheme := range table.Schemes {
		for _, f := range []string{"malformed", "other-scheme", "and", "forged", "ignored", "csrf"} {
			names = append(names, f+":"+scheme)
		}
	}
	for _, op := range table.Operations() {
		for _, t := range op.Limits {
			names = append(names, "limit:"+t.Name)
		}
		for _, alt := range op.Security.Alternatives {
			for _, sr := range alt {
				for _, sc := range sr.Scopes {
					names = append(names, "scope:"+sr.Scheme.Name+":"+sc, "and-scope:"+sr.Scheme.Name+":"+sc)
				}
			}
		}
	}
	return names
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
	for _, p := range append(slices.Clip(opts.Only), opts.Skip...) {
		if startsACase(table, p) {
			continue
		}
		if family, _, qualified := strings.Cut(p, ":"); qualified && slices.Contains(Families, family) {
			return nil, fmt.Errorf("case %q: %w: the document gives no %s case such a name (a tier, scheme or scope misspelt?)", p, ErrNoSuchCase, family)
		}
		return nil, fmt.Errorf("case %q: %w; every name starts with one of %s", p, ErrNoSuchCase, strings.Join(Families, ", "))
	}
	r := &runner{table: table, opts: opts, base: strings.TrimSuffix(opts.Base, "/"), answers: map[*policy.Operation]*answers{}}
	if err := r.reachable(ctx); err != nil {
		return nil, err
	}
	// What the run makes is ended however it ends.
	defer r.tidy(ctx)
	creds, err := r.fetchAll(ctx, opts.Credentials)
	r.creds = creds
	if err != nil {
		return nil, err
	}
	ops := table.Operations()
	sort.Slice(ops, func(i, j int) bool {
		if ops[i].Path != ops[j].Path {
			return ops[i].Path < ops[j].Path
		}
		return ops[i].Method < ops[j].Method
	})
	// Every case that needs a tier not yet exhausted runs before any tier
	// is exhausted. An interrupted run (ctx ended) stops between cases:
	// what it had not checked is not reported as failed.
	for i, op := range ops {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		r.authCases(ctx, op)
		r.schemaCase(ctx, op)
		r.csrfCase(ctx, op)
		r.forgedCases(ctx, op)
		if i == 0 || ops[i-1].Path != op.Path {
			var declared []string
			for _, o := range ops[i:] {
				if o.Path == op.Path {
					declared = append(declared, o.Method)
				}
			}
			r.methodCase(ctx, op, declared)
		}
	}
	for _, phase := range []func(){
		func() { r.ownerCases(ctx, ops) },
		func() { r.revokedBefore(ctx) },
		func() {
			if r.wants("limit") || r.wants("limits") {
				for _, op := range ops {
					if ctx.Err() == nil {
						r.limitCases(ctx, op)
					}
				}
			}
		},
		func() { r.revokedAfter(ctx) },
		func() {
			if r.wants("response") {
				r.responseCases(ops)
			}
		},
	} {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		phase()
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
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
	answers map[*policy.Operation]*answers
	made    []made // the owner cases' resources
}

// reachable fails when the server does not answer at all (any answer
// will do): one line, rather than every case failing for it.
func (r *runner) reachable(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.base+"/", nil)
	if err != nil {
		return fmt.Errorf("conform: %s: %v", r.opts.Base, err)
	}
	resp, err := r.opts.Client.Do(req)
	if err != nil {
		return fmt.Errorf("conform: the server at %s does not answer: %v", r.opts.Base, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return nil
}

// wants reports whether the case named name, or a case of the family
// name, is selected by Only and Skip: a prefix of Only that names the
// family or one of its cases selects the family; a prefix of Skip leaves
// out the cases it begins, and the family only when it begins the
// family's name (--skip limit:anon leaves the other limit cases in).
func (r *runner) wants(name string) bool {
	only := slices.ContainsFunc(r.opts.Only, func(p string) bool { return strings.HasPrefix(name, p) || strings.HasPrefix(p, name+":") })
	skip := slices.ContainsFunc(r.opts.Skip, func(p string) bool { return strings.HasPrefix(name, p) })
	return (len(r.opts.Only) == 0 || only) && !skip
}

// live are the credentials no case has ended.
func (r *runner) live() []*credential {
	out := make([]*credential, 0, len(r.creds))
	for _, c := range r.creds {
		if !c.retired {
			out = append(out, c)
		}
	}
	return out
}

func (r *runner) report(op *policy.Operation, name, verdict, format string, args ...any) {
	if !r.wants(name) {
		return
	}
	r.results = append(r.results, Result{Method: op.Method, Path: op.Path, Operation: op.ID, Case: name, Verdict: verdict, Detail: fmt.Sprintf(format, args...)})
}
