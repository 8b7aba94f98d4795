package credentials_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/sessions"
	"github.com/specguard/specguard/security/tokens"
)

// A document declares the credential operations itself (x-credential);
// one whose request or answers have another shape than what the service
// serves, that names an operation it does not serve, or that acts for its
// caller and admits anonymous callers, is refused before anything is
// served, naming file, line and what differs. What is the document's to
// choose (paths, ids, security, limits, descriptions) is not checked.
func TestFragmentShapes(t *testing.T) {
	frag := string(credentials.Fragment)
	for _, c := range []struct {
		name, old, new string
		want           string // "" when the document is served
	}{
		{"the fragment itself", "", "", ""},
		{"other paths, ids, limits and descriptions", "  /auth/login:\n    post:\n      operationId: login\n", "  /v1/sign-in:\n    post:\n      operationId: signIn\n", ""},
		{"a request property missing",
			"        device:\n          type: string\n          maxLength: 100\n          description: A name for this login, shown in the session list.\n", "",
			"POST /auth/login (login): x-credential: login: requestBody.application/json.device: missing differs from what specguard serves (credentials.Fragment)"},
		{"an answer's property renamed", "        access_token: { type: string }\n", "        accessToken: { type: string }\n",
			"POST /auth/login (login): x-credential: login: responses.200.application/json.access_token: missing"},
		{"a status left out", "        '409':\n          description: The account holds the most API keys allowed; end one first.\n          content:\n            application/problem+json:\n              schema: { $ref: '#/components/schemas/Problem' }\n", "",
			"POST /api-keys (createApiKey): x-credential: create-api-key: responses.409: missing"},
		// The handler reads its query parameters: undeclared, the guard
		// would not validate them, and a document of before pages would
		// show the first page as every account.
		{"a query parameter left out", "        - name: after\n          in: query\n", "        - name: since\n          in: query\n",
			"GET /admin/users (listUsers): x-credential: list-users: parameters: query parameter after: missing"},
		{"an operation specguard does not serve", "      x-credential: jwks\n", "      x-credential: keys\n",
			"GET /.well-known/jwks.json (getJWKS): x-credential: keys is not an operation specguard serves"},
		{"another method", "  /auth/logout:\n    post:\n", "  /auth/logout:\n    delete:\n",
			"DELETE /auth/logout (logout): x-credential: logout is served as POST, not DELETE"},
		// An operation that acts for its caller had its handler panic on
		// an anonymous request (a nil principal): refused instead.
		{"an operation for its caller open to anonymous callers", "      summary: The calling user, by any credential specguard accepts.\n      security:\n",
			"      summary: The calling user, by any credential specguard accepts.\n      security:\n        - {}\n",
			"GET /me (getMe): x-credential: me acts for its caller, so its security must require a credential: it admits anonymous callers"},
		{"an operation for its caller made public", "      summary: A page of the accounts, by address (moderators and admins).\n      security:\n        - oauth2: [users:read]\n        - apiKeyAuth: [users:read]\n",
			"      summary: A page of the accounts, by address (moderators and admins).\n      security: []\n",
			"GET /admin/users (listUsers): x-credential: list-users acts for its caller"},
	} {
		t.Run(c.name, func(t *testing.T) {
			doc := frag
			if c.old != "" {
				if !strings.Contains(doc, c.old) {
					t.Fatalf("the fragment has no %q", c.old)
				}
				doc = strings.Replace(doc, c.old, c.new, 1)
			}
			table, err := policy.Compile("openapi.yaml", []byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			accounts, keys := memoryRecords(t)
			store, lim := memoryState(t)
			key, _ := tokens.GenerateKey()
			_, err = credentials.New(table, key, credentials.Stores{Accounts: accounts, Keys: keys, State: store, Limits: lim})
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "openapi.yaml:")):
				t.Fatalf("New = %v, want an error naming the file and line with %q", err, c.want)
			}
		})
	}
}

