package service

// The dependency graph: the database (migrated), the stores (memory, or
// Redis), the signing keys, the credential operations, the identity
// providers, the metrics.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/credentials/sqlstore"
	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/problem"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/oidc"
	"github.com/specguard/specguard/security/tokens"
	"github.com/specguard/specguard/sqldb"
)

// Deps is everything the HTTP handler is built from.
type Deps struct {
	Table *policy.Table
	// DB is the database: accounts and API keys (Accounts, the
	// credential operations'), and the app's own records.
	DB       *sqldb.DB
	Accounts *sqlstore.Store
	// Store is the fast shared security state, Limits the rate-limit
	// counters: memory, or Redis.
	Store  security.Store
	Limits limits.Store
	// Credentials serves the document's credential operations and
	// verifies what it issues.
	Credentials *credentials.Service
	// OIDC verifies the tokens of the document's openIdConnect schemes;
	// nil when it declares none.
	OIDC     *oidc.Authenticator
	ClientIP *limits.ClientIP
	Limiter  *limits.Limiter
	Log      *slog.Logger
	// LogRequests writes one Log line per request.
	LogRequests bool
	// Tracer traces every request and the calls it makes (the OTEL_*
	// variables); nil when tracing is off.
	Tracer *sdktrace.TracerProvider
	// ValidateResponses says whether the handlers' answers are checked
	// against the document (counted and logged when they break it).
	ValidateResponses guard.ResponseMode
	// ResponseSample: report mode checks the body of one answer in this
	// many.
	ResponseSample int
	Timeout        time.Duration
	// Ready reports each store's health for /readyz.
	Ready func(ctx context.Context) map[string]error
	// Errors are the error handlers of the app's generated strict server.
	Errors HandlerErrors
	// Docs, when set, serves /docs and everything under it, outside the
	// guard: the pages are not operations of the spec.
	Docs http.Handler
	// Metrics counts requests, authentication outcomes, limit decisions,
	// store calls and token events; the stores above are already wrapped
	// to report to it.
	Metrics *Metrics

	app       *App
	problems  problem.Writer
	storeName string
	closers   []func()
	// redis is the client of SPECGUARD_REDIS_URL, nil without it.
	redis redis.UniversalClient
	// lock is the database's instance lock, held without Redis: while it
	// is lost every request but /healthz and /readyz is refused.
	lock *sqldb.InstanceLock
	// demo: the demo accounts were seeded (the development setup): the
	// API answers loopback hosts only.
	demo bool
	// draining: asked to stop, the instance serves on for the shutdown
	// delay while Ready says shutting_down.
	draining atomic.Bool
}

// tracerProvider is Tracer as the interface the packages take: nil (no
// tracing) when it is nil.
func (d *Deps) tracerProvider() trace.TracerProvider {
	if d.Tracer == nil {
		return nil
	}
	return d.Tracer
}

// Close releases the database and the stores' connections.
func (d *Deps) Close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
	d.closers = nil
}

// openDatabase opens the database SPECGUARD_DATABASE_URL names; migrate
// applies what it lacks.
func openDatabase(ctx context.Context, cfg *Config, now func() time.Time, tp trace.TracerProvider) (*sqldb.DB, error) {
	src, err := sqldb.ParseURL(cfg.DatabaseURL, cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("SPECGUARD_DATABASE_URL: %v", err)
	}
	database, err := sqldb.Open(ctx, src, sqldb.WithPoolSize(cfg.DatabasePool), sqldb.WithClock(now), sqldb.WithTracerProvider(tp))
	if err != nil {
		return nil, fmt.Errorf("%s: %v", databaseSetting(cfg), err)
	}
	return database, nil
}

// databaseSetting names the setting that chose the database: the data
// directory when no database URL is set (the SQLite file in it).
func databaseSetting(cfg *Config) string {
	if cfg.DatabaseURL == "" {
		return "SPECGUARD_DATA_DIR"
	}
	return "SPECGUARD_DATABASE_URL"
}

// migrate applies the migrations the database lacks, under a lock, as
// serve and migrate do: the credential operations' set, then the app's
// (its tables may name accounts). Every set is checked first: a database
// one set of which is newer than this binary, or edited, is refused before
// any set is migrated, which would stop the instances serving it from
// starting again.
func migrate(ctx context.Context, database *sqldb.DB, app *App, log *slog.Logger) error {
	_, err := database.MigrateAll(ctx, app.migrationSets(), log)
	return err
}

