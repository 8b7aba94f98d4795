// Package server is the example blogging service: it implements the
// interface generated from api/openapi.yaml and wires specguard's guard,
// token service, sessions, API keys and rate limits in front of it.
package server

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/specguard/specguard/api"
	"github.com/specguard/specguard/api/gen"
	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/server/db"
	"github.com/specguard/specguard/server/docs"
)

// SpecSource names the embedded document in error messages.
const SpecSource = "api/openapi.yaml"

// generatedFrom refuses a binary whose api/gen was generated from another
// document than the one it embeds: api/openapi.yaml was edited and `make
// generate` not run, so the routes and types are stale.
func generatedFrom(spec []byte) error {
	if sum := fmt.Sprintf("%x", sha256.Sum256(spec)); sum != gen.SpecSHA256 {
		return fmt.Errorf("%s changed since api/gen was generated from it: run `make generate`, implement the new methods of gen.StrictServerInterface, and build again", SpecSource)
	}
	return nil
}

// Run serves until ctx is done, then drains in-flight requests and returns
// nil. Any configuration problem is returned before anything listens.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := LoadConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	var handler slog.Handler = slog.NewJSONHandler(stdout, nil)
	if cfg.LogFormat == "text" {
		handler = slog.NewTextHandler(stdout, nil)
	}
	log := slog.New(handler)

	source, spec := SpecSource, api.Spec
	if err := generatedFrom(api.Spec); err != nil {
		return err
	}
	if cfg.SpecFile != "" {
		if spec, err = os.ReadFile(cfg.SpecFile); err != nil {
			return fmt.Errorf("SPECGUARD_SPEC_FILE: %v", err)
		}
		source = cfg.SpecFile
	}
	table, err := policy.Compile(source, spec)
	if err != nil {
		return err
	}
	if cfg.OIDC, err = OIDCSettings(table, getenv); err != nil {
		return err
	}
	deps, err := buildDeps(ctx, cfg, table, log, appClock(getenv))
	if err != nil {
		return err
	}
	defer deps.Close()
	if deps.Docs, err = docs.New(table, spec); err != nil {
		return err
	}
	h, err := NewHandler(deps)
	if errors.Is(err, guard.ErrRoutes) && cfg.SpecFile != "" {
		return fmt.Errorf("%w (SPECGUARD_SPEC_FILE must declare the operations the binary was generated from; to add or remove operations, edit %s and run `make generate`)", err, SpecSource)
	}
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("SPECGUARD_ADDR: %v", err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(handler, slog.LevelWarn),
	}
	admin, adminAddr, err := listenAdmin(cfg, deps.Metrics, handler, ln.Addr())
	if err != nil {
		ln.Close()
		return err
	}
	if admin != nil {
		defer admin.Close()
	}
	log.Info("listening", "addr", ln.Addr().String(), "store", deps.storeName, "database", deps.DB.Source().String(),
		"operations", len(table.Operations()), "admin", adminAddr)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// listenAdmin starts the admin listener (/metrics, and /debug/pprof/ when
// asked) unless SPECGUARD_ADMIN_ADDR is off. It serves until the returned
// server is closed.
func listenAdmin(cfg *Config, m *Metrics, handler slog.Handler, api net.Addr) (*http.Server, string, error) {
	if cfg.AdminAddr == "off" {
		return nil, "off", nil
	}
	addr := cfg.AdminAddr
	if addr == "auto" {
		addr = autoAdminAddr(api)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("SPECGUARD_ADMIN_ADDR: %v", err)
	}
	srv := &http.Server{
		Handler:           m.AdminHandler(cfg.AdminPprof),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(handler, slog.LevelWarn),
	}
	go srv.Serve(ln)
	return srv, ln.Addr().String(), nil
}

