// Package service runs a service guarded by specguard from its OpenAPI
// document: it reads the SPECGUARD_* settings (flags override them), opens
// the database (SQLite by default, PostgreSQL for fleets) and the stores
// (memory, or Redis / Redis Cluster), applies the migrations, serves the
// document's credential operations (package credentials) next to the
// app's own generated routes behind one guard, with metrics, /docs,
// readiness and graceful shutdown. It is what the example app (server)
// and every service `specguard new` makes run; a service provides an App.
//
// Where to start: App, then Main (a whole command: serve, migrate), Run
// (serve), or Build (the handler, in process, for tests).
package service

import (
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/problem"
	"github.com/specguard/specguard/sqldb"
)

// App is what a service brings: its document, its generated routes, its
// schema and its demo accounts.
type App struct {
	// Name names the service in usage messages ("blog").
	Name string
	// Spec is the OpenAPI document (embedded), SpecSource its path for
	// messages ("api/openapi.yaml").
	Spec       []byte
	SpecSource string
	// SpecSHA256 is the hex SHA-256 of the document the app's code was
	// generated from (gen.SpecSHA256, written by `make generate`): a binary
	// whose document changed since refuses to start. Empty: not checked.
	SpecSHA256 string
	// Migrations are the app's own sets, applied after the credential
	// operations' (its tables may refer to users).
	Migrations []sqldb.Migrations
	// Routes registers the app's own (generated) routes on r: every
	// operation of Spec but the credential operations, which the service
	// mounts itself. d gives the database, the logger and readiness.
	Routes func(r chi.Router, d *Deps) error
	// DemoUsers are seeded in the development setup (SQLite without
	// Redis, on a loopback address) when no users file is given, and
	// retired anywhere else.
	DemoUsers []credentials.SeedAccount
	// Problems writes the problems of the guard and of the credential
	// operations (problem.DefaultPrefix when zero): give the app's own.
	Problems problem.Writer
	// GuardOptions come after the service's own options of the guard
	// (authenticators, limiter, realm, problems, logs, metrics), so they
	// win: guard.WithMaxBodyBytes, for one.
	GuardOptions []guard.Option
	// CredentialOptions come after the service's own options of the
	// credential operations (those its SPECGUARD_* variables set), so they
	// win: credentials.WithRegistrationRole for a document whose x-roles
	// has no role "user", or credentials.WithArgon2, for two.
	CredentialOptions []credentials.Option

	// environ is the process's environment when Command runs the app: the
	// SPECGUARD_OIDC_<NAME>_* variables are checked against the document's
	// schemes once it is compiled.
	environ []string
}

// generatedFrom refuses a binary whose code was generated from another
// document than the one it embeds: the document was edited and `make
// generate` not run, so the routes and types are stale.
func (a *App) generatedFrom() error {
	if a.SpecSHA256 == "" {
		return nil
	}
	if sum := fmt.Sprintf("%x", sha256.Sum256(a.Spec)); sum != a.SpecSHA256 {
		return fmt.Errorf("%s changed since the code was generated from it: run `make generate`, implement the new methods of the generated interface, and build again", a.SpecSource)
	}
	return nil
}

// realm is the realm of every WWW-Authenticate challenge, the guard's and
// the credential operations' alike.
const realm = "specguard"

// HandlerErrors are the error handlers of an oapi-codegen strict server:
// a request body that cannot be decoded is a 400 problem, a handler error
// wrapping security.ErrUnavailable (a database or store that did not
// answer) a 503 that may be retried, sqldb.ErrExists (a unique key taken)
// a 409, a *sqldb.ConstraintError a 409 (a foreign key) or a 422 (a check,
// a NOT NULL, a value the database cannot hold), any other a 500; each through the App's problem writer,
// logged.
type HandlerErrors struct {
	Request  func(w http.ResponseWriter, r *http.Request, err error)
	Response func(w http.ResponseWriter, r *http.Request, err error)
	// Param answers a path or query parameter the router could not bind.
	Param func(w http.ResponseWriter, r *http.Request, err error)
}

// handlerErrors are d's HandlerErrors.
func handlerErrors(p problem.Writer, log *slog.Logger) HandlerErrors {
	return HandlerErrors{
		Request: func(w http.ResponseWriter, _ *http.Request, _ error) {
			p.InvalidRequest(w, "The request body cannot be decoded.", nil)
		},
		Response: func(w http.ResponseWriter, r *http.Request, err error) { respondError(p, log, w, r, err) },
		Param: func(w http.ResponseWriter, _ *http.Request, err error) {
			p.InvalidRequest(w, err.Error(), nil)
		},
	}
}
