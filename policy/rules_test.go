package policy_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/specguard/specguard/policy"
)

// doc is a small document: root lines go after info (line 3 on), the
// operation GET /things/{id} starts right after "paths:", and op lines go
// inside it after its parameters.
func doc(root, op string) string {
	return `openapi: 3.0.3
info: {title: t, version: "1"}
` + root + `paths:
  /things/{id}:
    get:
      operationId: getThing
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
` + op + `      responses: {'200': {description: ok}}
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
    key: {type: apiKey, in: header, name: X-Key}
    cookie: {type: apiKey, in: cookie, name: sid}
    basic: {type: http, scheme: basic}
    query: {type: apiKey, in: query, name: k}
    authz: {type: apiKey, in: header, name: Authorization}
    oidc: {type: openIdConnect, openIdConnectUrl: 'https://example.com/.well-known/openid-configuration'}
    oauth:
      type: oauth2
      flows:
        password: {tokenUrl: /token, scopes: {read: r, write: w}}
`
}

// twoProviders is doc with the openIdConnect scheme oidc and a second one,
// oidc2, each given the extensions of first and second ("x-...: v, ").
func twoProviders(first, second, op string) string {
	return strings.Replace(doc("", op), "    oidc: {type: openIdConnect, openIdConnectUrl: 'https://example.com/.well-known/openid-configuration'}\n",
		"    oidc: {type: openIdConnect, x-audience: api, "+first+"openIdConnectUrl: 'https://example.com/.well-known/openid-configuration'}\n"+
			"    oidc2: {type: openIdConnect, x-audience: api, "+second+"openIdConnectUrl: 'https://other.example.com/.well-known/openid-configuration'}\n", 1)
}

// tierOK is an operation snippet: one valid tier.
const tierOK = "      x-rate-limit: {name: t, limit: 10, window: 1m, key: ip}\n"

// A provider that introspects no opaque token leaves another free to
// introspect every one, on operations of their own.
func TestOneProviderIntrospectsEveryToken(t *testing.T) {
	onTwoOperations := func(src string) string {
		return strings.Replace(src, "paths:\n",
			"paths:\n  /other:\n    get:\n      operationId: other\n      security: [{oidc2: []}]\n"+tierOK+"      responses: {'200': {description: ok}}\n", 1)
	}
	if _, err := policy.Compile("spec.yaml", []byte(onTwoOperations(twoProviders("", "x-introspect: false, ", "      security: [{oidc: []}]\n"+tierOK)))); err != nil {
		t.Fatal(err)
	}
	// Two schemes of one provider (two audiences): its tokens reach no
	// one else, whichever scheme introspects them.
	sameProvider := strings.Replace(twoProviders("", "", "      security: [{oidc: []}]\n"+tierOK), "https://other.example.com/", "https://example.com/", 1)
	if _, err := policy.Compile("spec.yaml", []byte(onTwoOperations(sameProvider))); err != nil {
		t.Fatalf("two schemes of one provider: %v", err)
	}
	// Prefixes that overlap within one provider send no token elsewhere.
	for _, prefixes := range [][2]string{{"kc_", "kc_a"}, {"kc_a", "kc_"}} {
		src := strings.Replace(twoProviders("x-introspect: {prefix: "+prefixes[0]+"}, ", "x-introspect: {prefix: "+prefixes[1]+"}, ",
			"      security: [{oidc: []}, {oidc2: []}]\n"+tierOK), "https://other.example.com/", "https://example.com/", 1)
		if _, err := policy.Compile("spec.yaml", []byte(src)); err != nil {
			t.Errorf("one provider's prefixes %q and %q: %v", prefixes[0], prefixes[1], err)
		}
	}
	// Two providers whose prefixes overlap, either way round.
	for _, prefixes := range [][2]string{{"kc_", "kc_a"}, {"kc_a", "kc_"}} {
		src := twoProviders("x-introspect: {prefix: "+prefixes[0]+"}, ", "x-introspect: {prefix: "+prefixes[1]+"}, ", "      security: [{oidc: []}, {oidc2: []}]\n"+tierOK)
		if _, err := policy.Compile("spec.yaml", []byte(src)); err == nil || !strings.Contains(err.Error(), "overlaps") {
			t.Errorf("prefixes %q and %q: %v, want them refused as overlapping", prefixes[0], prefixes[1], err)
		}
	}
}

func compileErr(t *testing.T, src string) string {
	t.Helper()
	_, err := policy.Compile("spec.yaml", []byte(src))
	if err == nil {
		return ""
	}
	if _, ok := err.(policy.Errors); !ok {
		t.Fatalf("error is a %T, want policy.Errors", err)
	}
	return err.Error()
}

// Another vendor's extensions, whatever they say, compile: only a name
// that begins as one of specguard's does on the object it is read on is
// taken for a misspelling of it.
func TestOtherExtensionsCompile(t *testing.T) {
	for _, src := range []string{
		doc("", "      security: []\n"+tierOK+"      x-kong-plugin-rate-limiting: {config: {minute: 5}}\n      x-amazon-apigateway-integration: {type: http}\n"),
		doc("x-owner-team: payments\n", "      security: []\n"+tierOK),
		doc("", "      security: []\n"+tierOK+"      x-owner-team: identity\n      x-credential-notes: none\n"),
	} {
		if _, err := policy.Compile("spec.yaml", []byte(src)); err != nil {
			t.Errorf("%v", err)
		}
	}
}

// TestCompileRules: every rule of the compiler, each with the exact line it
// prints (file:line: operation: field: message).
func TestCompileRules(t *testing.T) {
	for _, c := range rules {
		t.Run(c.name, func(t *testing.T) {
			if c.want == "" {
				t.Fatal("a rule case must expect an error")
			}
			got := compileErr(t, c.src)
			if got != c.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, c.want)
			}
			if strings.Count(got, "\n") != 0 {
				t.Errorf("one rule broken gives one line, got %d", strings.Count(got, "\n")+1)
			}
		})
	}
}

// A merge key's security counts only where YAML's merge takes it: not
// over the operation's own, nor over an earlier mapping of the same merge
// key.
func TestMergedSecurityPrecedence(t *testing.T) {
	open := "security: [{bearer: []}]\nx-ops:\n  open: &open\n    security:\n  keyed: &keyed\n    security: [{key: []}]\n"
	for name, op := range map[string]string{
		"the operation's own":         "      <<: *open\n      security: []\n",
		"an earlier mapping's":        "      <<: [*keyed, *open]\n",
		"the operation's own, before": "      security: [{key: []}]\n      <<: *open\n",
	} {
		if err := compileErr(t, doc(open, op+tierOK)); err != "" {
			t.Errorf("%s: %s", name, err)
		}
	}
}

type rule struct {
	name, src, want string
}

const sec = "      security: [{bearer: []}]\n"

func tier(fields string) string { return "      x-rate-limit: {" + fields + "}\n" }

func withRoles(src, roles string) string { return src + "      x-roles: " + roles + "\n" }

