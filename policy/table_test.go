package policy_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/specguard/specguard/policy"
)

const twoOps = `openapi: 3.0.3
info: {title: t, version: "1"}
security: [{bearer: []}, {}]
x-rate-limit:
  - {name: anon, limit: 60, window: 1m, key: ip, who: anonymous}
  - {name: user, limit: 600, window: 1m, burst: 100, key: principal, who: authenticated, on-store-error: allow}
paths:
  /posts:
    get:
      operationId: listPosts
      responses: {'200': {description: ok}}
    post:
      operationId: createPost
      security: [{oauth: [write]}, {key: [write], cookie: []}]
      x-rate-limit:
        - {name: w, limit: 10, window: 1m, key: principal, who: authenticated, shared: writes, cost: 2}
      x-require-fresh: false
      responses: {'200': {description: ok}}
  /posts/{id}:
    delete:
      operationId: deletePost
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      security: [{oauth: [write]}]
      x-rate-limit: [{name: w, limit: 10, window: 1m, key: principal, who: authenticated, shared: writes}]
      x-require-fresh: true
      responses: {'200': {description: ok}}
  /health:
    get:
      operationId: health
      security: []
      x-rate-limit: false
      responses: {'200': {description: ok}}
  /login:
    post:
      operationId: login
      security: []
      responses: {'200': {description: ok}}
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
    key: {type: apiKey, in: header, name: x-api-key}
    cookie: {type: apiKey, in: cookie, name: sid}
    oauth:
      type: oauth2
      flows:
        password: {tokenUrl: /token, scopes: {read: r, write: w}}
      x-roles: {user: [read, write], guest: [read]}
`

// The compiled table: security as OpenAPI defines it, tiers with their
// defaults, buckets, inheritance, roles, lookups.
func TestCompileTable(t *testing.T) {
	table, err := policy.Compile("two.yaml", []byte(twoOps))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(table.Operations()); got != 5 {
		t.Fatalf("%d operations, want 5", got)
	}

	list := table.Operation("listPosts")
	if list.Security.Public || !list.Security.Anonymous || len(list.Security.Alternatives) != 1 ||
		list.Security.Alternatives[0][0].Scheme.Name != "bearer" || list.Security.Access() != policy.AccessOptional {
		t.Errorf("listPosts inherits [bearer, {}]: %+v", list.Security)
	}
	if len(list.Limits) != 2 || list.Limits[0].Bucket != "listPosts/anon" || list.Limits[1].Burst != 100 ||
		!list.Limits[1].AllowOnStoreError || list.Limits[0].AllowOnStoreError || list.Limits[0].Burst != 60 || list.Limits[0].Cost != 1 {
		t.Errorf("listPosts inherits both default tiers: %+v", list.Limits)
	}

	create := table.Operation("createPost")
	alts := create.Security.Alternatives
	if create.Security.Anonymous || len(alts) != 2 || len(alts[1]) != 2 ||
		alts[1][0].Scheme.Name != "cookie" || alts[1][1].Scheme.Name != "key" || !slices.Equal(alts[1][1].Scopes, []string{"write"}) ||
		alts[1][1].Scheme.Param != "X-Api-Key" || alts[1][0].Scheme.Type != policy.SchemeAPIKeyCookie {
		t.Errorf("createPost replaces the default with oauth OR (key AND cookie): %+v", alts)
	}
	if w := create.Limits[0]; len(create.Limits) != 1 || w.Bucket != "shared:writes" || w.Cost != 2 || w.Who != policy.WhoAuthenticated ||
		w.Key != policy.KeyPrincipal || w.Window != time.Minute || w.Interval() != 6_000_000 {
		t.Errorf("createPost's own tier replaces the default: %+v", create.Limits)
	}
	if create.RequireFresh {
		t.Error("x-require-fresh: false")
	}

	del := table.Lookup("DELETE", "/posts/{id}")
	if del == nil || del.ID != "deletePost" || !del.RequireFresh || del.Limits[0].Bucket != "shared:writes" || del.Pattern != "/posts/{id}" {
		t.Errorf("deletePost: %+v", del)
	}
	if table.Lookup("GET", "/posts/{id}") != nil || table.Lookup("DELETE", "/posts/{x}") != nil {
		t.Error("Lookup found an operation the document does not have")
	}

	health := table.Operation("health")
	if !health.Security.Public || !health.Unlimited || len(health.Limits) != 0 || health.Security.Access() != policy.AccessPublic {
		t.Errorf("health: %+v", health)
	}
	// login is public: the default's authenticated tier is dropped, the
	// anonymous one applies.
	login := table.Operation("login")
	if len(login.Limits) != 1 || login.Limits[0].Name != "anon" {
		t.Errorf("login: %+v", login.Limits)
	}

	if !reflect.DeepEqual(table.Roles, map[string][]string{"user": {"read", "write"}, "guest": {"read"}}) || table.RoleScopes("admin") != nil {
		t.Errorf("roles: %v", table.Roles)
	}
	if !slices.Equal(table.Scopes, []string{"read", "write"}) {
		t.Errorf("scopes: %v", table.Scopes)
	}
	if len(table.Schemes) != 4 {
		t.Errorf("schemes in use: %v", table.Schemes)
	}
}

