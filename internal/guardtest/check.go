package guardtest

import (
	"net/http"
	"strings"
	"testing"

	"github.com/specguard/specguard/problem"
	"github.com/specguard/specguard/security/sessions"
)

// Credentials lists every secret a request carries.
func Credentials(r *http.Request) []string {
	var out []string
	for _, v := range r.Header.Values("Authorization") {
		_, tok, _ := strings.Cut(v, " ")
		out = append(out, v, tok)
	}
	out = append(out, r.Header.Values("X-API-Key")...)
	out = append(out, r.Header.Values(sessions.CSRFHeader)...)
	for _, c := range r.Cookies() {
		out = append(out, c.Value)
	}
	if v := r.URL.Query()["access_token"]; len(v) > 0 {
		out = append(out, v...)
	}
	return out
}

func AssertNoCredentialEchoed(tb testing.TB, req *http.Request, h http.Header, body []byte) {
	tb.Helper()
	for _, secret := range Credentials(req) {
		if len(secret) < 16 { // too short to be told apart from ordinary text
			continue
		}
		if strings.Contains(string(body), secret) {
			tb.Errorf("the response body echoes a credential of the request: %s", body)
		}
		for k, vs := range h {
			for _, v := range vs {
				if strings.Contains(v, secret) {
					tb.Errorf("response header %s echoes a credential of the request", k)
				}
			}
		}
	}
}

// Want describes an expected guard answer.
type Want struct {
	Status int
	// Problem is the Problem type after problem.DefaultPrefix; "" for a 200.
	Problem string
	// AuthErr is the error= code of WWW-Authenticate; BareOnly for
	// challenges without error= (one per scheme the operation accepts);
	// NoChallenge when the header must be absent.
	AuthErr string
	// Scope, when set, is the Scope= the challenge must name.
	Scope string
	// Scheme, when set, is the auth-Scheme the challenge must have.
	Scheme string
}

func (w Want) Check(tb testing.TB, got *Response) {
	tb.Helper()
	if got.Status != w.Status {
		tb.Fatalf("status = %d, want %d; body %s", got.Status, w.Status, got.Body)
	}
	if w.Problem == "" {
		if ct := got.Header.Get("Content-Type"); ct == "application/problem+json" {
			tb.Errorf("unexpected problem body %s", got.Body)
		}
	} else {
		if got.Problem.Type != problem.DefaultPrefix+w.Problem {
			tb.Errorf("problem type = %q, want %q", got.Problem.Type, problem.DefaultPrefix+w.Problem)
		}
		if got.Problem.Status != w.Status {
			tb.Errorf("problem status = %d, want %d", got.Problem.Status, w.Status)
		}
	}
	challenges := got.Header.Values("WWW-Authenticate")
	switch w.AuthErr {
	case NoChallenge:
		if len(challenges) != 0 {
			tb.Errorf("WWW-Authenticate = %q, want none", challenges)
		}
	case BareOnly:
		// One challenge per scheme the operation accepts, none with error=.
		if len(challenges) == 0 {
			tb.Errorf("WWW-Authenticate absent, want a challenge per accepted scheme")
		}
		for _, c := range challenges {
			if _, params := ParseChallenge(tb, c); params["error"] != "" || params["realm"] != "specguard" {
				tb.Errorf("WWW-Authenticate = %q, want bare challenges of realm specguard", challenges)
			}
		}
	default:
		if len(challenges) != 1 {
			tb.Fatalf("WWW-Authenticate = %q, want one challenge with error=%q", challenges, w.AuthErr)
		}
		scheme, params := ParseChallenge(tb, challenges[0])
		if w.Scheme != "" && scheme != w.Scheme {
			tb.Errorf("WWW-Authenticate scheme = %q, want %q (header %q)", scheme, w.Scheme, challenges[0])
		}
		if params["error"] != w.AuthErr {
			tb.Errorf("WWW-Authenticate error = %q, want %q (header %q)", params["error"], w.AuthErr, challenges[0])
		}
		if params["realm"] != "specguard" {
			tb.Errorf("WWW-Authenticate realm = %q, want specguard", params["realm"])
		}
		if w.Scope != "" && params["scope"] != w.Scope {
			tb.Errorf("WWW-Authenticate scope = %q, want %q", params["scope"], w.Scope)
		}
	}
}

// ParseChallenge reads `Scheme k="v", k="v"` into its scheme and a map.
func ParseChallenge(tb testing.TB, h string) (string, map[string]string) {
	tb.Helper()
	scheme, rest, ok := strings.Cut(h, " ")
	if !ok || (scheme != "Bearer" && scheme != "ApiKey" && scheme != "Cookie") {
		tb.Fatalf("challenge %q does not start with Bearer, ApiKey or Cookie", h)
	}
	out := map[string]string{}
	for rest != "" {
		k, v, ok := strings.Cut(rest, `="`)
		if !ok {
			tb.Fatalf("challenge %q: bad parameter at %q", h, rest)
		}
		end := strings.IndexByte(v, '"')
		if end < 0 {
			tb.Fatalf("challenge %q: unterminated value", h)
		}
		out[k] = v[:end]
		rest = strings.TrimPrefix(v[end+1:], ", ")
	}
	return scheme, out
}

func OKAs(op, subject, scheme string) func(tb testing.TB, s Seen) {
	return func(tb testing.TB, s Seen) {
		tb.Helper()
		if s.Op != op || s.Subject != subject || s.Scheme != scheme || s.Anonymous {
			tb.Errorf("handler saw %+v, want op %s, subject %q, scheme %q", s, op, subject, scheme)
		}
	}
}

func Anonymous(op string) func(tb testing.TB, s Seen) {
	return func(tb testing.TB, s Seen) {
		tb.Helper()
		if s.Op != op || !s.Anonymous {
			tb.Errorf("handler saw %+v, want anonymous on %s", s, op)
		}
	}
}

type Case struct {
	Name   string
	Method string
	Path   string
	Body   string
	Mods   []Mod
	Want   Want
	Saw    func(tb testing.TB, s Seen) // checks a 200
}

func RunCases(t *testing.T, e *Env, cases []Case) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			method := tc.Method
			if method == "" {
				method = http.MethodGet
			}
			got := e.Do(t, method, tc.Path, tc.Body, tc.Mods...)
			tc.Want.Check(t, got)
			if tc.Saw != nil {
				tc.Saw(t, got.Seen)
			}
		})
	}
}

var (
	OK200        = Want{Status: http.StatusOK}
	Unauth       = Want{Status: http.StatusUnauthorized, Problem: "unauthenticated", AuthErr: BareOnly}
	InvalidToken = Want{Status: http.StatusUnauthorized, Problem: ProblemInvalid, AuthErr: "invalid_token"}
	BadRequest   = Want{Status: http.StatusBadRequest, Problem: "invalid-request", AuthErr: "invalid_request"}
)
