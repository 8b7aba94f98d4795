package service_test

import (
	"strings"
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
	// One of them declared but used by no operation yet: the edit that
	// uses it would make it read the other's settings.
	table, err = policy.Compile("spec.yaml", []byte(`openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /x:
    get:
      operationId: x
      security: [{key-cloak: []}]
      x-rate-limit: false
      responses: {'200': {description: ok}}
components:
  securitySchemes:
    key-cloak: {type: openIdConnect, openIdConnectUrl: 'https://a.example.com/.well-known/openid-configuration', x-audience: api, x-introspect: false}
    key.cloak: {type: openIdConnect, openIdConnectUrl: 'https://b.example.com/.well-known/openid-configuration', x-audience: api}
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = service.OIDCSettings(table, func(string) string { return "" })
	if want := "spec.yaml: the openIdConnect schemes key-cloak and key.cloak would both read SPECGUARD_OIDC_KEY_CLOAK_*; rename one"; err == nil || err.Error() != want {
		t.Errorf("a scheme no operation uses: OIDCSettings = %v, want %q", err, want)
	}
}

// The variables of an openIdConnect scheme are checked when read, and a
// bad one is named: "partner-idp.v2" reads SPECGUARD_OIDC_PARTNER_IDP_V2_*.
func TestOIDCVariablesChecked(t *testing.T) {
	table, err := policy.Compile("spec.yaml", []byte(`openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /x:
    get:
      operationId: x
      security: [{partner-idp.v2: []}]
      x-rate-limit: false
      responses: {'200': {description: ok}}
components:
  securitySchemes:
    partner-idp.v2: {type: openIdConnect, openIdConnectUrl: 'https://a.example.com/.well-known/openid-configuration', x-audience: api}
    spare-idp: {type: openIdConnect, openIdConnectUrl: 'https://b.example.com/.well-known/openid-configuration', x-audience: api}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		// A scheme no operation uses yet: what is set for it is checked
		// too, the secret masked.
		{map[string]string{"SPECGUARD_OIDC_SPARE_IDP_URL": "ftp://u:s3cret@x"}, `SPECGUARD_OIDC_SPARE_IDP_URL: "ftp://u:xxxxx@x" is not an absolute URL without credentials or fragment`},
		{map[string]string{"SPECGUARD_OIDC_SPARE_IDP_CLIENT_ID": "abc"}, "SPECGUARD_OIDC_SPARE_IDP_CLIENT_ID and SPECGUARD_OIDC_SPARE_IDP_CLIENT_SECRET: give both or neither"},
		{map[string]string{"SPECGUARD_OIDC_PARTNER_IDP_V2_URL": "http://id.example.com/"}, `SPECGUARD_OIDC_PARTNER_IDP_V2_URL: "http://id.example.com/": plain http is accepted only on a loopback host; use https`},
		{map[string]string{"SPECGUARD_OIDC_PARTNER_IDP_V2_CLIENT_ID": "x"}, "SPECGUARD_OIDC_PARTNER_IDP_V2_CLIENT_ID and SPECGUARD_OIDC_PARTNER_IDP_V2_CLIENT_SECRET: give both or neither"},
		// Introspection on an operation no tier of which counts anonymous
		// callers: made-up tokens would each cost a call to the provider.
		{map[string]string{"SPECGUARD_OIDC_PARTNER_IDP_V2_CLIENT_ID": "x", "SPECGUARD_OIDC_PARTNER_IDP_V2_CLIENT_SECRET": "y"},
			"SPECGUARD_OIDC_PARTNER_IDP_V2_CLIENT_ID: spec.yaml:5: GET /x (x) accepts partner-idp.v2, whose opaque tokens are introspected, but no tier of its x-rate-limit counts anonymous callers (who: any or anonymous): " +
				"a token is charged as an anonymous call before it is sent to the provider, so made-up tokens would each cost a call, without limit; add a tier keyed by ip to the operation, or x-introspect: false to the scheme"},
	} {
		if _, err := service.OIDCSettings(table, func(k string) string { return c.env[k] }); err == nil || err.Error() != c.want {
			t.Errorf("%v: %v, want %q", c.env, err, c.want)
		}
	}
	got, err := service.OIDCSettings(table, func(k string) string {
		return map[string]string{"SPECGUARD_OIDC_PARTNER_IDP_V2_URL": "https://id.example.com/.well-known/openid-configuration"}[k]
	})
	if err != nil || got["partner-idp.v2"].URL != "https://id.example.com/.well-known/openid-configuration" {
		t.Errorf("a good URL: %v %+v", err, got)
	}
}

// Two schemes of one openIdConnectUrl that each introspect every opaque
// token are one provider; SPECGUARD_OIDC_<NAME>_URL must not make two of
// them, or one would receive the other's live tokens. Refused before
// anything is opened.
func TestOIDCVariablesKeepOneProviderOne(t *testing.T) {
	table, err := policy.Compile("spec.yaml", []byte(`openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /x:
    get:
      operationId: x
      security: [{reports: []}, {billing: []}]
      x-rate-limit: false
      responses: {'200': {description: ok}}
components:
  securitySchemes:
    reports: {type: openIdConnect, openIdConnectUrl: 'https://id.example.com/.well-known/openid-configuration', x-audience: reports-api}
    billing: {type: openIdConnect, openIdConnectUrl: 'https://id.example.com/.well-known/openid-configuration', x-audience: billing-api}
`))
	if err != nil {
		t.Fatal(err)
	}
	const staging = "https://id.staging.example.com/.well-known/openid-configuration"
	_, err = service.OIDCSettings(table, func(k string) string {
		return map[string]string{"SPECGUARD_OIDC_BILLING_URL": staging}[k]
	})
	want := "SPECGUARD_OIDC_<NAME>_URL: openIdConnect schemes billing and reports each introspect every opaque token, as one provider in spec.yaml " +
		"(openIdConnectUrl https://id.example.com/.well-known/openid-configuration), but are given two URLs " +
		"(https://id.staging.example.com/.well-known/openid-configuration, https://id.example.com/.well-known/openid-configuration), " +
		"so one would receive the other's live tokens; give them the same URL, or all but one x-introspect: {prefix: <the start of its opaque tokens>} or false"
	if err == nil || err.Error() != want {
		t.Errorf("OIDCSettings = %v,\nwant %s", err, want)
	}
	if _, err := service.OIDCSettings(table, func(k string) string {
		return map[string]string{"SPECGUARD_OIDC_BILLING_URL": staging, "SPECGUARD_OIDC_REPORTS_URL": staging}[k]
	}); err != nil {
		t.Errorf("one URL for both: %v", err)
	}
}

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