// migrationSets are the app's schema, in the order they are applied: the
// credential operations' accounts and API keys, then the app's own.
func (a *App) migrationSets() []sqldb.Migrations {
	return append([]sqldb.Migrations{sqlstore.Migrations}, a.Migrations...)
}

func buildDeps(ctx context.Context, app *App, cfg *Config, table *policy.Table, log *slog.Logger, now func() time.Time) (_ *Deps, err error) {
	d := &Deps{Table: table, Log: log, LogRequests: cfg.LogRequests, ValidateResponses: cfg.ValidateResponses, ResponseSample: cfg.ResponseSample, Timeout: cfg.StoreTimeout,
		app: app, problems: app.Problems}
	d.Errors = handlerErrors(d.problems, log)
	opening := false // past the checks of the settings alone
	defer func() {
		if err != nil {
			d.Close()
			if opening && ctx.Err() != nil {
				err = &stoppedError{err}
			}
		}
	}()
	// Registered first, the tracer is shut down last by Close, whatever
	// fails below.
	if cfg.Tracer != nil {
		d.Tracer = cfg.Tracer
		d.closers = append(d.closers, func() {
			// The spans not exported yet go out before the process ends.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = cfg.Tracer.Shutdown(ctx)
		})
	}
	if d.ClientIP, err = limits.NewClientIP(cfg.TrustedProxies, cfg.ClientIPHeader); err != nil {
		return nil, fmt.Errorf("SPECGUARD_TRUSTED_PROXIES: %v", err)
	}
	// Everything the settings alone decide is checked before anything is
	// written: a start refused for a key file, a users file or Redis must
	// not have created or migrated the database (instances of an older
	// version refuse a database migrated past theirs), nor made a key.
	if cfg.RedisURL != "" {
		if _, err := redisClient(cfg.RedisURL, cfg.StoreTimeout); err != nil {
			return nil, err
		}
	}
	if err := credentials.CheckDocument(table, app.CredentialOptions...); err != nil {
		return nil, err
	}
	signing, err := configuredKey(cfg)
	if err != nil {
		return nil, err
	}
	signingFrom := "SPECGUARD_SIGNING_KEY_FILE " + cfg.SigningKeyFile
	if signing == nil {
		// A dev key made before is read (and its mode checked) now; one
		// is made only once nothing else can refuse the start.
		if signing, err = existingDevKey(cfg); err != nil {
			return nil, err
		}
		if signing == nil {
			// Made last, but known now to be makeable: a start that
			// fails there has created and migrated the database.
			if err := canCreate(filepath.Dir(devKeyPath(cfg.DataDir))); err != nil {
				return nil, fmt.Errorf("SPECGUARD_DATA_DIR: %v", err)
			}
		}
		signingFrom = "the dev key " + devKeyPath(cfg.DataDir)
	}
	var verify []*tokens.Key
	kids := map[string]string{}
	if signing != nil {
		kids[signing.ID] = signingFrom
	}
	for _, path := range cfg.VerifyKeyFiles {
		k, err := tokens.ReadKeyFile(path)
		if err != nil {
			return nil, fmt.Errorf("SPECGUARD_VERIFY_KEY_FILES: %v", err)
		}
		if other, dup := kids[k.ID]; dup {
			return nil, fmt.Errorf("SPECGUARD_VERIFY_KEY_FILES: %s is the same key as %s (kid %s): list only keys this instance does not sign with, each once", path, other, k.ID)
		}
		kids[k.ID] = path
		verify = append(verify, k)
	}
	var users []credentials.SeedAccount
	if cfg.UsersFile != "" {
		if users, err = credentials.LoadUsers(cfg.UsersFile, table); err != nil {
			return nil, fmt.Errorf("SPECGUARD_USERS_FILE: %v", err)
		}
	}
	if err := checkGuard(app, cfg, table); err != nil {
		return nil, err
	}
	opening = true
	if cfg.RedisURL == "" {
		d.Store = security.NewMemoryStore(now)
		d.Limits = limits.NewMemoryStore(now)
		d.storeName = "memory"
	} else if err := openRedis(ctx, cfg, d); err != nil {
		return nil, err
	}
	if d.DB, err = openDatabase(ctx, cfg, now, d.tracerProvider()); err != nil {
		return nil, err
	}
	d.closers = append(d.closers, func() { d.DB.Close() })
	if d.DB.Kind() == sqldb.SQLite && cfg.RedisURL != "" {
		log.Warn("SPECGUARD_REDIS_URL with the SQLite database: instances on other hosts cannot share its file; use PostgreSQL for a fleet")
	}
	// Instances that share a database share a Redis too: one whose logins,
	// revocations and counters live in its own memory holds the database
	// alone, and those with Redis hold it together. The lock comes before
	// the migrations: a start refused for it must leave the schema of the
	// instances that serve untouched (a newer binary would migrate it past
	// theirs, and they could not start again). Taking it on PostgreSQL
	// makes the lock's own table, specguard_instance_lock, if missing.
	if err := d.lockInstance(ctx, log, cfg.RedisURL != "", databaseSetting(cfg)); err != nil {
		return nil, err
	}
	if err := migrate(ctx, d.DB, app, log); err != nil {
		return nil, err
	}
	if signing == nil {
		if signing, err = devKey(cfg); err != nil {
			return nil, err
		}
	}
	stores := d.Ready
	checked := (&readiness{check: func(ctx context.Context) map[string]error {
		checks := map[string]error{"database": d.DB.Ping(ctx)}
		if d.lock != nil {
			checks["instance_lock"] = nil
			switch {
			case d.lock.Taken():
				checks["instance_lock"] = errLockTaken
			case !d.lock.Held():
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
	}}).ready
	d.Ready = func(ctx context.Context) map[string]error {
		checks := checked(ctx)
		if d.draining.Load() {
			checks["shutting_down"] = errShuttingDown
		}
		return checks
	}
	d.Metrics = NewMetrics()
	metered := &meteredStore{next: d.Store, m: d.Metrics, store: d.storeName}
	if d.Tracer != nil && d.storeName != "memory" {
		metered.tracer = d.Tracer.Tracer("github.com/specguard/specguard/service")
	}
	d.Store = metered
	limOpts := []limits.Option{limits.WithClientIP(d.ClientIP), limits.WithTimeout(d.Timeout), limits.WithIPv6Prefix(cfg.IPv6Prefix),
		limits.WithStoreErrorLog(func(op *policy.Operation, err error) {
			d.Log.Warn("rate-limit store failed; applying on-store-error", "operation", op.ID, "err", err)
		})}
	if d.storeName != "memory" {
		limOpts = append(limOpts, limits.WithStoreObserver(d.Metrics.rateLimitObserver(d.storeName)), limits.WithTracerProvider(d.tracerProvider(), "redis"))
	}
	d.Limiter = limits.New(d.Limits, limOpts...)
	opts := append(credentialOptions(cfg), credentials.WithVerifyKeys(verify...), credentials.WithClock(now),
		credentials.WithClientAddr(d.Limiter.ClientAddr), credentials.WithProblems(d.problems), credentials.WithRealm(realm),
		credentials.WithLog(log))
	d.Accounts = sqlstore.New(d.DB)
	d.Credentials, err = credentials.New(table, signing,
		credentials.Stores{Accounts: d.Accounts, Keys: d.Accounts, State: d.Store, Limits: d.Limits}, append(opts, app.CredentialOptions...)...)
	if err != nil {
		return nil, err
	}
	if len(table.Providers()) > 0 {
		if d.OIDC, err = newOIDC(ctx, cfg, table, d.Metrics, log, now, d.tracerProvider()); err != nil {
			return nil, err
		}
		d.closers = append(d.closers, d.OIDC.Close)
	}
	if err := seedAccounts(ctx, app, d, cfg, users, log); err != nil {
		return nil, err
	}
	return d, nil
}

// stoppedError is buildDeps's error when its context ended as it opened
// the stores and the database, migrated or seeded: what failed then
// failed for the stop, not for the setting it would name.
type stoppedError struct{ err error }

func (e *stoppedError) Error() string { return "stopped while starting: " + e.err.Error() }
func (e *stoppedError) Unwrap() error { return e.err }

// credentialOptions are the credential operations' options the settings
// alone decide.
func credentialOptions(cfg *Config) []credentials.Option {
	opts := []credentials.Option{
		credentials.WithIssuer(cfg.Issuer), credentials.WithTokenTTL(cfg.AccessTTL, cfg.RefreshTTL),
		credentials.WithSessionTTL(cfg.SessionTTL), credentials.WithSessionIdle(cfg.SessionIdle), credentials.WithMaxSessions(cfg.MaxSessions), credentials.WithMaxAPIKeys(cfg.MaxAPIKeys),
		credentials.WithFailedPasswords(cfg.FailedLoginsPerIP, cfg.FailedLoginsPerAccount), credentials.WithStoreTimeout(cfg.StoreTimeout),
	}
	if len(cfg.AllowedOrigins) > 0 {
		opts = append(opts, credentials.WithAllowedOrigins(cfg.AllowedOrigins...))
	}
	return opts
}

// checkGuard runs the guard's checks that need no router (guard.Check),
// and the credential operations' own, over stand-ins of the stores:
// before anything is opened or written, as a start refused for a setting
// must be, rather than when the handler is built over the migrated and
// seeded database. A document of SPECGUARD_SPEC_FILE with a tier that
// counts by a claim no credential carries is refused here.
func checkGuard(app *App, cfg *Config, table *policy.Table) error {
	key, err := tokens.GenerateKey()
	if err != nil {
		return err
	}
	// The cheapest argon2id there is: New hashes a dummy password with it,
	// which the stand-in need not pay for (the app's own, when it gives
	// one, is still checked).
	cheap := credentials.WithArgon2(credentials.Argon2{Memory: 8, Time: 1, Threads: 1})
	creds, err := credentials.New(table, key, credentials.Stores{
		Accounts: credentials.NewMemoryAccounts(nil), Keys: security.NewMemoryKeyRecords(nil),
		State: security.NewMemoryStore(nil), Limits: limits.NewMemoryStore(nil),
	}, append(append(credentialOptions(cfg), cheap), app.CredentialOptions...)...)
	if err != nil {
		return err
	}
	opts := creds.Authenticators()
	if len(table.Providers()) > 0 {
		opts = append(opts, guard.WithAuthenticator(policy.SchemeOIDC, providerStandIn{}))
	}
	opts = append(opts, guard.WithLimiter(limits.New(limits.NewMemoryStore(nil))))
	if err := guard.Check(table, append(opts, app.GuardOptions...)...); err != nil {
		if cfg.SpecFile != "" {
			return fmt.Errorf("SPECGUARD_SPEC_FILE: %w", err)
		}
		return err
	}
	return nil
}

// providerStandIn stands in for the identity providers' authenticator in
// checkGuard: it carries every claim, as *oidc.Authenticator does (a
// provider's token carries what the provider puts in it).
type providerStandIn struct{}

func (providerStandIn) Authenticate(context.Context, *http.Request, *policy.Scheme) (*security.Principal, error) {
	return nil, security.ErrInvalid
}
func (providerStandIn) Carries(*policy.Scheme, string) bool { return true }

var _ guard.ClaimCarrier = (*oidc.Authenticator)(nil)

// lockInstance takes the database's instance lock, alone without Redis
// and shared with Redis: without Redis the fast state is this process's
// memory, and no other instance on the same database, with Redis or
// without, would see this one's logins, revocations, account changes or
// rate limits, nor it theirs.
func (d *Deps) lockInstance(ctx context.Context, log *slog.Logger, shared bool, setting string) error {
	take := d.DB.LockInstance
	if shared {
		take = d.DB.ShareInstance
	}
	lock, err := take(ctx, lockKeepalive, func(err error) {
		switch {
		case err == nil:
			log.Info("holding the database's instance lock again: serving")
		case errors.Is(err, sqldb.ErrInUse) && !shared:
			// Its logins, logouts and revocations are in its memory, not
			// this one's: serving again after it stops would admit what
			// it ended.
			log.Error("another specguard took the database's instance lock: refusing every request (503) until this instance is restarted (it keeps logins and revocations in memory, and would miss what the other changed)", "database", d.DB.Source().String())
		case errors.Is(err, sqldb.ErrInUse):
			log.Error("another specguard took the database's instance lock: refusing every request (503) until it stops", "database", d.DB.Source().String())
		default:
			log.Error("lost the database's instance lock: refusing every request (503) until it is taken again", "err", err)
		}
	})
	switch {
	case errors.Is(err, sqldb.ErrInUse) && shared:
		return fmt.Errorf("SPECGUARD_REDIS_URL: another specguard serves %s without Redis; instances that share a database must share a Redis too (give it SPECGUARD_REDIS_URL), or stop it", d.DB.Source())
	case errors.Is(err, sqldb.ErrInUse):
		return fmt.Errorf("SPECGUARD_REDIS_URL: another specguard serves %s; instances that share a database must share a Redis too (set SPECGUARD_REDIS_URL), or stop the other one", d.DB.Source())
	case err != nil:
		return fmt.Errorf("%s: %v", setting, err)
	}
	d.lock = lock
	d.closers = append(d.closers, lock.Release)
	if shared {
		return d.markInRedis(ctx, lock, setting)
	}
	return nil
}

// markInRedis marks in Redis, under the instance lock's ID, that this
// instance serves, for as long as it does, and refuses to serve beside an
// instance whose mark this Redis does not hold: one that shares the
// database but keeps its logins, revocations and counters in another
// Redis (or another of its databases), where a logout on one would not
// hold on the other. A Redis that lost its keys (restarted without
// persistence) holds the marks again within a keepalive: one missing is
// looked for again for three.
func (d *Deps) markInRedis(ctx context.Context, lock *sqldb.InstanceLock, setting string) error {
	key := func(id string) string { return "sg:instance:" + id }
	mine := key(lock.ID())
	// Kept a minute past the last refresh: an instance cut off from Redis a
	// moment, or whose host died (its database session may outlive it by
	// hours, until the server's TCP keepalive gives up; Others leaves it
	// out once it has been idle three keepalives), still has its mark.
	ttl := max(30*lockKeepalive, time.Minute)
	if err := d.redis.Set(ctx, mine, "1", ttl).Err(); err != nil {
		return fmt.Errorf("SPECGUARD_REDIS_URL: %v", err)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(lockKeepalive)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), max(lockKeepalive, time.Second))
			_ = d.redis.Set(ctx, mine, "1", ttl).Err() // a failure is Redis's, which /readyz reports
			cancel()
		}
	}()
	d.closers = append(d.closers, func() {
		close(stop)
		<-done
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		d.redis.Del(ctx, mine)
	})
	for deadline := time.Now().Add(3 * lockKeepalive); ; {
		others, err := lock.Others(ctx)
		if err != nil {
			return fmt.Errorf("%s: %v", setting, err)
		}
		missing := 0
		for _, id := range others {
			n, err := d.redis.Exists(ctx, key(id)).Result()
			if err != nil {
				return fmt.Errorf("SPECGUARD_REDIS_URL: %v", err)
			}
			if n == 0 {
				missing++
			}
		}
		if missing == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("SPECGUARD_REDIS_URL: %d of the %d other specguard instances serving %s keep their state in another Redis (or another database of it): a logout or a rate limit on one would not hold on the others; give every instance on one database the same SPECGUARD_REDIS_URL", missing, len(others), d.DB.Source())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(lockKeepalive / 2):
		}
	}
}

