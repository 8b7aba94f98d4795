package server

import (
	"context"
	"log/slog"

	"github.com/specguard/specguard/api/gen"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
)

// App implements the generated strict server interface. The guard has
// already authenticated, limited and validated every request it sees.
type App struct {
	table      *policy.Table
	repo       Repository
	store      security.Store
	accounts   *security.Accounts
	tokens     *security.TokenService
	sessions   *security.SessionService
	keys       *security.APIKeyService
	cookieName string // the cookieAuth scheme's cookie, from the spec
	passwords  *passwords
	failures   *failedPasswords // nil: failed password checks are not limited
	ready      func(ctx context.Context) map[string]error
	log        *slog.Logger

	// passwordChecked, when set, runs after a password matched and before
	// a credential is minted: tests race account changes against it.
	passwordChecked func(ctx context.Context, u *User)
}

var _ gen.StrictServerInterface = (*App)(nil)

// caller is the verified principal; the guard guarantees one on every
// operation that does not admit anonymous callers.
func caller(ctx context.Context) *security.Principal { return security.FromContext(ctx) }

// NewApp returns the example application: the implementation of the
// generated strict server interface, without any HTTP stack around it.
func NewApp(d *Deps) (*App, error) {
	cookieName := ""
	for _, s := range d.Table.Schemes {
		if s.Type == policy.SchemeAPIKeyCookie {
			cookieName = s.Param
		}
	}
	params := d.Argon2
	if params == (Argon2{}) {
		params = DefaultArgon2
	}
	pw, err := newPasswords(params)
	if err != nil {
		return nil, err
	}
	ready := d.Ready
	if ready == nil {
		ready = func(ctx context.Context) map[string]error { return map[string]error{"store": d.Store.Ping(ctx)} }
	}
	app := &App{
		table: d.Table, repo: d.Repo, store: d.Store, accounts: d.Accounts, tokens: d.Tokens, sessions: d.Sessions,
		keys: d.Keys, cookieName: cookieName, passwords: pw, ready: ready, log: d.Log,
		passwordChecked: d.passwordChecked, failures: d.failures,
	}
	return app, nil
}
