// Command notes is a second, small service guarded by specguard's library:
// its own OpenAPI document (openapi.yaml), its own generated code (api/),
// its own handlers. Who may call each operation and how often is declared
// in the document; the guard enforces it before any handler runs. It uses
// only specguard's public packages: policy, guard, security, limits and
// problem.
//
//	go run ./examples/notes    # then: curl -s localhost:8081/health
//
// Users are a demo: alice (writer) and bob (reader), passwords
// alice-password and bob-password. State is in memory.
package main

import (
	"context"
	_ "embed"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/specguard/specguard/examples/notes/api"
	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/problem"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/tokens"
)

//go:embed openapi.yaml
var spec []byte

// user is an account of the demo: a role (which grants the scopes the
// document's x-roles lists) and a password hash.
type user struct {
	role string
	hash []byte
}

// config is what the service is built from.
type config struct {
	users map[string]user
}

// newUsers hashes the passwords of name -> {role, password} with cost.
func newUsers(cost int, accounts map[string][2]string) (map[string]user, error) {
	out := map[string]user{}
	for name, a := range accounts {
		h, err := bcrypt.GenerateFromPassword([]byte(a[1]), cost)
		if err != nil {
			return nil, err
		}
		out[name] = user{role: a[0], hash: h}
	}
	return out, nil
}

// dummyHash is what an unknown name is checked against: a hash of the
// users' own cost, so that the work is the same whether or not the name
// exists.
func dummyHash(users map[string]user) ([]byte, error) {
	cost := bcrypt.DefaultCost
	for _, u := range users {
		if c, err := bcrypt.Cost(u.hash); err == nil {
			cost = c
			break
		}
	}
	return bcrypt.GenerateFromPassword([]byte("no such user"), cost)
}

// newHandler wires the service: the compiled document, the token service
// that issues and verifies its credentials, the generated routes, and the
// guard in front of them.
func newHandler(cfg config) (http.Handler, *policy.Table, error) {
	table, err := policy.Compile("examples/notes/openapi.yaml", spec)
	if err != nil {
		return nil, nil, err
	}
	key, err := tokens.GenerateKey() // a real service loads one: tokens.ParseKeyPEM
	if err != nil {
		return nil, nil, err
	}
	store := security.NewMemoryStore(nil) // several instances: redisstore.New
	ts, err := tokens.New("notes", "notes", key, store, tokens.WithTTL(15*time.Minute, 15*time.Minute))
	if err != nil {
		return nil, nil, err
	}
	dummy, err := dummyHash(cfg.users)
	if err != nil {
		return nil, nil, err
	}
	svc := &service{table: table, tokens: ts, users: cfg.users, dummy: dummy}

	r := chi.NewRouter()
	api.HandlerWithOptions(api.NewStrictHandlerWithOptions(svc, nil, api.StrictHTTPServerOptions{
		RequestErrorHandlerFunc: func(w http.ResponseWriter, _ *http.Request, err error) {
			problems.InvalidRequest(w, "The request body cannot be decoded.", nil)
		},
		ResponseErrorHandlerFunc: func(w http.ResponseWriter, _ *http.Request, err error) {
			problems.Internal(w)
		},
	}), api.ChiServerOptions{BaseRouter: r})

	bearer := tokens.Bearer{Tokens: ts}
	g, err := guard.New(table, r,
		guard.WithAuthenticator(policy.SchemeBearer, bearer),
		guard.WithAuthenticator(policy.SchemeOAuth2, bearer),
		guard.WithLimiter(limits.New(limits.NewMemoryStore(nil))), // several instances: redislimit.New
		guard.WithRealm("notes"),
		guard.WithProblems(problems),
	)
	if err != nil {
		return nil, nil, err
	}
	return g, table, nil
}

// problems writes every error of the service, the guard's included.
var problems = problem.Writer{Prefix: "https://notes.example.com/problems/"}

// service implements the generated api.StrictServerInterface. The guard
// has authenticated, limited and validated every request it sees.
type service struct {
	table  *policy.Table
	tokens *tokens.Service
	users  map[string]user
	dummy  []byte // a hash of the users' cost, for a name that does not exist

	mu    sync.Mutex
	notes map[string][]api.Note // by subject
	next  int
}

var _ api.StrictServerInterface = (*service)(nil)

func (s *service) Health(context.Context, api.HealthRequestObject) (api.HealthResponseObject, error) {
	return api.Health200TextResponse("ok"), nil
}

// Login checks the password and mints an access token holding the scopes
// the user's role grants in the document.
func (s *service) Login(ctx context.Context, req api.LoginRequestObject) (api.LoginResponseObject, error) {
	u, ok := s.users[req.Body.Name]
	hash := u.hash
	if !ok {
		hash = s.dummy // the same work whether or not the name exists
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(req.Body.Password)) != nil || !ok {
		return refusal{status: http.StatusUnauthorized, slug: "wrong-password", title: "Wrong name or password",
			challenge: problem.Challenge{Scheme: "Bearer", Realm: "notes", Error: "invalid_grant"}.String()}, nil
	}
	pair, err := s.tokens.Login(ctx, req.Body.Name, u.role, s.table.RoleScopes(u.role), "notes")
	if err != nil {
		return nil, err
	}
	return tokenAnswer{AccessToken: pair.Access, TokenType: api.Bearer,
		ExpiresIn: int(pair.ExpiresIn / time.Second), Scope: pair.AccessClaims.Scope}, nil
}

// tokenAnswer is the login's answer: a token is never kept by a cache
// (RFC 6749 5.1). The guard marks the answers of authenticated callers
// so; a login's caller is anonymous.
type tokenAnswer api.Login200JSONResponse

func (a tokenAnswer) VisitLoginResponse(w http.ResponseWriter) error {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	return api.Login200JSONResponse(a).VisitLoginResponse(w)
}

func (s *service) ListNotes(ctx context.Context, _ api.ListNotesRequestObject) (api.ListNotesResponseObject, error) {
	who := security.FromContext(ctx).Subject
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.notes[who])
	slices.Reverse(out)
	if out == nil {
		out = []api.Note{}
	}
	return api.ListNotes200JSONResponse(out), nil
}

func (s *service) CreateNote(ctx context.Context, req api.CreateNoteRequestObject) (api.CreateNoteResponseObject, error) {
	who := security.FromContext(ctx).Subject
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.notes == nil {
		s.notes = map[string][]api.Note{}
	}
	s.next++
	n := api.Note{Id: s.next, Text: req.Body.Text, CreatedAt: time.Now().UTC()}
	s.notes[who] = append(s.notes[who], n)
	return api.CreateNote201JSONResponse(n), nil
}

// refusal is a problem a handler answers with, through the same writer as
// the guard's.
type refusal struct {
	status      int
	slug, title string
	challenge   string
}

func (r refusal) VisitLoginResponse(w http.ResponseWriter) error {
	if r.challenge != "" {
		w.Header().Set("WWW-Authenticate", r.challenge)
	}
	problems.Write(w, &problem.Problem{Type: r.slug, Title: r.title, Status: r.status})
	return nil
}
