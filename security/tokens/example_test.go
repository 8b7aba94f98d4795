package tokens_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/tokens"
)

// The token service alone: a login, a refresh that rotates the refresh
// token, and the reuse of an old refresh token, which ends the login.
func ExampleService() {
	ctx := context.Background()
	key, err := tokens.GenerateKey() // Ed25519; ReadKeyFile loads one from a file
	if err != nil {
		panic(err)
	}
	store := security.NewMemoryStore(nil) // redisstore.New for several instances
	ts, err := tokens.New("https://notes.example.com", "notes", key, store)
	if err != nil {
		panic(err)
	}

	login, err := ts.Login(ctx, "alice", "writer", []string{"notes:read", "notes:write"}, "laptop")
	if err != nil {
		panic(err)
	}
	claims, err := ts.VerifyAccess(ctx, login.Access)
	fmt.Println("access token of", claims.Subject, "with", claims.Scope, err)

	// The role's scopes now, for the refresh: a narrower role narrows it.
	scopes := func(subject string) (string, []string, error) { return "reader", []string{"notes:read"}, nil }
	next, err := ts.Refresh(ctx, login.Refresh, scopes)
	if err != nil {
		panic(err)
	}
	fmt.Println("refreshed:", next.AccessClaims.Scope)

	// The first refresh token was spent: presenting it again is a theft
	// signal, and the whole login is revoked.
	_, err = ts.Refresh(ctx, login.Refresh, scopes)
	fmt.Println("reuse:", errors.Is(err, security.ErrReused))
	_, err = ts.VerifyAccess(ctx, next.Access)
	fmt.Println("the newest access token after reuse:", errors.Is(err, security.ErrInvalid))
	// Output:
	// access token of alice with notes:read notes:write <nil>
	// refreshed: notes:read
	// reuse: true
	// the newest access token after reuse: true
}