// autoAdminAddr is the admin address "auto" names: loopback (the admin
// listener is never public by default) and the API's port + 1000, so that
// instances on one host, and Prometheus's own 9090, do not collide; a free
// port when the API's is 0 or that would pass 65535.
func autoAdminAddr(api net.Addr) string {
	port := 0
	if tcp, ok := api.(*net.TCPAddr); ok && tcp.Port > 0 && tcp.Port+1000 <= 65535 {
		port = tcp.Port + 1000
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// Deps is everything the HTTP handler is built from.
type Deps struct {
	Table *policy.Table
	// Repo is the app's database (accounts, posts); DB, when set, is the
	// same database, which also keeps API keys.
	Repo     Repository
	DB       *db.DB
	Store    security.Store
	Limits   limits.Store
	Accounts *security.Accounts
	Tokens   *security.TokenService
	Sessions *security.SessionService
	Keys     *security.APIKeyService
	// OIDC verifies the tokens of the document's openIdConnect schemes;
	// nil when it declares none.
	OIDC     *security.OIDCAuthenticator
	ClientIP *limits.ClientIP
	// IPv6Prefix is how many bits of an IPv6 client address per-IP limits
	// count by.
	IPv6Prefix int
	Log        *slog.Logger
	// LogRequests writes one Log line per request.
	LogRequests bool
	// Argon2 are the parameters passwords are hashed with
	// (DefaultArgon2 when zero).
	Argon2  Argon2
	Timeout time.Duration
	// Ready reports each store's health for /readyz.
	Ready func(ctx context.Context) map[string]error
	// Docs, when set, serves /docs and everything under it, outside the
	// guard: the pages are not operations of the spec.
	Docs http.Handler
	// Metrics, when set, counts requests, authentication outcomes, limit
	// decisions, store calls and token events; the stores above are
	// already wrapped to report to it.
	Metrics *Metrics

	storeName string
	closers   []func()
	// lock is the database's instance lock, held without Redis: while it
	// is lost every request but /healthz and /readyz is refused.
	lock *db.InstanceLock
	// failures limits failed password checks (nil: unlimited).
	failures *failedPasswords
	// passwordChecked is App.passwordChecked, for tests.
	passwordChecked func(ctx context.Context, u *User)
	// noValidation turns request validation off: a broken server, for the
	// test that the conformance suite notices.
	noValidation bool
}

// BuildDeps builds what Run serves from cfg: keys, the database (migrated),
// stores (Redis when configured), account state, token, session and API-key
// services, seeded users. Close releases what it opened. The load harness
// builds its peer stacks on it.
func BuildDeps(ctx context.Context, cfg *Config, table *policy.Table, log *slog.Logger) (*Deps, error) {
	return buildDeps(ctx, cfg, table, log, time.Now)
}

// Close releases the database and the stores' connections.
func (d *Deps) Close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
	d.closers = nil
}

// OpenDatabase opens the database SPECGUARD_DATABASE_URL names and applies
// the migrations it lacks, under a lock, as serve and migrate do.
func OpenDatabase(ctx context.Context, cfg *Config, log *slog.Logger, now func() time.Time) (*db.DB, error) {
	src, err := db.ParseURL(cfg.DatabaseURL, cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("SPECGUARD_DATABASE_URL: %v", err)
	}
	database, err := db.Open(ctx, src, db.WithPoolSize(cfg.DatabasePool), db.WithClock(now))
	if err != nil {
		return nil, fmt.Errorf("SPECGUARD_DATABASE_URL: %v", err)
	}
	if _, _, err := database.Migrate(ctx, log); err != nil {
		database.Close()
		return nil, err
	}
	return database, nil
}

func buildDeps(ctx context.Context, cfg *Config, table *policy.Table, log *slog.Logger, now func() time.Time) (_ *Deps, err error) {
	clientIP, err := limits.NewClientIP(cfg.TrustedProxies, cfg.ClientIPHeader)
	if err != nil {
		return nil, fmt.Errorf("SPECGUARD_TRUSTED_PROXIES: %v", err)
	}
	d := &Deps{Table: table, ClientIP: clientIP, IPv6Prefix: cfg.IPv6Prefix, Log: log, LogRequests: cfg.LogRequests,
		Argon2: DefaultArgon2, Timeout: cfg.StoreTimeout}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if d.DB, err = OpenDatabase(ctx, cfg, log, now); err != nil {
		return nil, err
	}
	d.Repo = d.DB
	d.closers = append(d.closers, func() { d.DB.Close() })
	if d.DB.Kind() == db.SQLite && cfg.RedisURL != "" {
		log.Warn("SPECGUARD_REDIS_URL with the SQLite database: instances on other hosts cannot share its file; use PostgreSQL for a fleet")
	}
	if cfg.RedisURL == "" {
		// Fast state in this process's memory: a second instance on the same
		// database would not see this one's logins, revocations, account
		// changes or rate limits.
		lock, err := d.DB.LockInstance(ctx, lockKeepalive, func(err error) {
			switch {
			case err == nil:
				log.Info("holding the database's instance lock again: serving")
			case errors.Is(err, db.ErrInUse):
				log.Error("another specguard took the database's instance lock: refusing every request (503) until it stops", "database", d.DB.Source().String())
			default:
				log.Error("lost the database's instance lock: refusing every request (503) until it is taken again", "err", err)
			}
		})
		if errors.Is(err, db.ErrInUse) {
			return nil, fmt.Errorf("SPECGUARD_REDIS_URL: another specguard serves %s without Redis; instances that share a database must share a Redis too (set SPECGUARD_REDIS_URL), or stop the other one", d.DB.Source())
		} else if err != nil {
			return nil, fmt.Errorf("SPECGUARD_DATABASE_URL: %v", err)
		}
		d.lock = lock
		d.closers = append(d.closers, lock.Release)
	}
	if cfg.RedisURL != "" {
		if err := openRedis(ctx, cfg, d); err != nil {
			return nil, err
		}
	} else {
		d.Store = security.NewMemoryStore(now)
		d.Limits = limits.NewMemoryStore(now)
		d.storeName = "memory"
	}
	signing, err := signingKey(cfg)
	if err != nil {
		return nil, err
	}
	var verify []*security.Key
	for _, path := range cfg.VerifyKeyFiles {
		k, err := readKey(path)
		if err != nil {
			return nil, fmt.Errorf("SPECGUARD_VERIFY_KEY_FILES: %s: %v", path, err)
		}
		verify = append(verify, k)
	}
	stores := d.Ready
	d.Ready = func(ctx context.Context) map[string]error {
		checks := map[string]error{"database": d.DB.Ping(ctx)}
		if d.lock != nil {
			checks["instance_lock"] = nil
			if !d.lock.Held() {
				checks["instance_lock"] = errLockLost
			}
		}
		if stores != nil {
			for k, v := range stores(ctx) {
				checks[k] = v
			}
		} else {
			checks["store"] = nil
		}
		return checks
	}
	d.Metrics = NewMetrics()
	d.Store = &meteredStore{next: d.Store, m: d.Metrics, store: d.storeName}
	d.Accounts = security.NewAccounts(d.Store, accountSource{d.Repo}, table.RoleScopes)
	d.Tokens, err = security.NewTokenService(cfg.Issuer, cfg.Issuer, signing, d.Store,
		security.WithTokenTTL(cfg.AccessTTL, cfg.RefreshTTL), security.WithVerifyKeys(verify...), security.WithClock(now),
		security.WithAccounts(d.Accounts), security.WithMaxLogins(cfg.MaxSessions))
	if err != nil {
		return nil, err
	}
	sessOpts := []security.SessionOption{security.WithSessionTTL(cfg.SessionTTL), security.WithSessionAccounts(d.Accounts),
		security.WithSessionClock(now), security.WithMaxSessions(cfg.MaxSessions)}
	if len(cfg.AllowedOrigins) > 0 {
		sessOpts = append(sessOpts, security.WithAllowedOrigins(cfg.AllowedOrigins...))
	}
	d.Sessions = security.NewSessionService(d.Store, table.RoleScopes, sessOpts...)
	d.failures = &failedPasswords{store: d.Limits, perIP: cfg.FailedLoginsPerIP, perAccount: cfg.FailedLoginsPerAccount, timeout: cfg.StoreTimeout}
	d.Keys = security.NewAPIKeyService(d.Store, d.DB, security.WithKeyAccounts(d.Accounts), security.WithKeyClock(now),
		security.WithMaxKeys(cfg.MaxAPIKeys))

	if len(table.Providers()) > 0 {
		if d.OIDC, err = newOIDC(ctx, cfg, table, d.Metrics, log, now); err != nil {
			return nil, err
		}
		d.closers = append(d.closers, d.OIDC.Close)
	}

	if err := seedAccounts(ctx, d, cfg, table, log); err != nil {
		return nil, err
	}
	return d, nil
}

// lockKeepalive is how often the PostgreSQL instance lock's connection is
// checked (a variable for tests).
var lockKeepalive = 2 * time.Second

// errLockLost: the instance lock is not held.
var errLockLost = errors.New("the instance lock is not held")

// sharedStore names the setting that makes instances share state, when
// one does: then a key made here would differ from every other instance's.
func sharedStore(cfg *Config) string {
	switch {
	case cfg.RedisURL != "":
		return "SPECGUARD_REDIS_URL"
	case strings.HasPrefix(cfg.DatabaseURL, "postgres://"), strings.HasPrefix(cfg.DatabaseURL, "postgresql://"):
		return "a PostgreSQL SPECGUARD_DATABASE_URL"
	}
	return ""
}

// readKey reads a PEM key file. A file holding a private key (or an HMAC
// secret) that other users may read is refused, as ssh refuses one.
func readKey(path string) (*security.Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := security.ParseKeyPEM(data)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path); err == nil && k.CanSign() && runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("mode %04o lets other users read a private key; chmod 600 it", fi.Mode().Perm())
	}
	return k, nil
}

