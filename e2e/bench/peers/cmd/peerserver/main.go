// Command peerserver serves the example application behind the stacks the
// load harness compares specguard with. It lives in a module of its own so
// that httprate, redis_rate and nethttp-middleware never enter specguard's.
//
//	bare        chi + the generated strict handlers: no security, no validation;
//	            a request that presents any credential (an Authorization,
//	            X-API-Key or Cookie header) is the demo user's, put in the
//	            context unchecked (the handlers need a caller: POST /posts has
//	            an author); any other is anonymous
//	peer        + oapi-codegen's nethttp-middleware validator, whose openapi3filter
//	            AuthenticationFunc verifies the JWT with golang-jwt and checks
//	            scopes, or looks the API key up in the database by id and
//	            compares its SHA-256 hash, + go-chi/httprate in memory
//	peer-redis  + a Redis denylist lookup of the token's jti, and
//	            go-redis/redis_rate instead of httprate
//
// Every stack keeps its data where --database-url says (SQLite in --data-dir
// when empty), as specguard does, so the handlers do the same work. It
// prints "ready <addr> <post id> <api key>" once listening: the id of a
// published post it seeded, the one the harness requests, and an API key
// (posts:read, posts:write) of the demo user it created.
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/httprate"
	"github.com/go-redis/redis_rate/v10"
	"github.com/golang-jwt/jwt/v5"
	nethttpmiddleware "github.com/oapi-codegen/nethttp-middleware"
	"github.com/redis/go-redis/v9"

	"github.com/specguard/specguard/api"
	"github.com/specguard/specguard/api/gen"
	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/credentials/sqlstore"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/tokens"
	"github.com/specguard/specguard/server"
	"github.com/specguard/specguard/server/db"
	"github.com/specguard/specguard/sqldb"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "peerserver:", err)
		os.Exit(1)
	}
}

