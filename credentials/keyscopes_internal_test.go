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
