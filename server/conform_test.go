package server_test

import (
	"context"
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/specguard/specguard/api"
	"github.com/specguard/specguard/conform"
	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/server"
	"github.com/specguard/specguard/service"
)

// serveExample serves app in process (SQLite, memory stores), after
// break_ changes the table it enforces, and returns the report of the
// conformance suite on it: the suite reads the committed document,
// whatever the server enforces.
func serveExample(t *testing.T, app service.App, break_ func(table *policy.Table)) *conform.Report {
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
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	table, err := policy.Compile(server.SpecSource, api.Spec)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := conform.LoadConfig("../api/conform.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := conform.Run(context.Background(), table, conform.Options{Base: srv.URL, Credentials: creds})
	if err != nil {
		t.Fatal(err)
	}
	return rep
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
	for _, kind := range []string{"no-credential", "malformed:", "other-scheme:", "scope:", "schema", "limit:"} {
		if _, ok := find(good, conform.Pass, func(r conform.Result) bool { return strings.HasPrefix(r.Case, kind) }); !ok {
			t.Errorf("no %s case passed against the example app", kind)
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
		})
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
		})
		if r, ok := find(rep, conform.Fail, func(r conform.Result) bool { return r.Operation == scope.Operation && r.Case == scope.Case }); !ok {
			t.Errorf("%s is not checked on %s, and the suite did not say so", parts[2], scope.Operation)
		} else {
			t.Logf("caught: %s %s: %s", r.Operation, r.Case, r.Detail)
		}
	})

	t.Run("requests not validated", func(t *testing.T) {
		app := server.Service()
		app.GuardOptions = append(app.GuardOptions, guard.WithoutRequestValidation())
		rep := serveExample(t, app, nil)
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
}