// A missing document or store fails New with one line naming it, not with
// a panic at the first request; a typed nil (a nil *MemoryStore in the
// interface) counts as missing.
func TestNewRefusesMissingParts(t *testing.T) {
	table, err := policy.Compile("openapi.yaml", credentials.Fragment)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := tokens.GenerateKey()
	accounts, keys := memoryRecords(t)
	store, lim := memoryState(t)
	whole := credentials.Stores{Accounts: accounts, Keys: keys, State: store, Limits: lim}
	if _, err := credentials.New(table, key, whole); err != nil {
		t.Fatalf("every part present: %v", err)
	}
	// Settings that would make credentials dead on arrival, or passwords
	// that can never be checked.
	for _, c := range []struct {
		opt  credentials.Option
		want string
	}{
		{credentials.WithArgon2(credentials.Argon2{}), "credentials: WithArgon2({Memory:0 Time:0 Threads:0}): memory 0 KiB: want 8 KiB to 4 GiB"},
		{credentials.WithArgon2(credentials.Argon2{Memory: 64, Time: 101, Threads: 1}), "credentials: WithArgon2({Memory:64 Time:101 Threads:1}): time 101: want 1 to 100 passes"},
		{credentials.WithSessionTTL(0), "credentials: WithSessionTTL(0s): want at least 1s (a cookie's Max-Age is whole seconds; every session would be over when made)"},
		{credentials.WithSessionTTL(500 * time.Millisecond), "credentials: WithSessionTTL(500ms): want at least 1s (a cookie's Max-Age is whole seconds; every session would be over when made)"},
		{credentials.WithTokenTTL(500*time.Millisecond, time.Hour), "credentials: token service: need 1s <= access TTL (500ms) <= refresh TTL (1h0m0s)"},
		{credentials.WithSessionIdle(-1), "credentials: WithSessionIdle(-1ns): want 0 (the TTL alone) or a positive duration"},
		{credentials.WithAPIKeyTTL(-time.Hour), "credentials: WithAPIKeyTTL(-1h0m0s): want a positive duration (every key would be expired when made)"},
		{credentials.WithMaxSessions(-1), "credentials: WithMaxSessions(-1), WithMaxAPIKeys(50): want 0 (no cap) or more"},
		{credentials.WithStoreTimeout(0), "credentials: WithStoreTimeout(0s): want a positive duration (every store call would time out at once)"},
		{credentials.WithStoreTimeout(-time.Second), "credentials: WithStoreTimeout(-1s): want a positive duration (every store call would time out at once)"},
	} {
		if _, err := credentials.New(table, key, whole, c.opt); err == nil || err.Error() != c.want {
			t.Errorf("New = %v, want %q", err, c.want)
		}
	}
	// A session cookie a sibling subdomain could set.
	bare, err := policy.Compile("openapi.yaml", bytes.Replace(credentials.Fragment, []byte("name: __Host-session"), []byte("name: session"), 1))
	if err != nil {
		t.Fatal(err)
	}
	// The CSRF cookie's name: login would set it twice, and a browser
	// keeps the CSRF token. A second session cookie: login set the first
	// in name order only, and either took the session.
	csrfNamed, err := policy.Compile("openapi.yaml", bytes.Replace(credentials.Fragment, []byte("name: __Host-session"), []byte("name: "+sessions.CSRFCookie), 1))
	if err != nil {
		t.Fatal(err)
	}
	twoCookies, err := policy.Compile("openapi.yaml", credentials.Fragment)
	if err != nil {
		t.Fatal(err)
	}
	twoCookies.Schemes["adminSession"] = &policy.Scheme{Name: "adminSession", Type: policy.SchemeAPIKeyCookie, Param: "__Host-admin"}
	for _, c := range []struct {
		name   string
		table  *policy.Table
		stores func(*credentials.Stores)
		want   string
	}{
		{"no document", nil, nil, "a compiled document"},
		{"a session cookie without __Host-", bare, nil, `the session cookie of scheme "cookieAuth" is named "session": name it "__Host-session"`},
		{"a session cookie named as the CSRF cookie", csrfNamed, nil, `the session cookie of scheme "cookieAuth" is named "__Host-csrf", the CSRF cookie's name: name it "__Host-session"`},
		{"two session cookies", twoCookies, nil, `schemes "adminSession" and "cookieAuth" are both session cookies (__Host-admin, __Host-session): specguard's sessions issue one cookie and take it under either name; declare one`},
		{"no accounts", table, func(s *credentials.Stores) { s.Accounts = nil }, "Stores needs"},
		{"a nil *MemoryStore as State", table, func(s *credentials.Stores) { s.State = (*security.MemoryStore)(nil) }, "Stores needs"},
		{"a nil *MemoryKeyRecords as Keys", table, func(s *credentials.Stores) { s.Keys = (*security.MemoryKeyRecords)(nil) }, "Stores needs"},
		{"no limits store", table, func(s *credentials.Stores) { s.Limits = nil }, "Stores needs"},
	} {
		stores := whole
		if c.stores != nil {
			c.stores(&stores)
		}
		if _, err := credentials.New(c.table, key, stores); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: New = %v, want an error with %q", c.name, err, c.want)
		}
	}
	// An allowed origin no browser sends: "null" would admit the writes
	// of sandboxed frames and data: pages of any site.
	for _, o := range []string{"null", "*", "app.example.com"} {
		if _, err := credentials.New(table, key, whole, credentials.WithAllowedOrigins("https://app.example.com", o)); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q is not an origin", o)) {
			t.Errorf("WithAllowedOrigins(%q): New = %v, want an error naming it", o, err)
		}
	}
}
