package credentials

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/specguard/specguard/policy"
)

// The scopes a client_credentials token may not hold are those of the
// token alternatives of an operation that takes a key only beside another
// credential, even where another operation takes the key alone with the
// same scope: as a bearer token, the key would pass there alone.
func TestKeyOnlyBesideScopes(t *testing.T) {
	audit := "paths:\n  /admin/audit:\n    get:\n      operationId: audit\n      security: [{apiKeyAuth: [users:admin]}]\n      responses: {'200': {description: ok}, '401': {description: no}, '403': {description: no}, '429': {description: slow}}\n"
	table, err := policy.Compile("openapi.yaml", []byte(strings.Replace(string(Fragment), "paths:\n", audit, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(keyOnlyBesideScopes(table))); !slices.Equal(got, []string{"users:admin"}) {
		t.Errorf("scopes kept from client_credentials tokens: %v, want [users:admin]", got)
	}
}

// An operation that takes a key alone only with a stronger scope than its
// token alternative asks keeps that alternative's scopes from the tokens
// too: a moderator's users:read key is refused there alone, and so must
// its token be. Where a key alone with the same scopes passes, nothing is
// kept.
func TestKeyAloneWithAStrongerScope(t *testing.T) {
	reports := "paths:\n  /reports:\n    get:\n      operationId: reports\n      security:\n        - {oauth2: [users:read]}\n        - {apiKeyAuth: [users:admin]}\n      responses: {'200': {description: ok}, '401': {description: no}, '403': {description: no}, '429': {description: slow}}\n" +
		"  /summary:\n    get:\n      operationId: summary\n      security:\n        - {oauth2: [apikeys:manage]}\n        - {apiKeyAuth: [apikeys:manage]}\n      responses: {'200': {description: ok}, '401': {description: no}, '403': {description: no}, '429': {description: slow}}\n"
	table, err := policy.Compile("openapi.yaml", []byte(strings.Replace(string(Fragment), "paths:\n", reports, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(keyOnlyBesideScopes(table))); !slices.Equal(got, []string{"users:admin", "users:read"}) {
		t.Errorf("scopes kept from client_credentials tokens: %v, want [users:admin users:read]", got)
	}
}
