package conform_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"unicode/utf8"

	"github.com/specguard/specguard/conform"
	"github.com/specguard/specguard/policy"
)

// aDoc is one operation that needs an API key; aServer answers it as the
// document says, or without the header a 401 must carry when broken.
const aDoc = `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /things:
    get:
      operationId: listThings
      security: [{key: []}]
      x-rate-limit: false
      responses:
        '200': {description: ok, content: {application/json: {schema: {type: array, items: {type: string}}}}}
        '401': {description: no}
components:
  securitySchemes:
    key: {type: apiKey, in: header, name: X-API-Key}
`

func aServer(broken bool) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path != "/things":
			http.NotFound(w, r)
		case r.Method != "GET":
			w.Header().Set("Allow", "GET")
			w.WriteHeader(http.StatusMethodNotAllowed)
		case r.Header.Get("X-API-Key") != "good":
			if !broken {
				w.Header().Set("WWW-Authenticate", `ApiKey realm="t", header="X-API-Key"`)
			}
			w.WriteHeader(http.StatusUnauthorized)
		default:
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`["a"]`))
		}
	}))
}

func run(t *testing.T, srv *httptest.Server, only, skip []string) *conform.Report {
	t.Helper()
	table, err := policy.Compile("spec.yaml", []byte(aDoc))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := conform.Run(context.Background(), table, conform.Options{Base: srv.URL, Only: only, Skip: skip,
		Credentials: []conform.Credential{{Name: "k", Scheme: "key", Value: "good"}}})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// Only and Skip choose cases by the start of their names; every answer is
// checked against the document (the response family), and a 401 without
// a challenge is a response failure of its own.
func TestOnlySkipAndResponses(t *testing.T) {
	good := aServer(false)
	defer good.Close()
	cases := func(rep *conform.Report) string {
		var names []string
		for _, r := range rep.Results {
			names = append(names, r.Case+"="+r.Verdict)
		}
		return strings.Join(names, " ")
	}
	all := run(t, good, nil, nil)
	if !all.OK() || !strings.Contains(cases(all), "method=pass") || !strings.Contains(cases(all), "response=pass") {
		t.Fatalf("against a good server: %s", cases(all))
	}
	if got := cases(run(t, good, []string{"no-credential", "method"}, nil)); got != "no-credential=pass no-credential:HEAD=pass method=pass" {
		t.Errorf("--only no-credential,method: %s", got)
	}
	if got := cases(run(t, good, nil, []string{"response", "method", "malformed"})); strings.Contains(got, "response") || strings.Contains(got, "method") || strings.Contains(got, "malformed") || !strings.Contains(got, "no-credential") {
		t.Errorf("--skip response,method,malformed: %s", got)
	}
	// A run that checked nothing is no success: a name selecting no case
	// (no operation here is owner-only), or a server that answers nothing.
	if none := run(t, good, []string{"owner:other"}, nil); none.OK() || len(none.Results) != 0 {
		t.Errorf("--only owner:other: OK %v with %s", none.OK(), cases(none))
	}
	// A server that does not answer is one error naming it, not a
	// failure per case.
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	table, err := policy.Compile("spec.yaml", []byte(aDoc))
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := conform.Run(context.Background(), table, conform.Options{Base: gone.URL}); rep != nil || err == nil || !strings.Contains(err.Error(), gone.URL+" does not answer") {
		t.Errorf("a server that is gone: %v, %v; want one error naming it", rep, err)
	}
	broken := aServer(true)
	defer broken.Close()
	rep := run(t, broken, []string{"response"}, nil)
	if rep.OK() || !strings.Contains(cases(rep), "response:401=fail") {
		t.Errorf("a 401 without WWW-Authenticate: %s", cases(rep))
	}
}

// A body where the status declares no content breaks the document (the
// guard refused it as a response violation, conform passed it: kin-openapi
// validates no body of such a status): the README's own hello handler
// wrote one. aDoc declares its 401 without content.
func TestBodyWhereNoneIsDeclared(t *testing.T) {
	table, err := policy.Compile("spec.yaml", []byte(aDoc))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		body string
		want string
	}{
		{"", "response=pass"},
		{"go away", "response:401=fail"},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("WWW-Authenticate", `ApiKey realm="t", header="X-API-Key"`)
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(c.body))
		}))
		rep, err := conform.Run(context.Background(), table, conform.Options{Base: srv.URL, Only: []string{"no-credential", "response"}})
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rep.Results {
			if strings.HasPrefix(r.Case, "response") {
				got = append(got, r.Case+"="+r.Verdict)
				if r.Verdict == "fail" && !strings.Contains(r.Detail, "the document declares no content for this status") {
					t.Errorf("%s: %s, want it to say the document declares no content", r.Case, r.Detail)
				}
			}
		}
		if !slices.Contains(got, c.want) || c.want == "response=pass" && len(got) != 1 {
			t.Errorf("a 401 with the body %q: %q, want %s", c.body, got, c.want)
		}
	}
}

