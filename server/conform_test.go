package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/specguard/specguard/api"
	"github.com/specguard/specguard/conform"
	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/internal/spectest"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security/sessions"
	"github.com/specguard/specguard/server"
	"github.com/specguard/specguard/service"
)

// serveExample serves app in process (SQLite, memory stores), after
// break_ changes the table it enforces, and returns the report of the
// conformance suite on it: the suite reads the committed document,
// whatever the server enforces.
func serveExample(t *testing.T, app service.App, break_ func(table *policy.Table), only ...string) *conform.Report {
	t.Helper()
	return serveBehind(t, app, break_, nil, only...)
}

// serveBehind is serveExample behind proxy, a middleware that breaks one of
// the server's promises, as a proxy in front of it could. only selects the
// cases run (conform's --only), all when empty: a broken server is checked
// only for what its break must be caught by, in a tenth of the time.
func serveBehind(t *testing.T, app service.App, break_ func(table *policy.Table), proxy func(http.Handler) http.Handler, only ...string) *conform.Report {
	t.Helper()
	env := map[string]string{"SPECGUARD_DATA_DIR": t.TempDir(), "SPECGUARD_LOG_REQUESTS": "false", "SPECGUARD_ADMIN_ADDR": "off"}
	built, err := service.Build(context.Background(), app, nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(built.Close)
	h := built.Handler
	if break_ != nil {
		break_(built.Table)
		if h, err = service.NewHandler(built.Deps); err != nil {
			t.Fatal(err)
		}
	}
	if proxy != nil {
		h = proxy(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	table, creds := conformInputs(t)
	rep, err := conform.Run(context.Background(), table, conform.Options{Base: srv.URL, Credentials: creds, Only: only})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// conformInputs are what the suite reads: the committed document and the
// example's credentials file.
func conformInputs(t *testing.T) (*policy.Table, []conform.Credential) {
	t.Helper()
	table, err := policy.Compile(server.SpecSource, api.Spec)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := conform.LoadConfig("../api/conform.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return table, creds
}

func find(rep *conform.Report, verdict string, match func(conform.Result) bool) (conform.Result, bool) {
	i := slices.IndexFunc(rep.Results, func(r conform.Result) bool { return r.Verdict == verdict && match(r) })
	if i < 0 {
		return conform.Result{}, false
	}
	return rep.Results[i], true
}

// The conformance suite passes against the example app, and catches a
// server that leaves out what its document declares: a tier not enforced,
// a scope not checked, requests not validated. Which tier, scope and
// operation are read from the passing run, so edits of the document do
// not break the test.
func TestConformCatchesBrokenServers(t *testing.T) {
	good := serveExample(t, server.Service(), nil)
	if !good.OK() {
		var b strings.Builder
		good.WriteText(&b)
		t.Fatalf("the conformance suite fails against the example app:\n%s", b.String())
	}
	table := spectest.Table(t, server.SpecSource, api.Spec)
	owned := slices.ContainsFunc(table.Operations(), func(op *policy.Operation) bool { return op.Owner != nil })
	families := []string{"no-credential", "malformed:", "forged:", "ignored:", "other-scheme:", "scope:", "schema", "limit:", "revoked:", "response", "method", "csrf:"}
	if slices.ContainsFunc(table.Operations(), func(op *policy.Operation) bool {
		return slices.ContainsFunc(op.Security.Alternatives, func(alt policy.Requirement) bool { return len(alt) > 1 })
	}) {
		families = append(families, "and:") // the document asks for two schemes at once somewhere
	}
	if slices.ContainsFunc(table.Operations(), func(op *policy.Operation) bool {
		return slices.ContainsFunc(op.Security.Alternatives, func(alt policy.Requirement) bool {
			return len(alt) > 1 && slices.ContainsFunc(alt, func(sr policy.SchemeRequirement) bool { return len(sr.Scopes) > 0 })
		})
	}) {
		families = append(families, "and-scope:") // and a scope of one of them
	}
	if owned {
		families = append(families, "owner:") // the document declares an owner-only operation
	}
	for _, kind := range families {
		if _, ok := find(good, conform.Pass, func(r conform.Result) bool { return strings.HasPrefix(r.Case, kind) }); !ok {
			t.Errorf("no %s case passed against the example app", kind)
		}
	}
	// Once a tier of anonymous callers refused one, a wrong credential of
	// the same caller is refused by it too (see guessesApart).
	if slices.ContainsFunc(table.Operations(), func(op *policy.Operation) bool {
		return !op.Security.Public && slices.ContainsFunc(op.Limits, func(t policy.Tier) bool { return t.Who == policy.WhoAnonymous })
	}) {
		if _, ok := find(good, conform.Pass, func(r conform.Result) bool {
			return strings.HasPrefix(r.Case, "limit:") && strings.Contains(r.Detail, "; a wrong ")
		}); !ok {
			t.Error("no limit: case tried a wrong credential once its anonymous tier refused")
		}
	}
	// --only and --skip refuse a family conform.Families does not name,
	// and a name past its family that no case of the document has: every
	// case the run reported must be a name they take (checked before
	// anything is sent, so a base where nothing answers does).
	taken := map[string]bool{}
	for _, r := range good.Results {
		if family, _, _ := strings.Cut(r.Case, ":"); !slices.Contains(conform.Families, family) {
			t.Errorf("case %s: its family %q is not in conform.Families", r.Case, family)
		}
		if taken[r.Case] {
			continue
		}
		taken[r.Case] = true
		if _, err := conform.Run(context.Background(), table, conform.Options{Base: "http://127.0.0.1:1", Only: []string{r.Case}}); errors.Is(err, conform.ErrNoSuchCase) {
			t.Errorf("--only %s, a case the run reported: %v", r.Case, err)
		}
	}
	t.Logf("against the example app: %d passed, %d skipped", good.Passed, good.Skipped)

	t.Run("a tier not enforced", func(t *testing.T) {
		tier, ok := find(good, conform.Pass, func(r conform.Result) bool {
			return strings.HasPrefix(r.Case, "limit:") && strings.HasPrefix(r.Detail, "admitted")
		})
		if !ok {
			t.Fatal("no tier was exhausted against the example app")
		}
		name := strings.TrimPrefix(tier.Case, "limit:")
		rep := serveExample(t, server.Service(), func(table *policy.Table) {
			op := table.Operation(tier.Operation)
			op.Limits = slices.DeleteFunc(op.Limits, func(l policy.Tier) bool { return l.Name == name })
		}, tier.Case)
		if r, ok := find(rep, conform.Fail, func(r conform.Result) bool { return r.Operation == tier.Operation && r.Case == tier.Case }); !ok {
			t.Errorf("%s of %s is not enforced, and the suite did not say so", name, tier.Operation)
		} else {
			t.Logf("caught: %s %s: %s", r.Operation, r.Case, r.Detail)
		}
	})

	t.Run("a scope not checked", func(t *testing.T) {
		scope, ok := find(good, conform.Pass, func(r conform.Result) bool { return strings.HasPrefix(r.Case, "scope:") })
		if !ok {
			t.Fatal("no scope case passed against the example app")
		}
		parts := strings.SplitN(scope.Case, ":", 3) // scope:SCHEME:SCOPE
		rep := serveExample(t, server.Service(), func(table *policy.Table) {
			for _, alt := range table.Operation(scope.Operation).Security.Alternatives {
				for i := range alt {
					if alt[i].Scheme.Name == parts[1] {
						alt[i].Scopes = slices.DeleteFunc(slices.Clone(alt[i].Scopes), func(s string) bool { return s == parts[2] })
					}
				}
			}
		}, scope.Case)
		if r, ok := find(rep, conform.Fail, func(r conform.Result) bool { return r.Operation == scope.Operation && r.Case == scope.Case }); !ok {
			t.Errorf("%s is not checked on %s, and the suite did not say so", parts[2], scope.Operation)
		} else {
			t.Logf("caught: %s %s: %s", r.Operation, r.Case, r.Detail)
		}
	})

	t.Run("two schemes cut to one", func(t *testing.T) {
		and, ok := find(good, conform.Pass, func(r conform.Result) bool { return strings.HasPrefix(r.Case, "and:") })
		if !ok {
			t.Skip("the document asks for no two schemes at once, or no and: case passed")
		}
		scheme := strings.TrimPrefix(and.Case, "and:")
		rep := serveExample(t, server.Service(), func(table *policy.Table) {
			sec := &table.Operation(and.Operation).Security
			for i, alt := range sec.Alternatives {
				if len(alt) > 1 {
					sec.Alternatives[i] = slices.DeleteFunc(slices.Clone(alt), func(sr policy.SchemeRequirement) bool { return sr.Scheme.Name != scheme })
				}
			}
		}, and.Case)
		if r, ok := find(rep, conform.Fail, func(r conform.Result) bool { return r.Operation == and.Operation && r.Case == and.Case }); !ok {
			t.Errorf("%s takes %s alone, and the suite did not say so", and.Operation, scheme)
		} else {
			t.Logf("caught: %s %s: %s", r.Operation, r.Case, r.Detail)
		}
	})

	t.Run("a scope of two schemes at once not checked", func(t *testing.T) {
		scope, ok := find(good, conform.Pass, func(r conform.Result) bool { return strings.HasPrefix(r.Case, "and-scope:") })
		if !ok {
			t.Skip("the document asks for no scope of two schemes at once, or no and-scope: case passed (the families above say which)")
		}
		parts := strings.SplitN(scope.Case, ":", 3) // and-scope:SCHEME:SCOPE
		rep := serveExample(t, server.Service(), func(table *policy.Table) {
			for _, alt := range table.Operation(scope.Operation).Security.Alternatives {
				for i := range alt {
					if len(alt) > 1 && alt[i].Scheme.Name == parts[1] {
						alt[i].Scopes = slices.DeleteFunc(slices.Clone(alt[i].Scopes), func(s string) bool { return s == parts[2] })
					}
				}
			}
		}, scope.Case)
		if r, ok := find(rep, conform.Fail, func(r conform.Result) bool { return r.Operation == scope.Operation && r.Case == scope.Case }); !ok {
			t.Errorf("%s is not checked with %s on %s, and the suite did not say so", parts[2], parts[1], scope.Operation)
		} else {
			t.Logf("caught: %s %s: %s", r.Operation, r.Case, r.Detail)
		}
	})

	t.Run("a tier's refusal saying another window", func(t *testing.T) {
		// A tier whose case passed "429 at once" if there is one (its
		// bucket spent by the cases before): its refusals, and only they,
		// say the limit per an hour instead of a minute, say.
		var tier conform.Result
		for _, r := range good.Results {
			if strings.HasPrefix(r.Case, "limit:") && r.Verdict == conform.Pass && (tier.Case == "" || strings.HasPrefix(r.Detail, "429 at once")) {
				tier = r
			}
		}
		if tier.Case == "" {
			t.Fatal("no limit case passed against the example app")
		}
		name := strings.TrimPrefix(tier.Case, "limit:")
		var declared, said string
		for _, l := range table.Operation(tier.Operation).Limits {
			if l.Name == name {
				w := int64(l.Window / time.Second)
				declared, said = fmt.Sprintf(`"%s";q=%d;w=%d`, name, l.Limit, w), fmt.Sprintf(`"%s";q=%d;w=%d`, name, l.Limit, 60*w)
			}
		}
		op := table.Operation(tier.Operation)
		segs := strings.Split(op.Path, "/") // the operation's path, as a pattern of its requests' paths
		for i, seg := range segs {
			if strings.HasPrefix(seg, "{") {
				segs[i] = "[^/]+"
			} else {
				segs[i] = regexp.QuoteMeta(seg)
			}
		}
		route := regexp.MustCompile("^" + strings.Join(segs, "/") + "$")
		proxy := func(next http.Handler) http.Handler {
			return rewrite(next, func(r *http.Request, rec *httptest.ResponseRecorder) {
				if rec.Code == http.StatusTooManyRequests && r.Method == op.Method && route.MatchString(r.URL.Path) {
					var values []string // a new slice: the guard shares its own
					for _, v := range rec.Header().Values("RateLimit-Policy") {
						values = append(values, strings.Replace(v, declared, said, 1))
					}
					rec.Header()["Ratelimit-Policy"] = values
				}
			})
		}
		// Every limit case runs, as in the passing run.
		rep := serveBehind(t, server.Service(), nil, proxy, "limit:")
		if r, ok := find(rep, conform.Fail, func(r conform.Result) bool { return r.Operation == tier.Operation && r.Case == tier.Case }); !ok {
			var b strings.Builder
			rep.WriteText(&b)
			t.Errorf("the refusals of %s of %s say %s, not %s, and the suite did not say so:\n%s", name, tier.Operation, said, declared, b.String())
		} else {
			t.Logf("caught: %s %s: %s", r.Operation, r.Case, r.Detail)
		}
	})

	t.Run("requests not validated", func(t *testing.T) {
		app := server.Service()
		app.GuardOptions = append(app.GuardOptions, guard.WithoutRequestValidation())
		rep := serveExample(t, app, nil, "schema")
		var caught []string
		for _, r := range rep.Results {
			if r.Case == "schema" && r.Verdict == conform.Fail {
				caught = append(caught, r.Operation)
			}
		}
		passed := 0
		for _, r := range good.Results {
			if r.Case == "schema" && r.Verdict == conform.Pass {
				passed++
			}
		}
		// Some handlers refuse a bad request themselves, naming no field;
		// most of what the guard validated must now fail.
		if len(caught) == 0 || len(caught) < passed/2 {
			t.Errorf("validation is off: %d schema cases failed of %d that passed with it on", len(caught), passed)
		}
		t.Logf("caught on %d operations: %v", len(caught), caught)
	})

	// The families that take more than one request: each broken promise is
	// reported by its own family.
	pathOf := func(kind string) string { return spectest.CredentialOp(t, table, kind).Path }
	// What a failure says, where it matters: a body's 400 is no refusal
	// of the credential, only a challenge says it was refused.
	details := map[string]string{"a malformed API key taken for one": "which the case broke"}
	for _, c := range []struct {
		name, family string
		proxy        func(http.Handler) http.Handler
		// only: the cases run against the broken server; all when empty
		// (a break that shows only in what earlier cases were answered).
		only []string
	}{
		{"an owner check removed", "owner:", actAsTheOwner(table), []string{"owner:"}},
		{"a logout that does not revoke", "revoked:", func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == "POST" && r.URL.Path == pathOf("logout") {
					w.WriteHeader(http.StatusNoContent) // and revokes nothing
					return
				}
				next.ServeHTTP(w, r)
			})
		}, []string{"revoked:"}},
		{"a spent refresh token accepted", "revoked:refresh-reuse", replayRefresh(pathOf("refresh")), []string{"revoked:refresh-reuse"}},
		{"logging out everywhere that ends only the caller's login", "revoked:logout-all", func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == "POST" && r.URL.Path == pathOf("logout-all") {
					r.URL.Path = pathOf("logout") // which ends the token that calls it
				}
				next.ServeHTTP(w, r)
			})
		}, []string{"revoked:logout-all"}},
		{"a signature or secret not checked", "forged:", uncheckedSecrets(table), nil},
		{"a wrong credential not counted as anonymous", "limit:", guessesApart(table), []string{"limit:"}},
		{"a malformed API key taken for one", "malformed:", malformedKeyAdmitted(table, pathOf("login")), []string{"malformed:"}},
		{"a CSRF token not bound to its session", "csrf:", unboundCSRF(sessionCookie(table), pathOf("session")), []string{"csrf:"}},
		{"a credential read where none is declared", "ignored:", func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if op := table.Lookup(r.Method, r.URL.Path); op != nil && op.Security.Public && r.Header.Get("Authorization") != "" {
					w.Header().Set("WWW-Authenticate", `Bearer realm="x", error="invalid_token"`)
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				next.ServeHTTP(w, r)
			})
		}, []string{"ignored:"}},
		{"an answer missing a required member", "response:200", func(next http.Handler) http.Handler {
			return rewrite(next, func(r *http.Request, rec *httptest.ResponseRecorder) {
				if r.URL.Path == pathOf("me") && rec.Code == 200 {
					var m map[string]any
					if json.Unmarshal(rec.Body.Bytes(), &m) == nil {
						delete(m, "id")
						b, _ := json.Marshal(m)
						rec.Body.Reset()
						rec.Body.Write(b)
					}
				}
			})
		}, nil},
		{"a 429 without Retry-After", "response:429", func(next http.Handler) http.Handler {
			return rewrite(next, func(_ *http.Request, rec *httptest.ResponseRecorder) {
				if rec.Code == http.StatusTooManyRequests {
					rec.Header().Del("Retry-After")
				}
			})
		}, []string{"limit:", "response"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.family == "owner:" && !owned {
				t.Skip("the document declares no owner-only operation (x-owner)")
			}
			rep := serveBehind(t, server.Service(), nil, c.proxy, c.only...)
			if r, ok := find(rep, conform.Fail, func(r conform.Result) bool {
				return strings.HasPrefix(r.Case, c.family) && strings.Contains(r.Detail, details[c.name])
			}); !ok {
				var b strings.Builder
				rep.WriteText(&b)
				t.Errorf("the suite did not report it as %s:\n%s", c.family, b.String())
			} else {
				t.Logf("caught: %s %s: %s", r.Operation, r.Case, r.Detail)
			}
		})
	}
}