func run() error {
	stack := flag.String("stack", "bare", "bare, peer or peer-redis")
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	keyFile := flag.String("key", "", "PEM Ed25519 private key whose public part verifies tokens (peer stacks)")
	redisURL := flag.String("redis", "", "Redis URL (peer-redis)")
	specFile := flag.String("spec", "", "the OpenAPI document the validator enforces (the embedded one when empty)")
	issuer := flag.String("issuer", "specguard", "expected iss and aud")
	dataDir := flag.String("data-dir", "", "directory of the SQLite database (required)")
	databaseURL := flag.String("database-url", "", "the database, as SPECGUARD_DATABASE_URL (SQLite in --data-dir when empty)")
	usersFile := flag.String("users", "", "the accounts to seed, as SPECGUARD_USERS_FILE (the demo accounts need one outside SQLite)")
	flag.Parse()
	if *dataDir == "" {
		return errors.New("--data-dir is required")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	table, err := policy.Compile("api/openapi.yaml", api.Spec)
	if err != nil {
		return err
	}
	// The example app's database, migrated as it migrates it, and its
	// accounts seeded through the credential operations' package.
	src, err := sqldb.ParseURL(*databaseURL, *dataDir)
	if err != nil {
		return err
	}
	d, err := sqldb.Open(ctx, src)
	if err != nil {
		return err
	}
	defer d.Close()
	for _, set := range append([]sqldb.Migrations{sqlstore.Migrations}, server.Service().Migrations...) {
		if _, _, err := d.Migrate(ctx, set, nil); err != nil {
			return err
		}
	}
	accounts := sqlstore.New(d)
	users := server.DemoUsers
	if *usersFile != "" {
		if users, err = credentials.LoadUsers(*usersFile, table); err != nil {
			return err
		}
	}
	signing, err := tokens.GenerateKey() // the service issues nothing here but the API key
	if err != nil {
		return err
	}
	svc, err := credentials.New(table, signing, credentials.Stores{Accounts: accounts, Keys: accounts,
		State: security.NewMemoryStore(nil), Limits: limits.NewMemoryStore(nil)})
	if err != nil {
		return err
	}
	if err := svc.Seed(ctx, users, nil); err != nil {
		return err
	}
	user, err := accounts.AccountByEmail(ctx, "user@example.com")
	if err != nil {
		return err
	}
	repo := db.New(d)
	// The post of every stack: e2e/bench's postBody.
	post := &server.Post{ID: security.NewID(), AuthorID: user.ID, Title: "Benchmark post", Body: strings.Repeat("Lorem ipsum dolor sit amet. ", 8), Status: string(gen.Published)}
	if err := repo.CreatePost(ctx, post); err != nil {
		return err
	}
	apiKey, _, err := svc.APIKeys().Create(ctx, user.ID, "bench", []string{"posts:read", "posts:write"})
	if err != nil {
		return err
	}
	app := server.NewApp(repo, nil, slog.New(slog.DiscardHandler))
	r := chi.NewRouter()
	switch *stack {
	case "bare":
		caller := &security.Principal{Subject: user.ID, Role: user.Role, Scopes: table.RoleScopes(user.Role)}
		r.Use(func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				if req.Header.Get("Authorization") == "" && req.Header.Get("X-API-Key") == "" && req.Header.Get("Cookie") == "" {
					next.ServeHTTP(w, req)
					return
				}
				next.ServeHTTP(w, req.WithContext(security.NewContext(req.Context(), caller)))
			})
		})
	case "peer", "peer-redis":
		pub, err := publicKey(*keyFile)
		if err != nil {
			return err
		}
		var rdb *redis.Client
		if *stack == "peer-redis" {
			opt, err := redis.ParseURL(*redisURL)
			if err != nil {
				return err
			}
			rdb = redis.NewClient(opt)
			defer rdb.Close()
		}
		spec := api.Spec
		if *specFile != "" {
			if spec, err = os.ReadFile(*specFile); err != nil {
				return err
			}
		}
		if err := peerMiddleware(r, spec, pub, *issuer, rdb, accounts); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown stack %q", *stack)
	}
	// The same handlers as the example serves: the blog's generated ones,
	// and the credential operations' (GET /me among them).
	gen.HandlerWithOptions(gen.NewStrictHandler(app, nil), gen.ChiServerOptions{BaseRouter: r})
	svc.Mount(r)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("ready %s %s %s\n", ln.Addr(), post.ID, apiKey)
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// peerMiddleware installs what a Go developer assembles today from the same
// spec: the request validator with JWT or API-key authentication and scope
// checks, a denylist lookup when rdb is set, and a rate limit by client IP
// high enough never to refuse the load.
func peerMiddleware(r chi.Router, data []byte, pub ed25519.PublicKey, issuer string, rdb *redis.Client, keys security.KeyRecords) error {
	spec, err := openapi3.NewLoader().LoadFromData(data)
	if err != nil {
		return err
	}
	spec.Servers = nil
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithIssuer(issuer), jwt.WithAudience(issuer), jwt.WithExpirationRequired())
	keyFunc := func(*jwt.Token) (any, error) { return pub, nil }
	auth := func(ctx context.Context, in *openapi3filter.AuthenticationInput) error {
		if in.SecurityScheme.Type == "apiKey" && in.SecurityScheme.In == "header" {
			return checkAPIKey(ctx, keys, in.RequestValidationInput.Request.Header.Get(in.SecurityScheme.Name), in.Scopes)
		}
		if in.SecurityScheme.Type != "oauth2" && in.SecurityScheme.Type != "http" {
			return errors.New("scheme not supported by this stack")
		}
		h := in.RequestValidationInput.Request.Header.Get("Authorization")
		raw, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return errors.New("no bearer token")
		}
		var claims struct {
			jwt.RegisteredClaims
			Scope string `json:"scope"`
		}
		if _, err := parser.ParseWithClaims(raw, &claims, keyFunc); err != nil {
			return err
		}
		have := strings.Fields(claims.Scope)
		for _, s := range in.Scopes {
			if !slices.Contains(have, s) {
				return fmt.Errorf("missing scope %s", s)
			}
		}
		if rdb != nil {
			n, err := rdb.Exists(ctx, "deny:"+claims.ID).Result()
			if err != nil {
				return err
			}
			if n > 0 {
				return errors.New("token revoked")
			}
		}
		return nil
	}
	r.Use(nethttpmiddleware.OapiRequestValidatorWithOptions(spec, &nethttpmiddleware.Options{
		Options:              openapi3filter.Options{AuthenticationFunc: auth},
		DoNotValidateServers: true,
	}))
	if rdb == nil {
		r.Use(httprate.LimitBy(1_000_000_000, time.Minute, httprate.KeyByIP))
		return nil
	}
	limiter := redis_rate.NewLimiter(rdb)
	limit := redis_rate.PerMinute(1_000_000_000)
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			ip, _, _ := net.SplitHostPort(req.RemoteAddr)
			res, err := limiter.Allow(req.Context(), "rl:"+ip, limit)
			if err != nil {
				http.Error(w, "rate limiter unavailable", http.StatusServiceUnavailable)
				return
			}
			if res.Allowed == 0 {
				http.Error(w, "too many requests", http.StatusTooManyRequests)
				return
			}
			next.ServeHTTP(w, req)
		})
	})
	return nil
}

// checkAPIKey is the lookup a service with its own key table makes:
// "sg_<id>.<secret>", the record by id, its SHA-256 hash compared in
// constant time, then revocation, expiry and scopes.
func checkAPIKey(ctx context.Context, keys security.KeyRecords, v string, scopes []string) error {
	id, enc, ok := strings.Cut(strings.TrimPrefix(v, security.APIKeyPrefix), ".")
	if !ok || !strings.HasPrefix(v, security.APIKeyPrefix) {
		return errors.New("no API key")
	}
	secret, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return errors.New("malformed API key")
	}
	k, err := keys.APIKey(ctx, id)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(secret)
	if subtle.ConstantTimeCompare(sum[:], k.SecretHash) != 1 || !k.Revoked.IsZero() || !time.Now().Before(k.Expires) {
		return errors.New("invalid API key")
	}
	for _, s := range scopes {
		if !slices.Contains(k.Scopes, s) {
			return fmt.Errorf("missing scope %s", s)
		}
	}
	return nil
}

func publicKey(path string) (ed25519.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an Ed25519 key", path)
	}
	return priv.Public().(ed25519.PublicKey), nil
}
