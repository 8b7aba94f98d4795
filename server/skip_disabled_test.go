package server_test

import (
	"context"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/specguard/specguard/conform"
	"github.com/specguard/specguard/server"
	"github.com/specguard/specguard/service"
)

// --skip revoked:disabled disables no account: the case ran, unreported,
// because revoked:logout (which makes its key) was wanted. And the other
// way round: with revoked:logout skipped, the disable case runs alone and
// no one is logged out.
func TestSkipOneRevokedCase(t *testing.T) {
	run := func(skip string) (disables, logouts int32, cases string) {
		env := map[string]string{"SPECGUARD_DATA_DIR": t.TempDir(), "SPECGUARD_LOG_REQUESTS": "false", "SPECGUARD_ADMIN_ADDR": "off"}
		built, err := service.Build(context.Background(), server.Service(), nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(built.Close)
		var d, l atomic.Int32
		logoutPath := at(t, "logout")
		// What was carried out (2xx), not the cases' refused attempts.
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := httptest.NewRecorder()
			built.Handler.ServeHTTP(rec, r)
			if rec.Code/100 == 2 && r.Method == http.MethodPost {
				switch {
				case strings.HasSuffix(r.URL.Path, "/disable"):
					d.Add(1)
				case r.URL.Path == logoutPath:
					l.Add(1)
				}
			}
			maps.Copy(w.Header(), rec.Header())
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
		}))
		t.Cleanup(srv.Close)
		table, creds := conformInputs(t)
		rep, err := conform.Run(context.Background(), table, conform.Options{Base: srv.URL, Credentials: creds, Only: []string{"revoked"}, Skip: []string{skip}})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, res := range rep.Results {
			names = append(names, res.Case+"="+res.Verdict)
		}
		return d.Load(), l.Load(), strings.Join(names, " ")
	}
	disables, allLogouts, cases := run("revoked:disabled")
	if disables != 0 || strings.Contains(cases, "revoked:disabled") || !strings.Contains(cases, "revoked:logout=pass") {
		t.Errorf("--skip revoked:disabled: %d disable requests, cases %s; want none, and revoked:logout passing", disables, cases)
	}
	// (Other revoked cases log out too: fewer, not none.)
	disables, logouts, cases := run("revoked:logout")
	if disables == 0 || logouts >= allLogouts || strings.Contains(cases, "revoked:logout") || !strings.Contains(cases, "revoked:disabled=pass") {
		t.Errorf("--skip revoked:logout: %d disables, %d logouts (%d with it), cases %s; want revoked:disabled alone, passing, and the logout case not run", disables, logouts, allLogouts, cases)
	}
}