// uncheckedSecrets hands the server, for a credential whose value up to its
// last "." (a token's header and claims, a key's or a session's id) it
// has seen admitted, the value it was admitted with: a signature or secret
// not checked.
func uncheckedSecrets(table *policy.Table) func(http.Handler) http.Handler {
	keyHeader, sessionName := "", sessionCookie(table)
	for _, s := range table.Schemes {
		if s.Type == policy.SchemeAPIKeyHeader {
			keyHeader = s.Param
		}
	}
	var mu sync.Mutex
	seen := map[string]string{} // a value up to its last "." -> the value admitted
	real := func(v string) string {
		mu.Lock()
		defer mu.Unlock()
		if i := strings.LastIndexByte(v, '.'); i >= 0 && seen[v[:i]] != "" {
			return seen[v[:i]]
		}
		return v
	}
	admitted := func(v string) {
		mu.Lock()
		defer mu.Unlock()
		if i := strings.LastIndexByte(v, '.'); i >= 0 {
			seen[v[:i]] = v
		}
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			bearer, hasBearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if hasBearer {
				bearer = real(bearer)
				r.Header.Set("Authorization", "Bearer "+bearer)
			}
			key := r.Header.Get(keyHeader)
			if key != "" {
				key = real(key)
				r.Header.Set(keyHeader, key)
			}
			cookies := r.Cookies()
			r.Header.Del("Cookie")
			for _, c := range cookies {
				if c.Name == sessionName {
					c.Value = real(c.Value)
				}
				r.AddCookie(c)
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			if rec.Code < 300 {
				for _, v := range []string{bearer, key} {
					admitted(v)
				}
				for _, c := range cookies {
					if c.Name == sessionName {
						admitted(c.Value)
					}
				}
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
		})
	}
}

