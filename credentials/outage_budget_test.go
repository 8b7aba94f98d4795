package credentials_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/security"
)

// flakyAccounts is a database that cannot answer AccountByEmail while down.
type flakyAccounts struct {
	credentials.Accounts
	down atomic.Bool
}

func (f *flakyAccounts) AccountByEmail(ctx context.Context, email string) (*credentials.Account, error) {
	if f.down.Load() {
		return nil, fmt.Errorf("%w: the database does not answer", security.ErrUnavailable)
	}
	return f.Accounts.AccountByEmail(ctx, email)
}

// flakyKeys is a database that cannot read an API key while down.
type flakyKeys struct {
	security.KeyRecords
	down atomic.Bool
}

func (f *flakyKeys) APIKey(ctx context.Context, id string) (*security.APIKey, error) {
	if f.down.Load() {
		return nil, fmt.Errorf("%w: the database does not answer", security.ErrUnavailable)
	}
	return f.KeyRecords.APIKey(ctx, id)
}

// Only failures count against the failed-password budgets: an attempt the
// service answered 503 because it could check no password (the database
// down) is refunded, so a user who retried through an outage is not locked
// out once it ends. The password grant (the account's budget and the
// address's) and the client_credentials grant (the address's) alike.
func TestAttemptsNoStoreCouldCheckCostNothing(t *testing.T) {
	acc := &flakyAccounts{Accounts: credentials.NewMemoryAccounts(nil)}
	keys := &flakyKeys{KeyRecords: security.NewMemoryKeyRecords(nil)}
	// Budgets smaller than the token operation's own tier (a burst of 5
	// per address): the attempts below spend them, not it.
	e := newEnv(t, nil, acc, keys, security.NewMemoryStore(nil), limits.NewMemoryStore(nil),
		credentials.WithFailedPasswords(credentials.Budget{Limit: 2, Window: time.Hour}, credentials.Budget{Limit: 3, Window: time.Hour}))
	if err := e.svc.Seed(ctx, []credentials.SeedAccount{{Email: "ann@example.com", Password: "ann-password-1", Role: "admin"}}, nil); err != nil {
		t.Fatal(err)
	}
	password := func(from string) reply {
		return e.do("POST", "/auth/token", "application/x-www-form-urlencoded",
			"grant_type=password&username=ann%40example.com&password=ann-password-1", "X-Client", from)
	}

	acc.down.Store(true)
	for i := range 4 { // past the account's budget
		if r := password(fmt.Sprintf("198.51.100.%d", i+1)); r.code != 503 {
			t.Fatalf("password attempt %d while the database is down: %d %s, want 503", i+1, r.code, r.raw)
		}
	}
	acc.down.Store(false)
	if r := password("203.0.113.9"); r.code != 200 {
		t.Fatalf("the right password once the database answers, after 4 attempts that checked none: %d %s, want 200", r.code, r.raw)
	}

	access, _ := e.login("ann@example.com", "ann-password-1")
	r := e.json("POST", "/api-keys", `{"name":"ci","scopes":["users:read"]}`, bearer(access)...)
	if r.code != 201 {
		t.Fatalf("create a key: %d %s", r.code, r.raw)
	}
	kid, secret, _ := strings.Cut(strings.TrimPrefix(r.body["key"].(string), security.APIKeyPrefix), ".")
	client := func() reply {
		return e.do("POST", "/auth/token", "application/x-www-form-urlencoded",
			url.Values{"grant_type": {"client_credentials"}, "client_id": {kid}, "client_secret": {secret}}.Encode(), "X-Client", "198.51.100.200")
	}
	keys.down.Store(true)
	for i := range 4 { // past the address's budget
		if r := client(); r.code != 503 {
			t.Fatalf("client_credentials attempt %d while the database is down: %d %s, want 503", i+1, r.code, r.raw)
		}
	}
	keys.down.Store(false)
	if r := client(); r.code != 200 {
		t.Errorf("the live key once the database answers, from the address that tried 4 times: %d %s, want 200", r.code, r.raw)
	}
}
