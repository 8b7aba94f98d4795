package credentials_test

import (
	"encoding/json"
	"fmt"
	"log"
	"net/http/httptest"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/tokens"
)

// A service that serves the credential operations of its document, here
// the Fragment alone, behind one guard: an account registers, logs in,
// and calls an operation with its access token.
func ExampleNew() {
	table, err := policy.Compile("openapi.yaml", credentials.Fragment)
	if err != nil {
		log.Fatal(err)
	}
	key, err := tokens.GenerateKey()
	if err != nil {
		log.Fatal(err)
	}
	rate := limits.NewMemoryStore(nil)
	limiter := limits.New(rate)
	svc, err := credentials.New(table, key, credentials.Stores{
		Accounts: credentials.NewMemoryAccounts(nil),
		Keys:     security.NewMemoryKeyRecords(nil),
		State:    security.NewMemoryStore(nil),
		Limits:   rate,
	}, credentials.WithClientAddr(limiter.ClientAddr)) // budgets count clients as the tiers do
	if err != nil {
		log.Fatal(err)
	}
	r := chi.NewRouter()
	svc.Mount(r)
	g, err := guard.New(table, r, append(svc.Authenticators(), guard.WithLimiter(limiter))...)
	if err != nil {
		log.Fatal(err)
	}

	call := func(method, path, body, token string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		g.ServeHTTP(w, req)
		return w
	}
	account := `{"email":"ada@example.com","password":"correct horse battery staple"}`
	fmt.Println("register:", call("POST", "/auth/register", account, "").Code)
	login := call("POST", "/auth/login", account, "")
	fmt.Println("login:", login.Code)
	var pair struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(login.Body).Decode(&pair); err != nil {
		log.Fatal(err)
	}
	fmt.Println("me:", call("GET", "/me", "", pair.AccessToken).Code)
	fmt.Println("me, no token:", call("GET", "/me", "", "").Code)
	// Output:
	// register: 201
	// login: 200
	// me: 200
	// me, no token: 401
}