// lockKeepalive is how often the PostgreSQL instance lock's connection is
// checked (a variable for tests).
var lockKeepalive = 2 * time.Second

// errLockLost: the instance lock is not held.
var errLockLost = errors.New("the instance lock is not held")

// errLockTaken: another instance took the instance lock, held exclusive,
// since this one lost it: this one must be restarted (see
// sqldb.InstanceLock.Taken).
var errLockTaken = errors.New("another instance took the instance lock: restart this one")

// errShuttingDown: the instance was asked to stop and serves on only for
// SPECGUARD_SHUTDOWN_DELAY.
var errShuttingDown = errors.New("the instance is shutting down")

// readiness runs checks at most once a second, and never two at once,
// whoever asks: /readyz is open to anyone, and each check reaches the
// database and Redis. A check runs on a context of its own (a caller that
// goes away does not make the service unready for the next second).
type readiness struct {
	check func(context.Context) map[string]error
	mu    sync.Mutex
	at    time.Time
	last  map[string]error
}

// readyFor is how long a check's result answers.
const readyFor = time.Second

func (c *readiness) ready(ctx context.Context) map[string]error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil || time.Since(c.at) >= readyFor {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		c.last, c.at = c.check(ctx), time.Now()
	}
	return maps.Clone(c.last)
}