var rules = []rule{
	{"no security anywhere", doc("", tierOK),
		"spec.yaml:5: GET /things/{id} (getThing): security: no security declared here or at the document root; use security: [] to make it public"},
	{"null security requirement", doc("", "      security: [null, {bearer: []}]\n"+tierOK),
		"spec.yaml:5: GET /things/{id} (getThing): security[0]: null is not a security requirement; write {} to let anonymous callers in, or remove the item"},
	{"null security requirement, YAML", doc("", "      security:\n        -\n        - bearer: []\n"+tierOK),
		"spec.yaml:5: GET /things/{id} (getThing): security[0]: null is not a security requirement; write {} to let anonymous callers in, or remove the item"},
	{"null operation security under a default", doc("security: [{bearer: []}]\n", "      security:\n"+tierOK),
		"spec.yaml:9:7: GET /things/{id} (getThing): security: null is not a list of requirements; write [] for a public operation, or leave security out for the document's default"},
	{"null operation security through a merge key", doc("security: [{bearer: []}]\nx-ops:\n  open: &open\n    security:\n    description: open\n", "      <<: *open\n"+tierOK),
		"spec.yaml:6:5: GET /things/{id} (getThing): security: null (merged into the operation on line 10) is not a list of requirements; write [] for a public operation, or leave security out for the document's default"},
	{"null operation security through an alias", strings.Replace(doc("security: [{bearer: []}]\nx-ops:\n  op: &op\n    operationId: aliased\n    security:\n"+
		"    x-rate-limit: {name: t, limit: 10, window: 1m, key: ip}\n    responses: {'200': {description: ok}}\n", tierOK), "paths:\n", "paths:\n  /other:\n    get: *op\n", 1),
		"spec.yaml:7:5: GET /other: security: null (in the mapping the operation on line 12 is an alias of) is not a list of requirements; write [] for a public operation, or leave security out for the document's default"},
	{"null scope list", doc("", "      security:\n        - oauth:\n"+tierOK),
		"spec.yaml:5: GET /things/{id} (getThing): security[0].oauth: null is not a list of scopes; write [] to require none"},
	{"no follow-on error about anonymous callers", doc("", "      security: [{nope: []}]\n"+tier("name: t, limit: 10, window: 1m, key: ip, who: authenticated")),
		"spec.yaml:5: GET /things/{id} (getThing): security[0].nope: unknown security scheme; components.securitySchemes does not declare it"},
	{"no follow-on error about API keys", doc("", "      security: [{nope: []}]\n"+tier("name: t, limit: 10, window: 1m, key: apikey, who: authenticated")),
		"spec.yaml:5: GET /things/{id} (getThing): security[0].nope: unknown security scheme; components.securitySchemes does not declare it"},
	{"unknown scheme", doc("", "      security: [{nope: []}]\n"+tierOK),
		"spec.yaml:5: GET /things/{id} (getThing): security[0].nope: unknown security scheme; components.securitySchemes does not declare it"},
	{"http basic", doc("", "      security: [{basic: []}]\n"+tierOK),
		"spec.yaml:5: GET /things/{id} (getThing): security[0].basic: http scheme \"basic\" cannot be enforced; specguard verifies bearer tokens"},
	{"apiKey in query", doc("", "      security: [{query: []}]\n"+tierOK),
		"spec.yaml:5: GET /things/{id} (getThing): security[0].query: apiKey in query cannot be enforced: credentials in URLs leak into logs and caches"},
	{"openIdConnect without x-audience", doc("", "      security: [{oidc: []}]\n"+tierOK),
		"spec.yaml:19: components.securitySchemes.oidc: x-audience: missing: the audience (aud) this API's tokens are issued for, a string or a list; without it a token issued to any other client of the provider would pass"},
	{"openIdConnect over plain http", strings.Replace(doc("", "      security: [{oidc: []}]\n"+tierOK), "openIdConnectUrl: 'https://example.com/", "x-audience: api, openIdConnectUrl: 'http://example.com/", 1),
		"spec.yaml:19: components.securitySchemes.oidc: openIdConnectUrl: \"http://example.com/.well-known/openid-configuration\": plain http is accepted only on a loopback host; use https"},
	{"openIdConnect audience not strings", strings.Replace(doc("", "      security: [{oidc: []}]\n"+tierOK), "openIdConnectUrl:", "x-audience: [api, 7], openIdConnectUrl:", 1),
		"spec.yaml:19: components.securitySchemes.oidc: x-audience: [1]: must be a non-empty string, not 7"},
	{"openIdConnect scopes claim not a name", strings.Replace(doc("", "      security: [{oidc: []}]\n"+tierOK), "openIdConnectUrl:", "x-audience: api, x-scopes-claim: [scp], openIdConnectUrl:", 1),
		"spec.yaml:19: components.securitySchemes.oidc: x-scopes-claim: must be a claim name, such as scp or roles, not [scp]"},
	{"openIdConnect scope with a space", strings.Replace(doc("", "      security: [{oidc: ['a b']}]\n"+tierOK), "openIdConnectUrl:", "x-audience: api, openIdConnectUrl:", 1),
		"spec.yaml:5: GET /things/{id} (getThing): security[0].oidc: scope \"a b\" is not a scope name (RFC 6749 3.3: printable ASCII, no space, quote or backslash)"},
	// Declared, it compiled: no token's scope list could hold it, and the
	// insufficient_scope challenge named two scopes, "posts" and "write".
	{"oauth2 scope with a space", strings.Replace(doc("", "      security: [{oauth: ['posts write']}]\n"+tierOK), "scopes: {read: r, write: w}", "scopes: {read: r, write: w, 'posts write': pw}", 1),
		"spec.yaml:5: GET /things/{id} (getThing): security[0].oauth: scope \"posts write\" is not a scope name (RFC 6749 3.3: printable ASCII, no space, quote or backslash)"},
	{"oauth2 scope not ASCII", strings.Replace(doc("", "      security: [{oauth: ['café']}]\n"+tierOK), "scopes: {read: r, write: w}", "scopes: {read: r, write: w, 'café': c}", 1),
		"spec.yaml:5: GET /things/{id} (getThing): security[0].oauth: scope \"café\" is not a scope name (RFC 6749 3.3: printable ASCII, no space, quote or backslash)"},
	{"two providers introspecting every opaque token", twoProviders("", "", "      security: [{oidc: []}, {bearer: []}, {oidc2: []}]\n"+tierOK),
		"spec.yaml:20: components.securitySchemes.oidc2: x-introspect: openIdConnect schemes oidc and oidc2 would each introspect every opaque token, so one would receive the other's tokens (tried first on an operation listing both, or the only one of an operation a client sends its token to); give all but one x-introspect: {prefix: <the start of its opaque tokens>}, or x-introspect: false"},
	{"two providers introspecting every opaque token, on two operations", strings.Replace(twoProviders("", "", "      security: [{oidc: []}]\n"+tierOK), "paths:\n",
		"paths:\n  /other:\n    get:\n      operationId: other\n      security: [{oidc2: []}]\n"+tierOK+"      responses: {'200': {description: ok}}\n", 1),
		"spec.yaml:26: components.securitySchemes.oidc2: x-introspect: openIdConnect schemes oidc and oidc2 would each introspect every opaque token, so one would receive the other's tokens (tried first on an operation listing both, or the only one of an operation a client sends its token to); give all but one x-introspect: {prefix: <the start of its opaque tokens>}, or x-introspect: false"},
	{"introspection prefix of specguard's API keys", twoProviders("x-introspect: {prefix: sg_live_}, ", "", "      security: [{oidc: []}]\n"+tierOK),
		"spec.yaml:19: components.securitySchemes.oidc: x-introspect: prefix \"sg_live_\" starts as specguard's API keys do (sg_): a token that starts so is never sent to a provider"},
	{"two providers, overlapping prefixes", twoProviders("x-introspect: {prefix: kc_}, ", "x-introspect: {prefix: kc_a}, ", "      security: [{oidc: []}, {oidc2: []}]\n"+tierOK),
		"spec.yaml:20: components.securitySchemes.oidc2: x-introspect: prefix \"kc_a\" overlaps oidc's \"kc_\": an opaque token could be either's"},
	{"x-introspect neither a boolean nor a prefix", twoProviders("x-introspect: yes please, ", "", "      security: [{oidc: []}]\n"+tierOK),
		"spec.yaml:19: components.securitySchemes.oidc: x-introspect: want true, false or {prefix: <the start of this provider's opaque tokens>}, not yes please"},
	{"apiKey in Authorization", doc("", "      security: [{authz: []}]\n"+tierOK),
		"spec.yaml:5: GET /things/{id} (getThing): security[0].authz: an apiKey in the Authorization header would collide with bearer tokens"},
	{"undeclared oauth2 scope", doc("", "      security: [{oauth: [read, admin]}]\n"+tierOK),
		"spec.yaml:5: GET /things/{id} (getThing): security[0].oauth: scope \"admin\" is not declared by the oauth scheme"},
	{"scope on an apiKey scheme declared nowhere", doc("", "      security: [{key: [nope]}]\n"+tierOK),
		"spec.yaml:5: GET /things/{id} (getThing): security[0].key: scope \"nope\" is not declared by any oauth2 scheme"},
	// It said "no security declared here or at the document root; use
	// security: [] to make it public", of a root that says just that.
	{"document root security: []", doc("security: []\n", tierOK),
		"spec.yaml:6: GET /things/{id} (getThing): security: no security declared here, and the document root's security: [] is no default (every operation without its own would be public unseen); declare security: [] here to make this one public"},
	{"document default names an unknown scheme", doc("security: [{nope: []}]\n", tierOK),
		"spec.yaml:6: GET /things/{id} (getThing): security (document default)[0].nope: unknown security scheme; components.securitySchemes does not declare it"},
	// Read on one type of scheme alone, an extension on another was
	// dropped: x-audience on a bearer scheme restricted nothing.
	{"x-audience on an http bearer scheme", strings.Replace(doc("", sec+tierOK), "    bearer: {type: http, scheme: bearer}\n", "    bearer: {type: http, scheme: bearer, x-audience: [https://api.example.com]}\n", 1),
		"spec.yaml:13: components.securitySchemes.bearer: x-audience: is read on openIdConnect schemes only; on a scheme of type \"http\" nothing would enforce it"},
	{"x-roles on a cookie scheme", strings.Replace(doc("", sec+tierOK), "    cookie: {type: apiKey, in: cookie, name: sid}\n", "    cookie: {type: apiKey, in: cookie, name: sid, x-roles: {user: [read]}}\n", 1),
		"spec.yaml:15: components.securitySchemes.cookie: x-roles: is read on oauth2 schemes only; on a scheme of type \"apiKey\" nothing would enforce it"},
	{"roles not a mapping", withRoles(doc("", sec+tierOK), "[user]"),
		"spec.yaml:20: components.securitySchemes.oauth: x-roles: must map each role to a list of scopes"},
	{"role not a list", withRoles(doc("", sec+tierOK), "{user: read}"),
		"spec.yaml:20: components.securitySchemes.oauth: x-roles.user: must be a list of scopes"},
	{"role grants an undeclared scope", withRoles(doc("", sec+tierOK), "{user: [read, admin]}"),
		"spec.yaml:20: components.securitySchemes.oauth: x-roles.user[1]: scope admin is not declared by the scheme's flows"},
	{"x-owner not a bool or a mapping", doc("", sec+tierOK+"      x-owner: author\n"),
		"spec.yaml:5: GET /things/{id} (getThing): x-owner: must be true, false or {override: [scopes]}, not author"},
	{"x-owner with an unknown field", doc("", sec+tierOK+"      x-owner: {overide: [write]}\n"),
		"spec.yaml:5: GET /things/{id} (getThing): x-owner.overide: unknown field; x-owner takes override, a list of scopes"},
	{"x-owner override not a list", doc("", sec+tierOK+"      x-owner: {override: write}\n"),
		"spec.yaml:5: GET /things/{id} (getThing): x-owner.override: must be a list of scopes, not write"},
	{"x-owner override in a document without oauth2", strings.NewReplacer(
		"    oidc: {type: openIdConnect, openIdConnectUrl: 'https://example.com/.well-known/openid-configuration'}\n", "",
		"    oauth:\n      type: oauth2\n      flows:\n        password: {tokenUrl: /token, scopes: {read: r, write: w}}\n", "",
	).Replace(doc("", "      security: [{bearer: []}]\n"+tierOK+"      x-owner: {override: [usres:admin]}\n")),
		"spec.yaml:5: GET /things/{id} (getThing): x-owner.override: scope \"usres:admin\" is not declared by an oauth2 scheme"},
	{"x-owner override an undeclared scope", doc("", sec+tierOK+"      x-owner: {override: [admin]}\n"),
		"spec.yaml:5: GET /things/{id} (getThing): x-owner.override: scope \"admin\" is not declared by an oauth2 scheme"},
	{"x-owner on an operation anyone may call", doc("", "      security: [{bearer: []}, {}]\n"+tierOK+"      x-owner: true\n"),
		"spec.yaml:5: GET /things/{id} (getThing): x-owner: an operation on the caller's own resource needs a caller; this one admits anonymous callers"},
	{"x-owner without a path parameter", strings.Replace(strings.Replace(doc("", sec+tierOK+"      x-owner: true\n"), "/things/{id}:", "/things:", 1), "parameters: [{name: id, in: path, required: true, schema: {type: string}}]", "parameters: []", 1),
		"spec.yaml:5: GET /things (getThing): x-owner: names the resource by a path parameter, and /things has none"},
	{"x-require-fresh not a bool", doc("", sec+tierOK+"      x-require-fresh: yes please\n"),
		"spec.yaml:5: GET /things/{id} (getThing): x-require-fresh: must be true or false, not yes please"},
	{"x-require-fresh on an optional operation", doc("", "      security: [{bearer: []}, {}]\n"+tierOK+"      x-require-fresh: true\n"),
		"spec.yaml:5: GET /things/{id} (getThing): x-require-fresh: needs an operation that requires a token; this one admits anonymous callers"},
	{"x-require-fresh with a cookie alternative", doc("", "      security: [{bearer: []}, {cookie: []}]\n"+tierOK+"      x-require-fresh: true\n"),
		"spec.yaml:5: GET /things/{id} (getThing): x-require-fresh: security alternative 1 uses cookie (apiKey in cookie), which carries no freshness; only specguard's own bearer tokens do"},
	{"x-rate-limit true", doc("", sec+"      x-rate-limit: true\n"),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit: true is not a limit; give a tier, a list of tiers, or false for unlimited"},
	{"x-rate-limit empty list", doc("", sec+"      x-rate-limit: []\n"),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit: empty list; give at least one tier, or false for unlimited"},
	{"x-rate-limit scalar", doc("", sec+"      x-rate-limit: 5\n"),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit: must be a tier, a list of tiers, or false"},
	{"tier not a mapping", doc("", sec+"      x-rate-limit: [5]\n"),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[0]: a tier must be a mapping"},
	{"unknown field", doc("", sec+tier("name: t, limit: 10, window: 1m, key: ip, per: minute")),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[0].per: unknown field (known: burst, cost, key, limit, name, on-store-error, shared, who, window)"},
	{"name missing", doc("", sec+tier("limit: 10, window: 1m, key: ip")),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[0].name: missing"},
	{"bad name", doc("", sec+tier("name: 'a b', limit: 10, window: 1m, key: ip")),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[0].name: must be 1-64 letters, digits, '_', '.' or '-', not a b"},
	{"limit missing", doc("", sec+tier("name: t, window: 1m, key: ip")),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[0].limit: missing"},
	{"limit zero", doc("", sec+tier("name: t, limit: 0, window: 1m, key: ip")),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[0].limit: must be greater than 0, not 0"},
	{"limit a string", doc("", sec+tier("name: t, limit: '10', window: 1m, key: ip")),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[0].limit: must be a whole number, not the string \"10\" (write it without quotes)"},
	{"limit fractional", doc("", sec+tier("name: t, limit: 1.5, window: 1m, key: ip")),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[0].limit: must be a whole number, not 1.5"},
	{"limit a string", doc("", sec+tier("name: t, limit: ten, window: 1m, key: ip")),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[0].limit: must be a whole number, not ten"},
	{"window missing", doc("", sec+tier("name: t, limit: 10, key: ip")),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[0].window: missing"},
	{"window not a duration", doc("", sec+tier("name: t, limit: 10, window: 5 minutes, key: ip")),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[0].window: \"5 minutes\" is not a Go duration such as 1m or 15m"},
	{"window below 1s", doc("", sec+tier("name: t, limit: 10, window: 500ms, key: ip")),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[0].window: 500ms is below the 1s minimum"},
	{"window of a fraction of a second", doc("", sec+tier("name: t, limit: 3, window: 1500ms, key: ip")),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[0].window: 1500ms is not a whole number of seconds"},
	{"x-rate-limit of 65 tiers", doc("", sec+"      x-rate-limit:\n"+strings.Repeat("        - {name: t, limit: 1, window: 1m, key: ip}\n", 65)),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit: 65 tiers; at most 64 per operation"},
	{"window a number", doc("", sec+tier("name: t, limit: 10, window: 60, key: ip")),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[0].window: must be a Go duration string such as 1m, not 60"},
	{"burst zero", doc("", sec+tier("name: t, limit: 10, window: 1m, burst: 0, key: ip")),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[0].burst: must be greater than 0, not 0"},
	{"cost above burst", doc("", sec+tier("name: t, limit: 10, window: 1m, cost: 20, key: ip")),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[0].cost: 20 exceeds burst 10, so no request could ever pass"},
	{"finer than a microsecond", doc("", sec+tier("name: t, limit: 2000000, window: 1s, key: ip")),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[0].limit: 2000000 per 1s is finer than one request per microsecond"},
	{"key missing", doc("", sec+tier("name: t, limit: 10, window: 1m")),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[0].key: missing (ip, principal, apikey, session, claim:<name> or global)"},
	{"key unknown", doc("", sec+tier("name: t, limit: 10, window: 1m, key: user")),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[0].key: \"user\" is not ip, principal, apikey, session, claim:<name> or global"},
	{"key claim with a bad name", doc("", sec+tier("name: t, limit: 10, window: 1m, key: 'claim:a b', who: authenticated")),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[0].key: \"claim:a b\" is not ip, principal, apikey, session, claim:<name> or global"},
	{"who unknown", doc("", sec+tier("name: t, limit: 10, window: 1m, key: ip, who: everyone")),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[0].who: \"everyone\" is not anonymous, authenticated or any"},
	{"identity key without who authenticated", doc("", sec+tier("name: t, limit: 10, window: 1m, key: principal")),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[0].who: key principal needs who: authenticated; anonymous callers have no verified identity"},
	{"shared bad name", doc("", sec+tier("name: t, limit: 10, window: 1m, key: ip, shared: 'a b'")),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[0].shared: must be 1-64 letters, digits, '_', '.' or '-', not \"a b\""},
	{"on-store-error unknown", doc("", sec+tier("name: t, limit: 10, window: 1m, key: ip, on-store-error: maybe")),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[0].on-store-error: \"maybe\" is not allow or deny"},
	{"limit not kept to a microsecond", doc("", sec+tier("name: t, limit: 600000, window: 1s, key: ip")),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[0].limit: 600000 per 1s would be kept as 1000000 per 1s: the stores count one request per whole microsecond (1µs here); choose a limit that divides 1s more evenly"},
	{"burst over 100 years", doc("", sec+tier("name: t, limit: 1, window: 1000000h, burst: 3000, cost: 3000, key: ip")),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[0].burst: a full burst (window × burst / limit) takes 342231.3 years to earn back; the stores count at most 100 years"},
	{"window over 100 years", doc("", sec+tier("name: t, limit: 1, window: 1000000h, key: ip")),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[0].window: a full burst (window × burst / limit) takes 114.1 years to earn back; the stores count at most 100 years"},
	{"misspelt extension through a YAML alias", strings.Replace(doc("x-ops:\n  fast: &fast\n    x-rate-limt: {name: t, limit: 1, window: 1h, key: ip}\n", sec+tierOK), "      x-rate-limit: {name: t, limit: 10, window: 1m, key: ip}\n", "      <<: *fast\n", 1),
		"spec.yaml:4: GET /things/{id} (getThing): x-rate-limt: unknown extension; did you mean x-rate-limit? Nothing reads x-rate-limt, so it would be ignored"},
	{"extension on a path item reached by $ref", "openapi: 3.0.3\ninfo: {title: t, version: \"1\"}\nsecurity: [{bearer: []}]\nx-rate-limit: {name: d, limit: 100, window: 1m, key: ip}\n" +
		"x-shared:\n  admin:\n    x-rate-limit: {name: strict, limit: 1, window: 1h, key: ip}\n    get:\n      operationId: admin\n      responses: {'200': {description: ok}}\n" +
		"paths:\n  /admin:\n    $ref: '#/x-shared/admin'\ncomponents:\n  securitySchemes:\n    bearer: {type: http, scheme: bearer}\n",
		"spec.yaml:6: /admin: x-rate-limit: specguard reads this extension on the document and operations, not on a path item; here it would be ignored"},
	{"an unknown field near an extension's name, said once", doc("", sec+tierOK+"      owner: true\n"),
		"spec.yaml:10:7: GET /things/{id} (getThing): owner: not a field of an operation (OpenAPI allows tags, summary, description, externalDocs, operationId, parameters, requestBody, responses, callbacks, deprecated, security, servers, and x- extensions)"},
	{"duplicate tier names", doc("", sec+"      x-rate-limit: [{name: t, limit: 10, window: 1m, key: ip}, {name: t, limit: 5, window: 1h, key: ip}]\n"),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[1].name: duplicate tier name \"t\""},
	{"one bucket charged by two tiers of an operation", doc("", sec+"      x-rate-limit: [{name: a, limit: 4, window: 1m, key: ip, shared: s}, {name: b, limit: 4, window: 1m, key: ip, shared: s, cost: 2}]\n"),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[1].shared: bucket \"s\" is charged by tier a of this list already; a request charges a bucket once (give one tier the cost of both)"},
	{"one bucket charged by two tiers of the document default", doc("x-rate-limit: [{name: a, limit: 4, window: 1m, key: ip, shared: s}, {name: b, limit: 4, window: 1m, key: ip, shared: s}]\n", sec),
		"spec.yaml:3: document: x-rate-limit[1].shared: bucket \"s\" is charged by tier a of this list already; a request charges a bucket once (give one tier the cost of both)"},
	{"authenticated tier on a public operation", doc("", "      security: []\n"+tier("name: t, limit: 10, window: 1m, key: principal, who: authenticated")),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[0]: who: authenticated never applies: the operation is public (security: [])"},
	{"apikey tier without an API key scheme", doc("", "      security: [{cookie: []}]\n"+tier("name: t, limit: 10, window: 1m, key: apikey, who: authenticated")),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[0]: key apikey never applies: no security alternative accepts an API key or a token minted from one"},
	{"authenticated tier on an anonymous-only operation", doc("", "      security: [{}]\n"+tier("name: t, limit: 10, window: 1m, key: ip, who: authenticated")),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[0]: who: authenticated never applies: the operation lets in anonymous callers only (security: [{}])"},
	{"no tier of the default applies to an anonymous-only operation", doc("x-rate-limit: {name: u, limit: 10, window: 1m, key: principal, who: authenticated}\n", "      security: [{}]\n"),
		"spec.yaml:6: GET /things/{id} (getThing): x-rate-limit: no tier of the document default applies to this operation; declare x-rate-limit here"},
	{"session tier without a cookie scheme", doc("", sec+tier("name: t, limit: 10, window: 1m, key: session, who: authenticated")),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[0]: key session never applies: no security alternative accepts a cookie session"},
	{"no x-rate-limit and no default", doc("", sec),
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit: missing, and the document declares no default; declare one, or x-rate-limit: false to leave it unlimited"},
	{"no tier of the default applies", doc("x-rate-limit: {name: u, limit: 10, window: 1m, key: principal, who: authenticated}\n", "      security: []\n"),
		"spec.yaml:6: GET /things/{id} (getThing): x-rate-limit: no tier of the document default applies to this operation; declare x-rate-limit here"},
	{"malformed document default, the operation inheriting it", doc("security: [{bearer: []}]\nx-rate-limit: {name: d, limit: 10, window: 1m, key: ip, who: anonymus}\n", ""),
		"spec.yaml:4: document: x-rate-limit[0].who: \"anonymus\" is not anonymous, authenticated or any"},
	{"malformed document default", doc("security: [{bearer: []}]\nx-rate-limit: {name: d, limit: 10, window: 1m}\n", tierOK),
		"spec.yaml:4: document: x-rate-limit[0].key: missing (ip, principal, apikey, session, claim:<name> or global)"},
	{"operationId missing", strings.Replace(doc("", sec+tierOK), "      operationId: getThing\n", "", 1),
		"spec.yaml:5: GET /things/{id}: operationId: missing; every operation needs one"},
	{"parameter name chi cannot route", strings.NewReplacer("  /things/{id}:\n", "  /things/{a b}:\n", "name: id,", "name: 'a b',").Replace(doc("", sec+tierOK)),
		"spec.yaml:4: path /things/{a b}: parameter name \"a b\" cannot be routed; use letters, digits, '_', '.' or '-'"},
	// It compiled, and chi panicked when the route was registered.
	{"a path parameter twice", strings.Replace(doc("", sec+tierOK), "  /things/{id}:\n", "  /things/{id}/parts/{id}:\n", 1),
		"spec.yaml:4: path /things/{id}/parts/{id}: parameter {id} appears twice; give each a name of its own"},
	{"'*' in a path", strings.Replace(doc("", "      security: []\n"+tierOK), "  /things/{id}:\n", "  /things/{id}/*:\n", 1),
		"spec.yaml:4: path /things/{id}/*: '*' is not allowed in a path template"},
	{"not YAML", "openapi: 3.0.3\ninfo: [\n",
		"spec.yaml:2:7: YAML: sequence end token ']' not found"},
	{"bad indentation", strings.Replace(doc("", "      security: []\n"+tierOK), "      responses:", "     responses:", 1), "spec.yaml:10:6: YAML: value is not allowed in this context"},
	{"too deep an indentation", strings.Replace(doc("", "      security: []\n"+tierOK), "      responses:", "        responses:", 1), "spec.yaml:10:9: YAML: value is not allowed in this context"},
	{"a tab", strings.Replace(doc("", "      security: []\n"+tierOK), "      operationId", "\toperationId", 1), "spec.yaml:6:1: YAML: found character '\\t' that cannot start any token"},
	{"unclosed quote", strings.Replace(doc("", "      security: []\n"+tierOK), "operationId: getThing", "operationId: \"getThing", 1), "spec.yaml:6:20: YAML: could not find end character of double-quoted text"},
	{"a key twice", doc("", "      security: []\n"+tierOK+"      security: [{bearer: []}]\n"), "spec.yaml:10:7: security: given twice in one object (first on line 8); only the last would count"},
	{"misspelled field", doc("", "      securty: []\n"+tierOK), "spec.yaml:8:7: GET /things/{id} (getThing): securty: not a field of an operation; did you mean security?"},
	{"misspelled extension", doc("", "      security: []\n      x-rate-limt: {name: t, limit: 10, window: 1m, key: ip}\n"), "spec.yaml:9:7: GET /things/{id} (getThing): x-rate-limt: unknown extension; did you mean x-rate-limit? Nothing reads x-rate-limt, so it would be ignored"},
	{"an extension's name extended", doc("", "      security: []\n"+tierOK+"      x-rate-limiting: {name: t, limit: 1, window: 1m, key: ip}\n"), "spec.yaml:10:7: GET /things/{id} (getThing): x-rate-limiting: unknown extension; did you mean x-rate-limit? Nothing reads x-rate-limiting, so it would be ignored"},
	{"an extension's name extended otherwise", doc("", "      security: []\n"+tierOK+"      x-ratelimit-policy: {name: t, limit: 1, window: 1m, key: ip}\n"), "spec.yaml:10:7: GET /things/{id} (getThing): x-ratelimit-policy: unknown extension; did you mean x-rate-limit? Nothing reads x-ratelimit-policy, so it would be ignored"},
	// A dash pasted from rendered text: one edit, not three bytes.
	{"an extension's dash of another script", doc("", "      security: []\n"+tierOK+"      x-require\u2010fresh: true\n"), "spec.yaml:10:7: GET /things/{id} (getThing): x-require\u2010fresh: unknown extension; did you mean x-require-fresh? Nothing reads x-require\u2010fresh, so it would be ignored"},
	{"an extension's non-breaking hyphen", doc("", "      security: []\n"+tierOK+"      x-rate\u2011limit: {name: t, limit: 1, window: 1m, key: ip}\n"), "spec.yaml:10:7: GET /things/{id} (getThing): x-rate\u2011limit: unknown extension; did you mean x-rate-limit? Nothing reads x-rate\u2011limit, so it would be ignored"},
	{"an owner extension extended", doc("", "      security: [{bearer: []}]\n"+tierOK+"      x-owner-only: true\n"), "spec.yaml:10:7: GET /things/{id} (getThing): x-owner-only: unknown extension; did you mean x-owner? Nothing reads x-owner-only, so it would be ignored"},
	{"an owner extension extended, with an object", doc("", "      security: [{bearer: []}]\n"+tierOK+"      x-ownerOnly: {override: [write]}\n"), "spec.yaml:5: GET /things/{id} (getThing): x-ownerOnly: unknown extension; did you mean x-owner? Nothing reads x-ownerOnly, so it would be ignored"},
	{"a freshness extension extended", doc("", "      security: []\n"+tierOK+"      x-Require_Fresh-token: true\n"), "spec.yaml:10:7: GET /things/{id} (getThing): x-Require_Fresh-token: unknown extension; did you mean x-require-fresh? Nothing reads x-Require_Fresh-token, so it would be ignored"},
	{"misspelled root field", doc("securty: []\n", "      security: []\n"+tierOK), "spec.yaml:3:1: securty: not a field of a document; did you mean security?"},
	{"misspelled scheme field", strings.Replace(doc("", "      security: []\n"+tierOK), "bearer: {type: http, scheme: bearer}", "bearer: {type: http, schema: bearer}", 1), "spec.yaml:13:26: components.securitySchemes.bearer: schema: not a field of a security scheme; did you mean scheme?"},
	{"extension where it is not read", strings.Replace(doc("", "      security: []\n"+tierOK), "  /things/{id}:\n", "  /things/{id}:\n    x-rate-limit: false\n", 1), "spec.yaml:5:5: /things/{id}: x-rate-limit: specguard reads this extension on the document and operations, not on a path item; here it would be ignored"},
	{"x-roles on the document", doc("x-roles: {user: [read]}\n", "      security: []\n"+tierOK), "spec.yaml:3:1: x-roles: specguard reads this extension on security schemes, not on a document; here it would be ignored"},
	{"invalid OpenAPI", "openapi: 3.0.3\npaths: {}\n",
		"spec.yaml: invalid OpenAPI document: invalid info: must be an object"},
}

// Several providers on one operation compile when at most one introspects
// every opaque token: the others name their tokens' prefix, or take none.
func TestProvidersSayWhichOpaqueTokensAreTheirs(t *testing.T) {
	for name, c := range map[string][2]string{
		"a prefix and every other": {"x-introspect: {prefix: kc_}, ", ""},
		"two prefixes":             {"x-introspect: {prefix: kc_}, ", "x-introspect: {prefix: en_}, "},
		"one takes none":           {"x-introspect: false, ", ""},
	} {
		t.Run(name, func(t *testing.T) {
			table, err := policy.Compile("spec.yaml", []byte(twoProviders(c[0], c[1], "      security: [{oidc: []}, {oidc2: []}]\n"+tierOK)))
			if err != nil {
				t.Fatal(err)
			}
			p := table.Schemes["oidc"].Provider
			if want := c[0] != "x-introspect: false, "; p.Introspect != want {
				t.Errorf("oidc introspects: %v, want %v", p.Introspect, want)
			}
		})
	}
}

// x-owner: true, or with the scopes whose holders may act on anyone's
// resource; shown by routes and the policy page.
func TestOwnerDeclared(t *testing.T) {
	for _, c := range []struct {
		ext, want string
	}{
		{"      x-owner: true\n", "owner only"},
		{"      x-owner: {override: [write, read]}\n", "owner only, or read, write"},
		{"      x-owner: false\n", ""},
		{"", ""},
	} {
		table, err := policy.Compile("spec.yaml", []byte(doc("", "      security: [{oauth: [read]}]\n"+tierOK+c.ext)))
		if err != nil {
			t.Fatal(err)
		}
		op := table.Operation("getThing")
		got := ""
		if op.Owner != nil {
			got = op.Owner.String()
		}
		if got != c.want || table.Routes()[0].Owner != c.want {
			t.Errorf("%q: owner %q, route %q, want %q", c.ext, got, table.Routes()[0].Owner, c.want)
		}
	}
}

// A session cookie not named __Host-... is a warning with the name to use,
// on the scheme's line; x-lint-ignore on the scheme silences it, and a
// __Host- name gives none.
func TestLintCookiePrefix(t *testing.T) {
	op := "      security: [{cookie: []}]\n      x-rate-limit: false\n"
	cookieWarnings := func(src string) []string { return lintWarnings(t, src, policy.WarnCookiePrefix) }
	src := doc("", op)
	want := `spec.yaml:15: components.securitySchemes.cookie: warning: the session cookie "sid" is not named __Host-..., so a sibling subdomain could set it, and the credential service refuses it; name it "__Host-sid" [cookie-prefix]`
	if got := cookieWarnings(src); len(got) != 1 || got[0] != want {
		t.Errorf("cookie sid: %q, want %q", got, want)
	}
	ignored := strings.Replace(src, "name: sid}", "name: sid, x-lint-ignore: [cookie-prefix]}", 1)
	if got := cookieWarnings(ignored); len(got) != 0 {
		t.Errorf("ignored: %q", got)
	}
	prefixed := strings.Replace(src, "name: sid}", "name: __Host-sid}", 1)
	if got := cookieWarnings(prefixed); len(got) != 0 {
		t.Errorf("__Host-sid: %q", got)
	}
	// A misspelt code on a scheme of any type is said, not dropped.
	misspelt := strings.Replace(src, "name: sid}", "name: sid, x-lint-ignore: [cookie-prefx]}", 1)
	if got := lintWarnings(t, misspelt, policy.WarnLintIgnore); len(got) != 1 || !strings.Contains(got[0], "components.securitySchemes.cookie") || !strings.Contains(got[0], "cookie-prefx") {
		t.Errorf("a misspelt x-lint-ignore on a cookie scheme: %q, want one lint-ignore warning naming it", got)
	}
}

// A scope no role grants is held by no credential specguard issues (its
// tokens, sessions and keys hold their account's role's scopes): every
// caller of an operation requiring it gets 403, which nothing said
// before. An outside provider's scopes are its own, and a document
// without x-roles issues nothing.
func TestLintUngrantedScope(t *testing.T) {
	warnings := func(src string) []string { return lintWarnings(t, src, policy.WarnUngrantedScope) }
	withRoles := func(op string) string {
		return strings.Replace(doc("", op), "        password: {tokenUrl: /token, scopes: {read: r, write: w}}\n",
			"        password: {tokenUrl: /token, scopes: {read: r, write: w}}\n      x-roles: {user: [read]}\n", 1)
	}
	want := `spec.yaml:5: GET /things/{id} (getThing): warning: no role of x-roles grants the scope "write", so no credential specguard issues holds it and no caller gets past this requirement; add it to a role [ungranted-scope]`
	for name, op := range map[string]string{
		"a token's scope": "      security: [{oauth: [write]}]\n" + tierOK,
		"an API key's":    "      security: [{key: [write]}]\n" + tierOK,
		"said once":       "      security: [{oauth: [write]}, {key: [write, read]}]\n" + tierOK,
	} {
		if got := warnings(withRoles(op)); len(got) != 1 || got[0] != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	for name, src := range map[string]string{
		"a granted scope":       withRoles("      security: [{oauth: [read]}]\n" + tierOK),
		"an outside provider's": strings.Replace(withRoles("      security: [{oidc: [write]}]\n"+tierOK), "oidc: {type: openIdConnect, ", "oidc: {type: openIdConnect, x-audience: api, ", 1),
		"no x-roles":            doc("", "      security: [{oauth: [write]}]\n"+tierOK),
		"ignored":               withRoles("      security: [{oauth: [write]}]\n" + tierOK + "      x-lint-ignore: [ungranted-scope]\n"),
	} {
		if got := warnings(src); len(got) != 0 {
			t.Errorf("%s: %q", name, got)
		}
	}
}

// An operation that takes credentials, with tiers that all count
// authenticated callers only, leaves failed authentications (counted as
// anonymous) unthrottled: lint says so, and stops saying so once a tier
// counts anonymous callers, or when the operation is unlimited or public.
func TestLintUnthrottledFailures(t *testing.T) {
	warnings := func(src string) []string { return lintWarnings(t, src, policy.WarnUnthrottledFailures) }
	authOnly := tier("name: u, limit: 10, window: 1m, key: principal, who: authenticated")
	want := "spec.yaml:5: GET /things/{id} (getThing): warning: no tier counts anonymous callers (who: any or anonymous), and a failed authentication is counted as one: nothing limits how fast credentials can be guessed here; add a tier keyed by ip [unthrottled-failures]"
	if got := warnings(doc("", sec+authOnly)); len(got) != 1 || got[0] != want {
		t.Errorf("authenticated tiers only: %q, want %q", got, want)
	}
	for name, op := range map[string]string{
		"an anonymous tier too": sec + "      x-rate-limit: [{name: u, limit: 10, window: 1m, key: principal, who: authenticated}, {name: a, limit: 10, window: 1m, key: ip, who: anonymous}]\n",
		"a tier for anyone":     sec + tier("name: a, limit: 10, window: 1m, key: ip"),
		"unlimited":             sec + "      x-rate-limit: false\n",
		"public":                "      security: []\n" + tierOK,
		"ignored":               sec + authOnly + "      x-lint-ignore: [unthrottled-failures]\n",
	} {
		if got := warnings(doc("", op)); len(got) != 0 {
			t.Errorf("%s: %q", name, got)
		}
	}
}

// A tier lint refuses is left out of the table it lints: the tiers left
// (none counting anonymous callers) are not what the document says, and
// warning that nothing counts them is false (one misspelt window of a
// document's default tiers gave such a warning on every operation). Only
// the error is said; the operations whose own tiers compiled still warn.
func TestLintUnthrottledFailuresNotSaidOfRefusedTiers(t *testing.T) {
	const (
		authOnly = "{name: u, limit: 10, window: 1m, key: principal, who: authenticated}"
		root     = "x-rate-limit: [" + authOnly + ", {name: a, limit: 10, window: 1mn, key: ip}]\n"
	)
	for _, c := range []struct {
		name, src string
		warned    bool
	}{
		{"the operation's own tier refused", doc("", sec+"      x-rate-limit: ["+authOnly+", {name: a, limit: 10, window: 1x, key: ip}]\n"), false},
		{"the document's default tier refused", doc(root, sec), false},
		{"the document's refused, the operation's own compiled", doc(root, sec+"      x-rate-limit: "+authOnly+"\n"), true},
		// Misspelt, the operation's own tiers are not there: the default's
		// (authenticated only) are not what the author meant either.
		{"the operation's own misspelt", doc("x-rate-limit: "+authOnly+"\n", sec+"      x-rate-limt: [{name: a, limit: 10, window: 1m, key: ip}]\n"), false},
	} {
		errs, ws := policy.Lint("spec.yaml", []byte(c.src))
		if len(errs) == 0 {
			t.Fatalf("%s: no error", c.name)
		}
		warned := slices.ContainsFunc(ws, func(w *policy.Warning) bool { return w.Code == policy.WarnUnthrottledFailures })
		if warned != c.warned {
			t.Errorf("%s: unthrottled-failures said %v, want %v (errors %v)", c.name, warned, c.warned, errs)
		}
	}
}

// lintWarnings lints src, which must have no errors, and returns its
// warnings of code, each as it prints.
func lintWarnings(t *testing.T, src, code string) []string {
	t.Helper()
	errs, ws := policy.Lint("spec.yaml", []byte(src))
	if len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	var out []string
	for _, w := range ws {
		if w.Code == code {
			out = append(out, w.String())
		}
	}
	return out
}

// An example of an operation that does not match its schema is that
// operation's warning, on its line, and its x-lint-ignore silences it.
func TestLintExampleSchemaIsTheOperations(t *testing.T) {
	src := `openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit: false
paths:
  /items:
    post:
      operationId: createItem
      security: []
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object}
            example: 5
      responses:
        '200': {description: ok}
        '400': {description: bad}
`
	got := lintWarnings(t, src, policy.WarnExamples)
	if len(got) != 1 || !strings.HasPrefix(got[0], "spec.yaml:6: POST /items (createItem): warning: an example does not match its schema") {
		t.Errorf("example-schema: %q, want one warning on the operation's line", got)
	}
	ignored := strings.Replace(src, "      operationId: createItem\n", "      operationId: createItem\n      x-lint-ignore: [example-schema]\n", 1)
	if got := lintWarnings(t, ignored, policy.WarnExamples); len(got) != 0 {
		t.Errorf("ignored on the operation: %q", got)
	}
}

// An example of a component is no operation's: its warning names the
// component and its line, and the document's x-lint-ignore silences it
// (there was no way to, and lint --strict could not pass). Validation
// finds it in each operation that uses the schema too: the operation's
// warning, which the operation's x-lint-ignore silences.
func TestLintExampleSchemaOfAComponent(t *testing.T) {
	src := `openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit: false
paths:
  /a:
    get:
      operationId: a
      security: []
      responses: {"200": {description: ok, content: {application/json: {schema: {$ref: '#/components/schemas/Thing'}}}}}
components:
  schemas:
    Thing: {type: object, properties: {n: {type: integer}}, example: {n: "x"}}
`
	const component, operation = ": components.schemas.Thing: warning: an example does not match its schema", ": GET /a (a): warning: an example does not match its schema"
	if got := lintWarnings(t, src, policy.WarnExamples); len(got) == 0 || !strings.HasPrefix(got[0], "spec.yaml:12"+component) {
		t.Errorf("%q, want the component's warning first, on its line", got)
	}
	rootIgnored := strings.Replace(src, "x-rate-limit: false\n", "x-rate-limit: false\nx-lint-ignore: [example-schema]\n", 1)
	opIgnored := strings.Replace(src, "      operationId: a\n", "      operationId: a\n      x-lint-ignore: [example-schema]\n", 1)
	bothIgnored := strings.Replace(rootIgnored, "      operationId: a\n", "      operationId: a\n      x-lint-ignore: [example-schema]\n", 1)
	for _, c := range []struct {
		name, src string
		want      []string // prefixes or parts of the warnings, in order
	}{
		{"not silenced", src, []string{component, operation}},
		{"silenced at the root", rootIgnored, []string{operation}},
		{"silenced on the operation", opIgnored, []string{component}},
		{"silenced at both", bothIgnored, nil},
	} {
		got := lintWarnings(t, c.src, policy.WarnExamples)
		ok := len(got) == len(c.want)
		for i := 0; ok && i < len(got); i++ {
			ok = strings.Contains(got[i], c.want[i])
		}
		if !ok {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
		if got := lintWarnings(t, c.src, policy.WarnLintIgnore); len(got) != 0 {
			t.Errorf("%s: %q", c.name, got)
		}
	}
}

// An example of a path item's own parameter is the path item's warning,
// on its line, and the document's x-lint-ignore silences it: it had no
// line, and nothing could silence it.
func TestLintExampleSchemaOfAPathItem(t *testing.T) {
	src := `openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit: false
paths:
  /a/{id}:
    parameters:
      - {name: id, in: path, required: true, schema: {type: integer}, example: "x"}
    get:
      operationId: a
      security: []
      x-lint-ignore: [example-schema]
      responses: {"200": {description: ok}, "400": {description: no}}
`
	if got := lintWarnings(t, src, policy.WarnExamples); len(got) != 1 || !strings.HasPrefix(got[0], "spec.yaml:5: paths./a/{id}: warning: an example does not match its schema") {
		t.Errorf("%q, want one warning on the path item's line", got)
	}
	ignored := strings.Replace(src, "x-rate-limit: false\n", "x-rate-limit: false\nx-lint-ignore: [example-schema]\n", 1)
	if got := lintWarnings(t, ignored, policy.WarnExamples); len(got) != 0 {
		t.Errorf("ignored at the document's root: %q", got)
	}
}

// x-lint-ignore on an operation of a scheme's warning (cookie-prefix,
// unused-scope), or on a scheme of an operation's, silenced nothing, and
// said nothing of it.
func TestLintIgnoreInTheWrongPlace(t *testing.T) {
	src := `openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit: false
paths:
  /a:
    get:
      operationId: a
      security: [{key: []}]
      x-lint-ignore: [cookie-prefix, unused-scope, auth-responses]
      responses: {"200": {description: ok}}
components:
  securitySchemes:
    key: {type: apiKey, in: header, name: X-Key, x-lint-ignore: [auth-responses, cookie-prefix]}
`
	got := lintWarnings(t, src, policy.WarnLintIgnore)
	want := []string{
		"spec.yaml:6: GET /a (a): warning: x-lint-ignore on an operation silences nothing of cookie-prefix, a warning of security schemes: put it on the scheme [lint-ignore]",
		"spec.yaml:6: GET /a (a): warning: x-lint-ignore on an operation silences nothing of unused-scope, a warning of security schemes: put it on the scheme [lint-ignore]",
		"spec.yaml:13: components.securitySchemes.key: warning: x-lint-ignore on a security scheme silences cookie-prefix and unused-scope only, not auth-responses: put it on the operation [lint-ignore]",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("lint-ignore warnings:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A JSON document's errors and warnings name their lines too, though
// kin-openapi keeps no origin for JSON: the operation's, the scheme's,
// the document's key.
func TestJSONDocumentsHaveLines(t *testing.T) {
	src := `{
  "openapi": "3.0.3",
  "info": {"title": "t", "version": "1"},
  "x-rate-limit": {"name": "d", "limit": 10, "window": "1m", "key": "ip", "who": "anonymus"},
  "paths": {
    "/items": {
      "get": {
        "operationId": "listItems",
        "security": [{"oauth": ["nope"]}],
        "x-rate-limit": false,
        "responses": {"200": {"description": "ok"}}
      }
    }
  },
  "components": {
    "securitySchemes": {
      "cookie": {"type": "apiKey", "in": "cookie", "name": "sid"},
      "oauth": {"type": "oauth2", "flows": {"password": {"tokenUrl": "/token", "scopes": {"read": "r"}}}}
    }
  }
}
`
	_, err := policy.Compile("spec.json", []byte(src))
	var got []string
	if errs, ok := err.(policy.Errors); ok {
		for _, e := range errs {
			got = append(got, e.Error())
		}
	}
	want := []string{
		`spec.json:4: document: x-rate-limit[0].who: "anonymus" is not anonymous, authenticated or any`,
		`spec.json:7: GET /items (listItems): security[0].oauth: scope "nope" is not declared by the oauth scheme`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	fixed := strings.NewReplacer(`"anonymus"`, `"anonymous"`, `[{"oauth": ["nope"]}]`, `[{"oauth": ["read"]}, {"cookie": []}]`).Replace(src)
	if got := lintWarnings(t, fixed, policy.WarnCookiePrefix); len(got) != 1 || !strings.HasPrefix(got[0], "spec.yaml:17: components.securitySchemes.cookie:") {
		t.Errorf("cookie-prefix in JSON: %q, want it on line 17", got)
	}
}

// A scope of an alternative the compiler refused (for another scope of
// it) is still one the document uses: no unused-scope beside the error.
func TestLintUnusedScopeBesideARefusedAlternative(t *testing.T) {
	src := doc("", "      security: [{oauth: [read, nope]}]\n"+tierOK)
	errs, ws := policy.Lint("spec.yaml", []byte(src))
	if len(errs) != 1 {
		t.Fatalf("errors: %v, want the undeclared scope's", errs)
	}
	for _, w := range ws {
		if w.Code == policy.WarnUnusedScope && strings.Contains(w.Msg, `"read"`) {
			t.Errorf("a scope the document uses is called unused: %s", w)
		}
	}
}

// A document named *.json that is not JSON is refused where encoding/json
// finds it wrong, not read as YAML into errors about fields far from it.
func TestJSONSyntaxError(t *testing.T) {
	src := "{\n  \"openapi\": \"3.0.3\",\n  \"info\": {\"title\": \"t\", \"version\": \"1\"}},\n  \"paths\": {}\n}\n"
	_, err := policy.Compile("spec.json", []byte(src))
	if err == nil || err.Error() != "spec.json:3:42: JSON: invalid character ',' after top-level value" {
		t.Errorf("error %v, want the stray brace's line and the JSON syntax error", err)
	}
	// A byte-order mark is no syntax error.
	good := strings.Replace(src, "}},\n", "},\n", 1) + ""
	good = strings.Replace(good, "\"paths\": {}\n", "\"paths\": {}, \"x-rate-limit\": false\n", 1)
	if _, err := policy.Compile("spec.json", append([]byte("\xef\xbb\xbf"), good...)); err != nil && strings.Contains(err.Error(), "JSON:") {
		t.Errorf("a JSON document after a byte-order mark: %v", err)
	}
}

// A $ref to another file is refused on its line: the document is one
// file.
func TestExternalRefHasALine(t *testing.T) {
	src := "openapi: 3.0.3\ninfo: {title: t, version: \"1\"}\nx-rate-limit: false\npaths:\n  /x:\n    get:\n      operationId: x\n      security: []\n      responses:\n        '429': {$ref: 'common.yaml#/components/responses/Limited'}\n"
	_, err := policy.Compile("spec.yaml", []byte(src))
	if want := `spec.yaml:10: $ref: "common.yaml#/components/responses/Limited" is in another file; the document must be one file (what the guard enforces is what it says)`; err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
}

// A string format validation does not check is an annotation: lint names
// the first place of each, and says nothing of the formats checked or of
// those that only say how to read a value.
func TestLintUncheckedFormat(t *testing.T) {
	src := `openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit: false
paths:
  /items/{id}:
    post:
      operationId: createItem
      security: []
      parameters:
        - {name: id, in: path, required: true, schema: {type: string, format: uuid}}
        - {name: note, in: query, schema: {type: string, format: free-text}}
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              properties:
                at: {type: string, format: date-time}
                secret: {type: string, format: password}
                n: {type: integer, format: int64}
                meta:
                  type: object
                  properties:
                    repo: {type: string, format: repo.nwo}
                    also: {type: string, format: free-text}
                links: {type: array, items: {type: string, format: uri-template}}
      responses: {"200": {description: ok}, "400": {description: bad}}
`
	want := []string{
		`spec.yaml:6: POST /items/{id} (createItem): warning: the format "free-text" of query.note is not checked, only described: check the value in the handler, or give its schema a pattern [unchecked-format]`,
		`spec.yaml:6: POST /items/{id} (createItem): warning: the format "uri-template" of body.links.0 is not checked, only described: check the value in the handler, or give its schema a pattern [unchecked-format]`,
		`spec.yaml:6: POST /items/{id} (createItem): warning: the format "repo.nwo" of body.meta.repo is not checked, only described: check the value in the handler, or give its schema a pattern [unchecked-format]`,
	}
	if got := lintWarnings(t, src, policy.WarnUncheckedFormat); !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	ignored := strings.Replace(src, "      security: []\n", "      security: []\n      x-lint-ignore: [unchecked-format]\n", 1)
	if got := lintWarnings(t, ignored, policy.WarnUncheckedFormat); len(got) != 0 {
		t.Errorf("ignored: %q", got)
	}
}

// kin-openapi's findings come with the compiler's, not instead of them,
// each on its operation's line where it names one: fixing what was said
// must not reveal another error that was there all along. Left out are
// only those the compiler said better: a scheme it named, a field the
// shape check named.
func TestValidationErrorsComeWithTheCompilers(t *testing.T) {
	badType := `openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit: false
paths:
  /g:
    get:
      operationId: getG
      security: [{nope: []}]
      parameters:
        - {name: q, in: query, schema: {type: strin}}
      responses: {'200': {description: ok}}
`
	const strin = `spec.yaml:6: GET /g (getG): parameter "q" schema is invalid: unsupported 'type' value "strin"`
	for _, c := range []struct{ name, src, want string }{
		{"a bad type beside an unknown scheme", badType,
			"spec.yaml:6: GET /g (getG): security[0].nope: unknown security scheme; components.securitySchemes does not declare it\n" + strin},
		{"the scheme fixed", strings.Replace(badType, "security: [{nope: []}]", "security: []", 1), strin},
		{"a root requirement every operation overrides", `openapi: 3.0.3
info: {title: t, version: "1"}
security: [{nope: []}]
paths:
  /g:
    get:
      operationId: getG
      security: []
      x-rate-limit: {name: t, limit: 0, window: 1m, key: ip}
      responses: {'200': {description: ok}}
`, `spec.yaml:6: GET /g (getG): x-rate-limit[0].limit: must be greater than 0, not 0
spec.yaml: invalid OpenAPI document: invalid security: security requirement /security/0/nope refers to undefined security scheme "nope"`},
		{"a schema's unknown field beside an operation's", `openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit: false
paths:
  /g:
    get:
      operationId: getG
      securty: []
      parameters:
        - {name: q, in: query, schema: {type: string, typo: 1}}
      responses: {'200': {description: ok}}
`, `spec.yaml:8:7: GET /g (getG): securty: not a field of an operation; did you mean security?
spec.yaml:6: GET /g (getG): parameter "q" schema is invalid: extra sibling fields: [typo]`},
		{"schemes the compiler refused, said once", `openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit: false
paths:
  /g:
    get:
      operationId: getG
      security: [{k: []}, {h: []}]
      responses: {'200': {description: ok}}
components:
  securitySchemes:
    k: {type: apiKey, name: X-K}
    h: {type: http}
`, `spec.yaml:6: GET /g (getG): security[0].k: scheme type "apiKey" cannot be enforced
spec.yaml:6: GET /g (getG): security[1].h: http scheme "" cannot be enforced; specguard verifies bearer tokens`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := compileErr(t, c.src); got != c.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, c.want)
			}
		})
	}
}

// A servers URL with a path (/api/v1) was taken without a word, and the
// operations were served at the root: a client following servers got 404.
// Lint says so where the URL is written, and the document's x-lint-ignore
// (or the operation's) silences it, for a service behind a proxy that
// strips the prefix.
func TestLintServerPath(t *testing.T) {
	op := "      security: [{bearer: []}]\n      x-rate-limit: false\n"
	paths := func(src string) []string { return lintWarnings(t, src, policy.WarnServerPath) }
	for _, c := range []struct {
		root, op string
		want     []string
	}{
		{"servers: [{url: /api/v1}]\n", op, []string{`spec.yaml:3: servers: warning: servers[0].url "/api/v1" has the path /api/v1, but specguard serves each operation at the path the document gives it`}},
		{"servers: [{url: 'https://api.example.com/v2/'}, {url: 'http://localhost:8080'}]\n", op, []string{`servers[0].url "https://api.example.com/v2/" has the path /v2/`}},
		{"servers: [{url: 'https://{host}/{base}', variables: {host: {default: api.example.com}, base: {default: v3}}}]\n", op, []string{`has the path /v3`}},
		{"", op + "      servers: [{url: /internal}]\n", []string{`spec.yaml:10: GET /things/{id} (getThing): warning: servers[0].url "/internal"`}},
		{"servers: [{url: /}, {url: 'https://api.example.com'}]\n", op, nil},
		{"x-lint-ignore: [server-path]\nservers: [{url: /api/v1}]\n", op + "      servers: [{url: /internal}]\n", nil},
		{"servers: [{url: /api/v1}]\n", op + "      x-lint-ignore: [server-path]\n", []string{`spec.yaml:3: servers:`}},
	} {
		got := paths(doc(c.root, c.op))
		if len(got) != len(c.want) {
			t.Errorf("%q %q: %q, want %d warnings", c.root, c.op, got, len(c.want))
			continue
		}
		for i := range got {
			if !strings.Contains(got[i], c.want[i]) || !strings.HasSuffix(got[i], "[server-path]") {
				t.Errorf("%q %q: %q, want it to hold %q", c.root, c.op, got[i], c.want[i])
			}
		}
	}
	misspelt := doc("x-lint-ignore: [server-pth]\n", op)
	if got := lintWarnings(t, misspelt, policy.WarnLintIgnore); len(got) != 1 || !strings.Contains(got[0], "server-pth") {
		t.Errorf("a misspelt x-lint-ignore at the document's root: %q, want one lint-ignore warning naming it", got)
	}
	// Another code there silences nothing, and is said to.
	other := doc("x-lint-ignore: [server-path, auth-responses]\n", op)
	if got := lintWarnings(t, other, policy.WarnLintIgnore); len(got) != 1 || !strings.Contains(got[0], "silences server-path and example-schema (of components and path items) only, not auth-responses") {
		t.Errorf("auth-responses in the document's x-lint-ignore: %q, want one lint-ignore warning naming it", got)
	}
}

// A tier's errors name its place in the document's list, whatever was
// refused before it: a tier refused while parsing left the ones after it
// one place off in the errors said of them later (helper-146).
func TestTierErrorsNameTheirPlaceAfterARefusedTier(t *testing.T) {
	got := compileErr(t, doc("", "      security: [{bearer: []}]\n      x-rate-limit:\n"+
		"        - {name: a, limit: 10, window: 1500ms, key: ip, who: anonymous}\n"+
		"        - {name: b, limit: 10, window: 1m, key: session, who: authenticated}\n"))
	want := "spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[0].window: 1500ms is not a whole number of seconds\n" +
		"spec.yaml:5: GET /things/{id} (getThing): x-rate-limit[1]: key session never applies: no security alternative accepts a cookie session"
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}
