package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/service"
)

// healthOps are the operations the test app adds to the credential
// operations' document: the two a service answers about itself.
const healthOps = `  /healthz:
    get:
      operationId: healthz
      security: []
      x-rate-limit: false
      responses:
        '200': { description: Alive., content: { application/json: { schema: { type: object } } } }
  /readyz:
    get:
      operationId: readyz
      security: []
      x-rate-limit: false
      responses:
        '200': { description: Ready., content: { application/json: { schema: { type: object } } } }
        '503': { description: Not ready., content: { application/json: { schema: { type: object } } } }
`

// testApp is the smallest service: specguard's credential operations and
// the health operations, routed by hand. The runtime's tests use it, not
// the example app, which users replace.
func testApp() service.App {
	spec := strings.Replace(string(credentials.Fragment), "\npaths:\n", "\npaths:\n"+healthOps, 1)
	return service.App{
		Name: "svc", Spec: []byte(spec), SpecSource: "svc.yaml",
		Routes: func(r chi.Router, d *service.Deps) error {
			r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"status":"ok"}`)
			})
			r.Get("/readyz", func(w http.ResponseWriter, r *http.Request) {
				checks, code := map[string]string{}, http.StatusOK
				for name, err := range d.Ready(r.Context()) {
					checks[name] = "ok"
					if err != nil {
						checks[name], code = "unavailable", http.StatusServiceUnavailable
					}
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(code)
				_ = json.NewEncoder(w).Encode(map[string]any{"checks": checks})
			})
			return nil
		},
	}
}

// The test app compiles, builds and serves: every operation of its
// document is routed.
func TestTestAppBuilds(t *testing.T) {
	env := map[string]string{"SPECGUARD_DATA_DIR": t.TempDir(), "SPECGUARD_ADMIN_ADDR": "off"}
	srv, err := service.Build(context.Background(), testApp(), nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
}

// serve and migrate refuse a SPECGUARD_* variable that is no setting,
// naming the one it was probably meant to be (a misspelled one cannot
// leave the server running on defaults); those of the test and load
// tools pass; help reads none.
func TestUnknownVariables(t *testing.T) {
	command := func(args, environ []string) error {
		return service.Command(context.Background(), testApp(), args, func(string) string { return "" }, environ, io.Discard, io.Discard)
	}
	for _, c := range []struct {
		environ []string
		want    string
	}{
		{[]string{"PATH=/bin", "SPECGUARD_ADDR=:1", "SPECGUARD_TEST_REDIS_URL=x", "SPECGUARD_BENCH_POSTGRES_URL=y", "SPECGUARD_OIDC_CORP_URL=z"}, ""},
		{[]string{"SPECGUARD_REDIS="}, "SPECGUARD_REDIS is not a setting (did you mean SPECGUARD_REDIS_URL?); `svc serve --help` lists every SPECGUARD_* variable"},
		{[]string{"SPECGUARD_ACESS_TTL=5m", "SPECGUARD_NOPE=1"}, "SPECGUARD_ACESS_TTL is not a setting (did you mean SPECGUARD_ACCESS_TTL?); SPECGUARD_NOPE is not a setting; `svc serve --help` lists every SPECGUARD_* variable"},
	} {
		for _, cmd := range []string{"serve", "migrate"} {
			// An unknown flag: refused after the variables were checked,
			// before anything starts.
			err := command([]string{cmd, "--no-such-flag"}, c.environ)
			if c.want == "" && (err == nil || !strings.Contains(err.Error(), "no-such-flag")) {
				t.Errorf("%s %v: %v, want the flag refused", cmd, c.environ, err)
			}
			if c.want != "" && fmt.Sprint(err) != c.want {
				t.Errorf("%s %v: %v, want %q", cmd, c.environ, err, c.want)
			}
		}
		if err := command([]string{"help"}, c.environ); err != nil {
			t.Errorf("help %v: %v", c.environ, err)
		}
	}
	// No command is serve.
	if err := command(nil, []string{"SPECGUARD_REDIS="}); err == nil || !strings.Contains(err.Error(), "SPECGUARD_REDIS_URL") {
		t.Errorf("no command: %v", err)
	}
}

// migrate's usage, printed on --help (and then on a bad flag), showed the
// database URL from the environment as the flag's default: its password
// landed in deploy logs.
func TestMigrateUsageHidesTheDatabaseURL(t *testing.T) {
	const secret = "S3cretPw"
	env := map[string]string{"SPECGUARD_DATABASE_URL": "postgres://app:" + secret + "@db.internal:5432/app", "SPECGUARD_DATA_DIR": "/srv/data"}
	for _, args := range [][]string{{"--help"}, {"--bogus"}} {
		var said strings.Builder
		err := service.Migrate(context.Background(), testApp(), args, func(k string) string { return env[k] }, &said, &said)
		if err == nil {
			t.Fatalf("migrate %v: no error", args)
		}
		if out := said.String(); strings.Contains(out, secret) || (args[0] == "--help") != strings.Contains(out, "-database-url") {
			t.Errorf("migrate %v printed:\n%s", args, out)
		}
	}
}

// A wrong database URL is refused naming where it came from: the flag
// given, or the variable when no flag was (the variable was named for a
// flag's URL, though it was not set).
func TestMigrateNamesWhereTheURLCameFrom(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"--database-url", "mysql://x"}, "migrate: --database-url: "},
		{map[string]string{"SPECGUARD_DATABASE_URL": "mysql://x"}, nil, "migrate: SPECGUARD_DATABASE_URL: "},
		{map[string]string{"SPECGUARD_DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "x.db")}, []string{"--database-url", "mysql://x"}, "migrate: --database-url: "},
	} {
		err := service.Migrate(context.Background(), testApp(), c.args, func(k string) string { return c.env[k] }, io.Discard, io.Discard)
		if err == nil || !strings.HasPrefix(err.Error(), c.want+`"mysql:..." is not a database URL`) {
			t.Errorf("%v %v: %v, want %q...", c.env, c.args, err, c.want)
		}
	}
}

// migrate --status on a mistyped SQLite path created an empty database
// there and reported it as one with every migration to apply. It is
// refused now, naming the path, and nothing is created; on the database
// migrate made, it reports.
func TestMigrateStatusCreatesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "specgaurd.db")
	env := map[string]string{"SPECGUARD_DATABASE_URL": "sqlite:" + path}
	migrate := func(args ...string) (string, error) {
		var stdout strings.Builder
		err := service.Migrate(context.Background(), testApp(), args, func(k string) string { return env[k] }, &stdout, io.Discard)
		return stdout.String(), err
	}
	want := "migrate --status: no SQLite database at " + path + ": migrate creates it"
	if _, err := migrate("--status"); err == nil || err.Error() != want {
		t.Errorf("status of a missing file: %v, want %q", err, want)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("status of a missing file left %d files behind (%s)", len(entries), entries[0].Name())
	}
	if _, err := migrate(); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if out, err := migrate("--status"); err != nil || !strings.Contains(out, "(up to date)") {
		t.Errorf("status after migrate: %v\n%s", err, out)
	}
}

// A SPECGUARD_OIDC_<NAME>_* variable passes the check of SPECGUARD_*
// names (any <NAME> might be a scheme's), and was then never read when
// <NAME> was none: the document's provider stayed in use while the
// operator thought it replaced. serve refuses it once the document is
// compiled, naming it (the e2e suite's outside provider is given by a
// variable that names its scheme, and starts).
func TestMisspeltOIDCVariableRefused(t *testing.T) {
	env := map[string]string{"SPECGUARD_DATA_DIR": t.TempDir(), "SPECGUARD_ADDR": "127.0.0.1:0", "SPECGUARD_ADMIN_ADDR": "off",
		"SPECGUARD_OIDC_CORPIDP_URL": "https://id.example.com/.well-known/openid-configuration"}
	var environ []string
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	err := service.Command(context.Background(), testApp(), []string{"serve"}, func(k string) string { return env[k] }, environ, io.Discard, io.Discard)
	if want := "SPECGUARD_OIDC_CORPIDP_URL names no openIdConnect scheme of svc.yaml"; err == nil || err.Error() != want {
		t.Errorf("serve: %v, want %q", err, want)
	}
}

// A data directory the database file cannot be made in is named as
// SPECGUARD_DATA_DIR, the variable the operator set: it was blamed on
// SPECGUARD_DATABASE_URL, which they never set.
func TestUnusableDataDirNamed(t *testing.T) {
	// procfs takes no new directory, whoever asks (root too).
	env := map[string]string{"SPECGUARD_DATA_DIR": "/proc/specguard-data", "SPECGUARD_ADMIN_ADDR": "off"}
	_, err := service.Build(context.Background(), testApp(), nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil || !strings.HasPrefix(err.Error(), "SPECGUARD_DATA_DIR: ") {
		t.Errorf("a data directory that cannot be made: %v, want an error naming SPECGUARD_DATA_DIR", err)
	}

	// The database's instance lock cannot be taken: the data directory is
	// still the setting to blame, not SPECGUARD_DATABASE_URL, which is unset.
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "specguard.db.instance-lock"), 0o700); err != nil {
		t.Fatal(err)
	}
	env = map[string]string{"SPECGUARD_DATA_DIR": dir, "SPECGUARD_ADMIN_ADDR": "off"}
	_, err = service.Build(context.Background(), testApp(), nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil || !strings.HasPrefix(err.Error(), "SPECGUARD_DATA_DIR: ") || !strings.Contains(err.Error(), "instance-lock") {
		t.Errorf("an instance lock that cannot be taken: %v, want an error naming SPECGUARD_DATA_DIR and the lock", err)
	}
}

// -h, -help and --help print the commands, as help does: they were read as
// serve's flags, so the command list could be reached only by "help".
// serve --help still prints serve's flags.
func TestHelpListsTheCommands(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"-help"}, {"--help"}, {"serve", "--help"}, {"migrate", "--help"}} {
		var stdout, stderr strings.Builder
		err := service.Command(context.Background(), testApp(), args, func(string) string { return "" }, nil, &stdout, &stderr)
		commands := strings.Contains(stdout.String(), "Commands:")
		if want := len(args) == 1; commands != want || (want && err != nil) {
			t.Errorf("%v: %v, command list printed %v, want %v:\n%s%s", args, err, commands, want, stdout.String(), stderr.String())
		}
		// A command's usage, asked for, goes to stdout too.
		if len(args) == 2 && (!strings.Contains(stdout.String(), "Usage: svc "+args[0]) || !strings.Contains(stdout.String(), "Flags:") || stderr.Len() != 0) {
			t.Errorf("%v: usage not on stdout alone:\n%s\nstderr:\n%s", args, stdout.String(), stderr.String())
		}
	}
}

// An app whose document names its roles otherwise ("member", not "user")
// gives the credential operations the role of registered accounts in
// CredentialOptions; without it, the service refuses to start naming the
// option.
func TestCredentialOptionsWin(t *testing.T) {
	app := testApp()
	const user = "\n        user: [apikeys:manage, account:manage]\n"
	if !strings.Contains(string(app.Spec), user) {
		t.Fatalf("the fragment's x-roles no longer hold %q: update this test", user)
	}
	app.Spec = []byte(strings.Replace(string(app.Spec), user, "\n        member: [apikeys:manage, account:manage]\n", 1))
	env := map[string]string{"SPECGUARD_DATA_DIR": t.TempDir(), "SPECGUARD_ADMIN_ADDR": "off"}
	getenv := func(k string) string { return env[k] }
	if _, err := service.Build(context.Background(), app, nil, getenv, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "WithRegistrationRole") {
		t.Fatalf("no role user and no option: %v, want a refusal naming WithRegistrationRole", err)
	}
	app.CredentialOptions = []credentials.Option{credentials.WithRegistrationRole("member")}
	srv, err := service.Build(context.Background(), app, nil, getenv, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	w := httptest.NewRecorder()
	r := httptest.NewRequest("POST", "/auth/register", strings.NewReader(`{"email":"new@example.com","password":"correct horse battery"}`))
	r.Header.Set("Content-Type", "application/json")
	r.RemoteAddr = "127.0.0.1:1234"
	srv.Handler.ServeHTTP(w, r)
	if w.Code != http.StatusCreated || !strings.Contains(w.Body.String(), `"role":"member"`) {
		t.Errorf("register: %d %s, want 201 and the role member", w.Code, w.Body)
	}
}
