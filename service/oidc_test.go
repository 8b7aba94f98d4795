package service_test

import (
	"testing"

	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/service"
)

// SPECGUARD_OIDC_<NAME>_* of two schemes could be one variable: "key-cloak"
// and "key.cloak" both read SPECGUARD_OIDC_KEY_CLOAK_*. That is refused,
// naming both schemes.
func TestOIDCVariablesOfTwoSchemesCollide(t *testing.T) {
	table, err := policy.Compile("spec.yaml", []byte(`openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /x:
    get:
      operationId: x
      security: [{key-cloak: []}, {key.cloak: []}]
      x-rate-limit: false
      responses: {'200': {description: ok}}
components:
  securitySchemes:
    key-cloak: {type: openIdConnect, openIdConnectUrl: 'https://a.example.com/.well-known/openid-configuration', x-audience: api}
    key.cloak: {type: openIdConnect, openIdConnectUrl: 'https://b.example.com/.well-known/openid-configuration', x-audience: api, x-introspect: false}
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = service.OIDCSettings(table, func(string) string { return "" })
	if want := "spec.yaml: the openIdConnect schemes key-cloak and key.cloak would both read SPECGUARD_OIDC_KEY_CLOAK_*; rename one"; err == nil || err.Error() != want {
		t.Errorf("OIDCSettings = %v, want %q", err, want)
	}
}