// The JUnit report has a test case per result, failures and skips marked.
func TestJUnitReport(t *testing.T) {
	srv := aServer(true)
	defer srv.Close()
	rep := run(t, srv, nil, nil)
	var b bytes.Buffer
	if err := rep.WriteJUnit(&b); err != nil {
		t.Fatal(err)
	}
	var suite struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Cases    []struct {
			Name    string    `xml:"name,attr"`
			Failure *struct{} `xml:"failure"`
		} `xml:"testcase"`
	}
	if err := xml.Unmarshal(b.Bytes(), &suite); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	failed := 0
	for _, c := range suite.Cases {
		if c.Failure != nil {
			failed++
		}
	}
	if suite.Tests != len(rep.Results) || len(suite.Cases) != suite.Tests || suite.Failures != rep.Failed || failed != rep.Failed || rep.Failed == 0 {
		t.Errorf("JUnit: %d tests, %d failures (%d marked); the report: %d results, %d failed\n%s", suite.Tests, suite.Failures, failed, len(rep.Results), rep.Failed, b.String())
	}
}

// A pattern no case's name can start with (a misspelt family) is refused
// before anything is sent: the run selected nothing, yet had made every
// credential of the file (logins spent, API keys made).
func TestUnknownCaseRefusedBeforeAnythingIsSent(t *testing.T) {
	var sent atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { sent.Add(1) }))
	defer srv.Close()
	table, err := policy.Compile("spec.yaml", []byte(aDoc))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		only, skip []string
		known      bool
	}{
		{only: []string{"nosuchcase"}},
		{skip: []string{"limit", "nope:x"}},
		{only: []string{"ownr"}},
		{only: []string{"own"}, known: true},
		{only: []string{"owner:other", "no-cred", "no-credential:HEAD", "forged:key", "malformed:k", "revoked:dis", "response:401"}, known: true},
		{skip: []string{"limit", "revoked:logout-all", "other-scheme:key", "csrf"}, known: true},
		// Past the family, what the document cannot give: its scheme is
		// key, it has no scope and no tier. A misspelt tier in --skip
		// would spend the tier it meant to spare.
		{only: []string{"scope:oauth2:posts:read"}},
		{skip: []string{"limit:anon"}},
		{skip: []string{"and-scope:key:x"}},
		{skip: []string{"forged:keys"}},
		{skip: []string{"revoked:logout-everywhere"}},
		{only: []string{"schema:x"}},
	} {
		sent.Store(0)
		_, err := conform.Run(context.Background(), table, conform.Options{Base: srv.URL, Only: c.only, Skip: c.skip,
			Credentials: []conform.Credential{{Name: "k", Scheme: "key", From: &conform.Fetch{URL: "/login", Field: "token"}}}})
		if c.known {
			if errors.Is(err, conform.ErrNoSuchCase) {
				t.Errorf("only %v skip %v: %v, want accepted", c.only, c.skip, err)
			}
			continue
		}
		if !errors.Is(err, conform.ErrNoSuchCase) {
			t.Errorf("only %v skip %v: %v, want ErrNoSuchCase", c.only, c.skip, err)
		}
		if n := sent.Load(); n != 0 {
			t.Errorf("only %v skip %v: %d requests sent before the refusal", c.only, c.skip, n)
		}
	}
}

// HEAD of a GET that needs a credential is refused without one: a server
// that answers it (routing HEAD to the GET's handler past its security)
// fails, one that does not serve HEAD at all passes.
func TestHeadWithoutACredential(t *testing.T) {
	for _, c := range []struct {
		head int
		want string
	}{{200, conform.Fail}, {405, conform.Pass}, {401, conform.Pass}} {
		good := aServer(false)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodHead {
				w.WriteHeader(c.head)
				return
			}
			good.Config.Handler.ServeHTTP(w, r)
		}))
		rep := run(t, srv, []string{"no-credential:HEAD"}, nil)
		srv.Close()
		good.Close()
		i := slices.IndexFunc(rep.Results, func(r conform.Result) bool { return r.Case == "no-credential:HEAD" })
		if i < 0 || rep.Results[i].Verdict != c.want {
			t.Errorf("HEAD answered %d: %+v, want no-credential:HEAD %s", c.head, rep.Results, c.want)
		}
	}
}

// --only limits selects the limits case (an operation with x-rate-limit:
// false), which is reported by the limit phase: it ran only for "limit".
func TestOnlyLimitsSelectsTheLimitsCase(t *testing.T) {
	srv := aServer(false)
	defer srv.Close()
	rep := run(t, srv, []string{"limits"}, nil)
	if len(rep.Results) != 1 || rep.Results[0].Case != "limits" {
		t.Errorf("--only limits: %+v, want the limits case", rep.Results)
	}
}

// The text report is one line per case: an answer quoted in a detail (a
// 400 whose errors do not name the field) is put on one line and cut, not
// printed as the server wrote it, a megabyte and many lines perhaps.
func TestQuotedAnswersStayOnOneLine(t *testing.T) {
	const doc = `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /a:
    post:
      operationId: postA
      security: []
      x-rate-limit: false
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, required: [name], properties: {name: {type: string}}}
      responses:
        '201': {description: ok}
        '400': {description: no}
`
	table := compiled(t, doc)
	answer := "{\n  \"error\": \"bad\",\n  \"hint\": \"" + strings.Repeat("é", 5000) + "\"\n}\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, answer)
	}))
	defer srv.Close()
	rep, err := conform.Run(context.Background(), table, conform.Options{Base: srv.URL, Only: []string{"schema"}})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	rep.WriteText(&out)
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if rep.Failed != 1 || len(lines) != len(rep.Results)+1 || !strings.Contains(lines[0], `{ "error": "bad", "hint": "éé`) ||
		len(lines[0]) > 400 || !utf8.ValidString(lines[0]) {
		t.Errorf("%d failed; %d lines for %d cases and the summary, the first %d bytes:\n%.600s", rep.Failed, len(lines), len(rep.Results), len(lines[0]), out.String())
	}
}
