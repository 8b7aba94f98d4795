package service_test

import (
	"strings"
	"testing"

	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/service"
)

// SPECGUARD_OIDC_<NAME>_CLIENT_ID / _CLIENT_SECRET / _URL are SPECGUARD_*
// settings too: from a docker --env-file they keep their quotes, as
// SPECGUARD_DATA_DIR did. Every other SPECGUARD_* value with quotes or
// blanks around it is refused now; these are taken as they are, quotes and
// all, and introspection then authenticates as `"partner-client"`.
// The per-scheme SPECGUARD_OIDC_<NAME>_* variables are refused with blanks
// or quotes around them, as every other setting: an env file's quoted client
// id was taken quotes and all, and failed only at the provider.
func TestOIDCQuotedValuesRefused(t *testing.T) {
	table, err := policy.Compile("spec.yaml", []byte(`openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /x:
    get:
      operationId: x
      security: [{partner: []}]
      x-rate-limit: [{name: per-ip, limit: 5, window: 1m, key: ip}]
      responses: {'200': {description: ok}}
components:
  securitySchemes:
    partner: {type: openIdConnect, openIdConnectUrl: 'https://a.example.com/.well-known/openid-configuration', x-audience: api}
`))
	if err != nil {
		t.Fatal(err)
	}
	ok := map[string]string{"SPECGUARD_OIDC_PARTNER_CLIENT_ID": "partner-client", "SPECGUARD_OIDC_PARTNER_CLIENT_SECRET": "s3cret"}
	if _, err := service.OIDCSettings(table, func(k string) string { return ok[k] }); err != nil {
		t.Fatalf("bare values: %v", err)
	}
	for _, c := range []struct{ name, value string }{
		{"SPECGUARD_OIDC_PARTNER_CLIENT_ID", `"partner-client"`},
		{"SPECGUARD_OIDC_PARTNER_CLIENT_SECRET", `'s3cret'`},
		{"SPECGUARD_OIDC_PARTNER_CLIENT_SECRET", `s3cret `},
	} {
		env := map[string]string{"SPECGUARD_OIDC_PARTNER_CLIENT_ID": "partner-client", "SPECGUARD_OIDC_PARTNER_CLIENT_SECRET": "s3cret"}
		env[c.name] = c.value
		_, err := service.OIDCSettings(table, func(k string) string { return env[k] })
		if err == nil || !strings.Contains(err.Error(), c.name) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s=%s: %v; want it refused as the other SPECGUARD_* settings are, naming the variable and not the secret", c.name, c.value, err)
		}
	}
}
