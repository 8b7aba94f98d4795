package credentials_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security/tokens"
)

// An API key gets no further as a token minted from it (the
// client_credentials grant) than it gets itself: where the document takes
// a key alone only with a stronger scope (GET /reports), and where it
// asks for a key AND a token (GET /reports2), which one key and its own
// token are not (helper-142). A token of a login beside the key is; one
// key in the two headers of an AND of two keys is not (GET /two).
func TestKeyGetsNoFurtherAsItsToken(t *testing.T) {
	const answers = "      responses: {'200': {description: ok}, '401': {description: no}, '403': {description: no}, '429': {description: slow}}\n"
	reports := "paths:\n  /reports:\n    get:\n      operationId: reports\n      security:\n        - {oauth2: [users:read]}\n        - {apiKeyAuth: [users:read], cookieAuth: []}\n        - {apiKeyAuth: [users:admin]}\n" + answers +
		"  /reports2:\n    get:\n      operationId: reports2\n      security:\n        - {apiKeyAuth: [users:read], bearerAuth: []}\n" + answers +
		"  /reports4:\n    get:\n      operationId: reports4\n      security:\n        - {bearerAuth: [], oauth2: []}\n" + answers +
		"  /two:\n    get:\n      operationId: two\n      security:\n        - {apiKeyAuth: [users:read], apiKeyAlt: []}\n" + answers
	doc := strings.Replace(string(credentials.Fragment), "paths:\n", reports, 1)
	doc = strings.Replace(doc, "    apiKeyAuth:\n", "    apiKeyAlt:\n      type: apiKey\n      in: header\n      name: X-Other-Key\n    apiKeyAuth:\n", 1)
	table, err := policy.Compile("openapi.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	key, err := tokens.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	accounts, keys := memoryRecords(t)
	store, lim := memoryState(t)
	limiter := limits.New(lim, limits.WithTimeout(storeTimeout))
	svc, err := credentials.New(table, key, credentials.Stores{Accounts: accounts, Keys: keys, State: store, Limits: lim},
		cheap, credentials.WithStoreTimeout(storeTimeout), credentials.WithClientAddr(limiter.ClientAddr))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	svc.Mount(r)
	for _, path := range []string{"/reports", "/reports2", "/reports4", "/two"} {
		r.Get(path, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("the reports")) })
	}
	g, err := guard.New(table, r, append(svc.Authenticators(), guard.WithLimiter(limiter))...)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, svc: svc, h: g, accounts: accounts, store: store}
	if err := svc.Seed(ctx, []credentials.SeedAccount{{Email: "mod@example.com", Password: "mod-password-1", Role: "moderator"}}, nil); err != nil {
		t.Fatal(err)
	}
	access, _ := e.login("mod@example.com", "mod-password-1")
	newKey := func() string {
		k := e.json("POST", "/api-keys", `{"name":"ci","scopes":["users:read"]}`, bearer(access)...)
		if k.code != 201 {
			t.Fatalf("create key: %d %s", k.code, k.raw)
		}
		return k.body["key"].(string)
	}
	apiKey, other := newKey(), newKey()
	kid, secret, _ := strings.Cut(strings.TrimPrefix(apiKey, "sg_"), ".")
	cc := e.form("/auth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {kid}, "client_secret": {secret}})
	if cc.code != 200 {
		t.Fatalf("client_credentials: %d %s", cc.code, cc.raw)
	}
	minted := cc.body["access_token"].(string)
	for _, c := range []struct {
		what, path string
		header     []string
		want       int
	}{
		{"the key alone", "/reports", []string{"X-API-Key", apiKey}, 403},
		{"the key's token", "/reports", bearer(minted), 403},
		{"a login's token", "/reports", bearer(access), 200},
		{"the key and its own token", "/reports2", append([]string{"X-API-Key", apiKey}, bearer(minted)...), 401},
		{"the key and a login's token", "/reports2", append([]string{"X-API-Key", apiKey}, bearer(access)...), 200},
		// One token read by two schemes of one header (helper-143).
		{"the key's token as bearer and oauth2", "/reports4", bearer(minted), 200},
		// An AND of two keys: two keys, not one key twice (helper-144).
		{"two keys", "/two", []string{"X-API-Key", apiKey, "X-Other-Key", other}, 200},
		{"one key twice", "/two", []string{"X-API-Key", apiKey, "X-Other-Key", apiKey}, 401},
	} {
		if got := e.do("GET", c.path, "", "", c.header...); got.code != c.want {
			t.Errorf("GET %s with %s: %d %.200s, want %d", c.path, c.what, got.code, got.raw, c.want)
		}
	}
}