// signingKey loads SPECGUARD_SIGNING_KEY_FILE, or the dev key in the data
// directory, generating it on first use.
func signingKey(cfg *Config) (*security.Key, error) {
	if cfg.SigningKeyFile != "" {
		k, err := readKey(cfg.SigningKeyFile)
		if err != nil {
			return nil, fmt.Errorf("SPECGUARD_SIGNING_KEY_FILE: %s: %v", cfg.SigningKeyFile, err)
		}
		if !k.CanSign() {
			return nil, fmt.Errorf("SPECGUARD_SIGNING_KEY_FILE: %s: a public key cannot sign; give the private key", cfg.SigningKeyFile)
		}
		return k, nil
	}
	if shared := sharedStore(cfg); shared != "" {
		return nil, fmt.Errorf("SPECGUARD_SIGNING_KEY_FILE: required with %s: every instance sharing it must sign with the same key; make one with `specguard keygen --out signing-key.pem`", shared)
	}
	path := devKeyPath(cfg.DataDir)
	k, err := readKey(path)
	if err == nil {
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("SPECGUARD_DATA_DIR: %s: %v", path, err)
	}
	if k, err = security.GenerateKey(); err != nil {
		return nil, err
	}
	pemBytes, err := k.MarshalPEM()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("SPECGUARD_DATA_DIR: %v", err)
	}
	// O_EXCL: when two instances start at once, one key wins and both use it.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return readKey(path)
	} else if err != nil {
		return nil, fmt.Errorf("SPECGUARD_DATA_DIR: %v", err)
	}
	if _, err := f.Write(pemBytes); err != nil {
		f.Close()
		return nil, fmt.Errorf("SPECGUARD_DATA_DIR: %v", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("SPECGUARD_DATA_DIR: %v", err)
	}
	return k, nil
}