// malformedKeyAdmitted lets a request whose API key is no key at all in as
// the first account that logged in at path (its bearer token in the key's
// place): an unreadable key taken for a good one.
func malformedKeyAdmitted(table *policy.Table, path string) func(http.Handler) http.Handler {
	keyHeader := ""
	for _, s := range table.Schemes {
		if s.Type == policy.SchemeAPIKeyHeader {
			keyHeader = s.Param
		}
	}
	var mu sync.Mutex
	token := ""
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			if key := r.Header.Get(keyHeader); key == "%%conform%%" && token != "" {
				r.Header.Del(keyHeader)
				r.Header.Set("Authorization", "Bearer "+token)
			}
			mu.Unlock()
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			var m struct {
				AccessToken string `json:"access_token"`
			}
			if r.URL.Path == path && rec.Code == 200 && json.Unmarshal(rec.Body.Bytes(), &m) == nil {
				mu.Lock()
				if token == "" {
					token = m.AccessToken
				}
				mu.Unlock()
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
		})
	}
}

// unboundCSRF hands the server, for a request whose CSRF header equals its
// CSRF cookie, the session's own token in both: a double submit checked
// for equality alone, not bound to the session. It learns each session's
// token from the answers of the login at path.
func unboundCSRF(sessionName, path string) func(http.Handler) http.Handler {
	var mu sync.Mutex
	tokens := map[string]string{} // session cookie value -> its CSRF token
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			session, err := r.Cookie(sessionName)
			planted, err2 := r.Cookie(sessions.CSRFCookie)
			if err == nil && err2 == nil && r.Header.Get("X-CSRF-Token") == planted.Value {
				mu.Lock()
				token := tokens[session.Value]
				mu.Unlock()
				if token != "" {
					r.Header.Set("X-CSRF-Token", token)
					r.Header.Del("Cookie")
					r.AddCookie(session)
					r.AddCookie(&http.Cookie{Name: sessions.CSRFCookie, Value: token})
				}
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			if r.URL.Path == path {
				var session, csrf string
				for _, c := range rec.Result().Cookies() {
					switch c.Name {
					case sessionName:
						session = c.Value
					case sessions.CSRFCookie:
						csrf = c.Value
					}
				}
				if session != "" && csrf != "" {
					mu.Lock()
					tokens[session] = csrf
					mu.Unlock()
				}
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
		})
	}
}