// Every problem of a document is reported, one line each, ordered by path
// then method (as Operations lists them).
func TestCompileReportsEverything(t *testing.T) {
	src := strings.NewReplacer(
		"      x-rate-limit: [{name: w, limit: 10, window: 1m, key: principal, who: authenticated, shared: writes}]\n",
		"      x-rate-limit: [{name: w, limit: 20, window: 1m, key: principal, who: authenticated, shared: writes}]\n",
		"      operationId: health\n", "      operationId: listPosts\n",
		"      x-require-fresh: false\n", "      x-require-fresh: 1\n",
	).Replace(twoOps)
	_, err := policy.Compile("two.yaml", []byte(src))
	want := strings.Join([]string{
		`two.yaml:9: GET /posts (listPosts): operationId: duplicate; GET /health uses it too`,
		`two.yaml:12: POST /posts (createPost): x-require-fresh: must be true or false, not 1`,
		`two.yaml:20: DELETE /posts/{id} (deletePost): x-rate-limit[0].shared: bucket "writes" is declared by POST /posts (createPost) with a different limit, window, burst or key`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Fatalf("got:\n%v\nwant:\n%s", err, want)
	}
}

// TestOpenIDConnectScheme: an openIdConnect scheme compiles with its
// provider, any scope name, and tiers keyed on any claim of its tokens.
func TestOpenIDConnectScheme(t *testing.T) {
	src := `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /things:
    get:
      operationId: listThings
      security: [{partner: [things:read]}, {bearer: []}]
      x-rate-limit:
        - {name: per-tenant, limit: 10, window: 1m, key: 'claim:tenant', who: authenticated}
      responses: {'200': {description: ok}}
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
    partner:
      type: openIdConnect
      openIdConnectUrl: https://id.example.com/realms/demo/.well-known/openid-configuration
      x-audience: [api, https://api.example.com]
      x-issuers: [https://id.example.com/realms/demo, https://id2.example.com/realms/demo]
      x-scopes-claim: scp
`
	table, err := policy.Compile("spec.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	providers := table.Providers()
	if len(providers) != 1 || providers[0].Name != "partner" || providers[0].Type != policy.SchemeOIDC || providers[0].Param != "Authorization" {
		t.Fatalf("providers: %+v", providers)
	}
	p := providers[0].Provider
	if got, want := strings.Join(p.Audience, ","), "api,https://api.example.com"; got != want {
		t.Errorf("audience %q, want %q", got, want)
	}
	if len(p.Issuers) != 2 || p.ScopesClaim != "scp" || p.Line != 14 {
		t.Errorf("provider %+v", p)
	}
	op := table.Operation("listThings")
	if got := op.Security.Alternatives[0][0].Scopes; len(got) != 1 || got[0] != "things:read" {
		t.Errorf("scopes %v", got)
	}
	if op.Limits[0].Key != policy.KeyClaim || op.Limits[0].Claim != "tenant" {
		t.Errorf("tier %+v", op.Limits[0])
	}
	if got := table.Routes()[0].Alternatives[0].Schemes[0].Type; got != "openIdConnect" {
		t.Errorf("route scheme type %q", got)
	}
	if !strings.Contains(p.String(), "audience api, https://api.example.com; issuers https://id.example.com/realms/demo, https://id2.example.com/realms/demo; scopes in scp") {
		t.Errorf("String() = %q", p.String())
	}
	// The same document without x-issuers takes the discovery issuer.
	if _, err := policy.Compile("spec.yaml", []byte(strings.Replace(src, "      x-issuers: [https://id.example.com/realms/demo, https://id2.example.com/realms/demo]\n", "", 1))); err != nil {
		t.Fatal(err)
	}
}

// TestExamplesAndParameterNames: an example that does not match its schema
// is a lint warning, not a reason to refuse (GitHub's description has
// hundreds); paths differing only in parameter names compile when their
// methods differ, and are refused when one method is declared on both.
func TestExamplesAndParameterNames(t *testing.T) {
	src := `openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit: false
paths:
  /things/{thing_id}:
    get:
      operationId: getThing
      security: []
      parameters: [{name: thing_id, in: path, required: true, schema: {type: string}}]
      responses:
        '200':
          description: ok
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Thing'}
  /things/{name}:
    delete:
      operationId: deleteThing
      security: []
      parameters: [{name: name, in: path, required: true, schema: {type: string}}]
      responses: {'204': {description: gone}}
components:
  schemas:
    Thing: {type: object, properties: {version: {type: string, example: 20.04}}}
`
	table, err := policy.Compile("spec.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if table.Lookup("GET", "/things/{thing_id}") == nil || table.Lookup("DELETE", "/things/{name}") == nil {
		t.Fatal("both operations must be in the table under their own patterns")
	}
	errs, warnings := policy.Lint("spec.yaml", []byte(src))
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	found := false
	for _, w := range warnings {
		if w.Code == policy.WarnExamples && strings.Contains(w.Msg, "20.04") {
			found = true
		}
	}
	if !found {
		t.Errorf("no example-schema warning for the example 20.04 of a string: %v", warnings)
	}

	same := strings.Replace(src, "    delete:\n      operationId: deleteThing", "    get:\n      operationId: getThingByName", 1)
	_, err = policy.Compile("spec.yaml", []byte(same))
	want := "spec.yaml:6: GET /things/{thing_id} (getThing): GET /things/{name} routes the same requests (paths differing only in parameter names are one path)"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("one method on both paths: %v, want %q", err, want)
	}
}