// newOIDC starts verifying the tokens of table's openIdConnect schemes. A
// provider that cannot be reached holds up nothing: serve starts, /readyz
// stays ready (one provider down must not take the fleet out of the load
// balancer), and a log line and the specguard_oidc_provider_* series say
// so.
func newOIDC(ctx context.Context, cfg *Config, table *policy.Table, m *Metrics, log *slog.Logger, now func() time.Time) (*security.OIDCAuthenticator, error) {
	opts := []security.OIDCOption{
		security.WithOIDCLeeway(cfg.OIDCLeeway),
		security.WithOIDCIntrospectionTTL(cfg.OIDCCacheTTL),
		security.WithOIDCClock(now),
		security.WithOIDCStatus(func(st security.OIDCStatus) {
			if m != nil {
				m.providerStatus(st)
			}
			switch {
			case !st.Changed:
			case st.Err != nil:
				log.Warn("identity provider unreachable: JWTs are checked with the keys already fetched, opaque tokens answered 503",
					"scheme", st.Scheme, "keys_loaded", st.Ready, "err", st.Err)
			default:
				log.Info("identity provider reachable", "scheme", st.Scheme)
			}
		}),
	}
	for name, set := range cfg.OIDC {
		opts = append(opts, security.WithOIDCSettings(name, set))
	}
	return security.NewOIDCAuthenticator(ctx, table, opts...)
}