// sessionCookie is the name of the document's session cookie.
func sessionCookie(table *policy.Table) string {
	for _, s := range table.Schemes {
		if s.Type == policy.SchemeAPIKeyCookie {
			return s.Param
		}
	}
	return ""
}

// guessesApart hands the server each request carrying a credential as if
// from an address of that credential's own: a wrong one is counted as
// anonymous, but each guess in a bucket of its own, so none is ever
// refused 429. A request without one comes from where it comes from.
func guessesApart(table *policy.Table) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var presented []string
			for _, s := range table.Schemes {
				if s.Type == policy.SchemeAPIKeyCookie {
					if c, err := r.Cookie(s.Param); err == nil {
						presented = append(presented, c.Value)
					}
				} else {
					presented = append(presented, r.Header.Values(s.Param)...)
				}
			}
			if len(presented) > 0 {
				sum := sha256.Sum256([]byte(strings.Join(presented, "\n")))
				r.RemoteAddr = fmt.Sprintf("10.%d.%d.%d:1234", sum[0], sum[1], sum[2])
			}
			next.ServeHTTP(w, r)
		})
	}
}

// rewrite lets edit change the server's answer before it is sent.
func rewrite(next http.Handler, edit func(*http.Request, *httptest.ResponseRecorder)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		edit(r, rec)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}

// replayRefresh answers a refresh token presented again with the answer it
// got the first time: a spent refresh token accepted.
func replayRefresh(path string) func(http.Handler) http.Handler {
	var mu sync.Mutex
	seen := map[string]*httptest.ResponseRecorder{}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != "POST" || r.URL.Path != path {
				next.ServeHTTP(w, r)
				return
			}
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			mu.Lock()
			old := seen[string(body)]
			mu.Unlock()
			if old == nil {
				old = httptest.NewRecorder()
				next.ServeHTTP(old, r)
				if old.Code == 200 {
					mu.Lock()
					seen[string(body)] = old
					mu.Unlock()
				}
			}
			for k, v := range old.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(old.Code)
			_, _ = w.Write(old.Body.Bytes())
		})
	}
}

// actAsTheOwner sends a request to an owner-only operation with the
// credential of whoever made the resource: the owner check, in effect,
// removed.
func actAsTheOwner(table *policy.Table) func(http.Handler) http.Handler {
	var mu sync.Mutex
	made := map[string]string{} // resource id -> the Authorization that made it
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if op := table.Lookup(r.Method, strings.TrimSuffix(r.URL.Path, "/"+path.Base(r.URL.Path))+"/{id}"); op != nil && op.Owner != nil {
				mu.Lock()
				if auth := made[path.Base(r.URL.Path)]; auth != "" {
					r.Header.Set("Authorization", auth)
					r.Header.Del("X-API-Key")
				}
				mu.Unlock()
				next.ServeHTTP(w, r)
				return
			}
			if r.Method != "POST" {
				next.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			var m struct{ ID string }
			if rec.Code == 201 && json.Unmarshal(rec.Body.Bytes(), &m) == nil && m.ID != "" {
				mu.Lock()
				made[m.ID] = r.Header.Get("Authorization")
				mu.Unlock()
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
		})
	}
}

// An interrupted run (Ctrl-C cancels specguard conform's context) that
// had just disabled an account for the revoked cases still enables it
// again, and reports nothing rather than every case left as failed.
func TestInterruptedConformEnablesTheAccountAgain(t *testing.T) {
	env := map[string]string{"SPECGUARD_DATA_DIR": t.TempDir(), "SPECGUARD_LOG_REQUESTS": "false", "SPECGUARD_ADMIN_ADDR": "off"}
	built, err := service.Build(context.Background(), server.Service(), nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(built.Close)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	disabled := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		built.Handler.ServeHTTP(rec, r)
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/disable") && rec.Code/100 == 2 {
			disabled = true
			cancel() // the user presses Ctrl-C as the account is disabled
		}
		maps.Copy(w.Header(), rec.Header())
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(srv.Close)
	table, creds := conformInputs(t)
	rep, err := conform.Run(ctx, table, conform.Options{Base: srv.URL, Credentials: creds, Only: []string{"revoked"}})
	if !disabled {
		t.Fatalf("the run disabled no account (%v, %v): the case this test interrupts did not run", rep, err)
	}
	if !errors.Is(err, context.Canceled) || rep != nil {
		t.Errorf("interrupted run: %v, %v; want no report and context.Canceled", rep, err)
	}
	// Every account of the credentials file logs in: none was left disabled.
	// From another loopback address: the run spent 127.0.0.1's logins.
	client := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext}}
	logins := 0
	for _, c := range creds {
		if c.From == nil || c.From.URL != at(t, "login") {
			continue
		}
		body, err := json.Marshal(c.From.Body)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Post(srv.URL+at(t, "login"), "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		logins++
		if resp.StatusCode != 200 {
			t.Errorf("%s cannot log in after the interrupted run: %d (the account conform disabled was not enabled again)", body, resp.StatusCode)
		}
	}
	if logins == 0 {
		t.Fatal("no credential of the file logs in at /auth/login: nothing was checked")
	}
	if live := liveFileKeys(t, built, creds); len(live) > 0 {
		t.Errorf("the API keys the file made, live after the interrupted run: %v", live)
	}
}

// A run of part of the cases revokes the API keys the credentials file
// made: only a full run ended them (logging out everywhere), and the rest
// left them live for a year.
func TestConformRevokesTheKeysItMade(t *testing.T) {
	env := map[string]string{"SPECGUARD_DATA_DIR": t.TempDir(), "SPECGUARD_LOG_REQUESTS": "false", "SPECGUARD_ADMIN_ADDR": "off"}
	built, err := service.Build(context.Background(), server.Service(), nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(built.Close)
	srv := httptest.NewServer(built.Handler)
	t.Cleanup(srv.Close)
	table, creds := conformInputs(t)
	rep, err := conform.Run(context.Background(), table, conform.Options{Base: srv.URL, Credentials: creds, Only: []string{"schema"}})
	if err != nil || !rep.OK() {
		t.Fatalf("conform --only schema: %v %v", rep, err)
	}
	if live := liveFileKeys(t, built, creds); len(live) > 0 {
		t.Errorf("the API keys the file made, live after the run: %v", live)
	}
}

// liveFileKeys are the live API keys of the accounts the credentials file
// logs in as that bear the names of the keys it makes; the file must make
// some.
func liveFileKeys(t *testing.T, built *service.Server, creds []conform.Credential) []string {
	t.Helper()
	names := map[string]bool{}
	for _, c := range creds {
		if body, ok := fromBody(c); ok && c.From.URL == at(t, "create-api-key") {
			names[fmt.Sprint(body["name"])] = true
		}
	}
	if len(names) == 0 {
		t.Fatal("the credentials file makes no API key: nothing to check")
	}
	var live []string
	for _, c := range creds {
		body, ok := fromBody(c)
		if !ok || c.From.URL != at(t, "login") && c.From.URL != at(t, "session") {
			continue
		}
		a, err := built.Deps.Accounts.AccountByEmail(context.Background(), fmt.Sprint(body["email"]))
		if err != nil {
			t.Fatal(err)
		}
		keys, err := built.Deps.Accounts.APIKeys(context.Background(), a.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if names[k.Name] && !slices.Contains(live, a.Email+":"+k.Name) {
				live = append(live, a.Email+":"+k.Name)
			}
		}
	}
	return live
}

// fromBody is the JSON body of the request that makes c, if any.
func fromBody(c conform.Credential) (map[string]any, bool) {
	if c.From == nil {
		return nil, false
	}
	body, ok := c.From.Body.(map[string]any)
	return body, ok
}
