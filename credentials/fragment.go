package credentials

import (
	_ "embed"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/specguard/specguard/policy"
)

// Fragment is the OpenAPI document of the credential operations as the
// service serves them (credentials/openapi.yaml): copy its paths and
// components into your document. Each operation carries x-credential, the
// kind of operation it is; its path, operationId, summary, security,
// x-rate-limit and scopes are yours to change, its request and answers
// are not (New checks them), and an operation that acts for its caller
// (logout, sessions, me, API keys, the admin ones) must require a
// credential.
//
//go:embed openapi.yaml
var Fragment []byte

// ExtCredential marks an operation of a document as one the service
// serves, naming which: x-credential: login.
const ExtCredential = policy.ExtCredential

// Kinds are the x-credential values the service serves, in the order of
// the Fragment.
var Kinds = []string{"register", "login", "token", "refresh", "logout", "logout-all", "session", "list-sessions",
	"delete-session", "me", "list-api-keys", "create-api-key", "delete-api-key", "list-users", "disable-user",
	"update-user", "jwks"}

var (
	fragmentOnce sync.Once
	fragmentOps  map[string]*policy.Operation // by kind
	fragmentErr  error
)

// fragment returns the Fragment's operations by kind.
func fragment() (map[string]*policy.Operation, error) {
	fragmentOnce.Do(func() {
		table, err := policy.Compile("credentials/openapi.yaml", Fragment)
		if err != nil {
			fragmentErr = err
			return
		}
		fragmentOps = map[string]*policy.Operation{}
		for _, op := range table.Operations() {
			if kind, _ := op.Spec.Extensions[ExtCredential].(string); kind != "" {
				fragmentOps[kind] = op
			}
		}
	})
	return fragmentOps, fragmentErr
}

// bind finds the credential operations of the service's table, checks
// each against the Fragment and prepares its handler.
func (s *Service) bind() error {
	want, err := fragment()
	if err != nil {
		return fmt.Errorf("credentials: the fragment does not compile: %w", err)
	}
	var errs policy.Errors
	fail := func(op *policy.Operation, format string, args ...any) {
		errs = append(errs, &policy.Error{Source: s.table.Source, Line: op.Line, Where: fmt.Sprintf("%s %s (%s)", op.Method, op.Path, op.ID),
			Field: ExtCredential, Msg: fmt.Sprintf(format, args...)})
	}
	seen := map[string]*policy.Operation{}
	for _, op := range s.table.Operations() {
		raw, marked := op.Spec.Extensions[ExtCredential]
		if !marked {
			continue
		}
		kind, _ := raw.(string)
		ref := want[kind]
		if ref == nil {
			fail(op, "%v is not an operation specguard serves (one of %s)", raw, strings.Join(Kinds, ", "))
			continue
		}
		if other := seen[kind]; other != nil {
			fail(op, "%s is declared twice (also %s %s)", kind, other.Method, other.Path)
			continue
		}
		seen[kind] = op
		if op.Method != ref.Method {
			fail(op, "%s is served as %s, not %s", kind, ref.Method, op.Method)
			continue
		}
		if diff := compareOps(ref, op); diff != "" {
			fail(op, "%s: %s differs from what specguard serves (credentials.Fragment)", kind, diff)
			continue
		}
		// What acts for its caller requires a credential in the fragment:
		// its handler reads the caller, and so must the document.
		if ref.Security.Access() == policy.AccessProtected && op.Security.Access() != policy.AccessProtected {
			fail(op, "%s acts for its caller, so its security must require a credential: it admits anonymous callers ({} or security: [])", kind)
			continue
		}
		h := s.handler(kind, op)
		if (kind == "session") && s.cookie == "" {
			fail(op, "session needs an apiKey scheme in a cookie (the session cookie) that some operation uses")
			continue
		}
		s.routes = append(s.routes, route{op: op, h: h})
	}
	s.passwordRule = passwordRuleOf(seen["register"])
	if seen["register"] != nil && !s.roleGrants(s.cfg.registerRole) {
		fail(seen["register"], "register gives new accounts the role %q, which the document's x-roles does not declare (see WithRegistrationRole)", s.cfg.registerRole)
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// handler is the handler of kind, served at op.
func (s *Service) handler(kind string, op *policy.Operation) http.HandlerFunc {
	switch kind {
	case "register":
		return s.register
	case "login":
		return s.login
	case "token":
		return s.token
	case "refresh":
		return s.refresh
	case "logout":
		return s.logout
	case "logout-all":
		return s.logoutAll
	case "session":
		return s.session
	case "list-sessions":
		return s.listSessions
	case "delete-session":
		return s.deleteSession(op)
	case "me":
		return s.me
	case "list-api-keys":
		return s.listKeys
	case "create-api-key":
		return s.createKey
	case "delete-api-key":
		return s.deleteKey(op)
	case "list-users":
		return s.listUsers
	case "disable-user":
		return s.disableUser(op)
	case "update-user":
		return s.updateUser(op)
	}
	return s.jwks
}

// compareOps says where got's request or answers differ in shape from
// want's, or "" when they do not: the same path parameters, want's query
// parameters (a handler reads them, so the guard must validate them), the same
// request body media types with schemas of the same shape, and every
// status want declares declared by got (or its default) with the same
// media types and shapes. Descriptions, examples, bounds, formats, enums,
// security and limits are the document's to choose.
func compareOps(wantOp, gotOp *policy.Operation) string {
	if n, m := pathParams(wantOp), pathParams(gotOp); n != m {
		return fmt.Sprintf("parameters: %d path parameters, want %d", m, n)
	}
	for _, p := range wantOp.Parameters() {
		if p.In == openapi3.ParameterInQuery && !slices.ContainsFunc(gotOp.Parameters(), func(q *openapi3.Parameter) bool {
			return q.In == p.In && q.Name == p.Name
		}) {
			return fmt.Sprintf("parameters: query parameter %s: missing", p.Name)
		}
	}
	want, got := wantOp.Spec, gotOp.Spec
	if d := compareContent("requestBody", bodyContent(want), bodyContent(got)); d != "" {
		return d
	}
	for _, status := range slices.Sorted(maps.Keys(want.Responses.Map())) {
		w := want.Responses.Value(status)
		g := got.Responses.Value(status)
		if g == nil {
			g = got.Responses.Default()
		}
		if g == nil || g.Value == nil {
			return fmt.Sprintf("responses.%s: missing", status)
		}
		if d := compareContent("responses."+status, w.Value.Content, g.Value.Content); d != "" {
			return d
		}
	}
	return ""
}

// pathParams counts op's path parameters, its path item's included.
func pathParams(op *policy.Operation) int {
	n := 0
	for _, ps := range []openapi3.Parameters{op.Spec.Parameters, op.PathItem.Parameters} {
		for _, p := range ps {
			if p.Value != nil && p.Value.In == "path" {
				n++
			}
		}
	}
	return n
}

func bodyContent(op *openapi3.Operation) openapi3.Content {
	if op.RequestBody == nil || op.RequestBody.Value == nil {
		return nil
	}
	return op.RequestBody.Value.Content
}

func compareContent(where string, want, got openapi3.Content) string {
	for _, mt := range slices.Sorted(maps.Keys(want)) {
		g := got.Get(mt)
		if g == nil {
			return fmt.Sprintf("%s: media type %s: missing", where, mt)
		}
		if d := compareSchema(where+"."+mt, want.Get(mt).Schema, g.Schema); d != "" {
			return d
		}
	}
	for mt := range got {
		if want.Get(mt) == nil {
			return fmt.Sprintf("%s: media type %s: specguard does not %s it", where, mt, map[bool]string{true: "read", false: "write"}[where == "requestBody"])
		}
	}
	return ""
}

// shape is what of a schema the handlers rely on: types, properties,
// which are required, items.
type shape struct {
	typ      string
	props    map[string]*shape
	required []string
	items    *shape
}

func shapeOf(ref *openapi3.SchemaRef, depth int) *shape {
	if ref == nil || ref.Value == nil || depth > 8 {
		return nil
	}
	s := ref.Value
	out := &shape{props: map[string]*shape{}}
	if s.Type != nil && len(*s.Type) > 0 {
		out.typ = (*s.Type)[0]
	}
	merge := func(s *openapi3.Schema) {
		for name, p := range s.Properties {
			out.props[name] = shapeOf(p, depth+1)
		}
		out.required = append(out.required, s.Required...)
	}
	merge(s)
	for _, part := range s.AllOf {
		if part.Value != nil {
			if out.typ == "" && part.Value.Type != nil && len(*part.Value.Type) > 0 {
				out.typ = (*part.Value.Type)[0]
			}
			merge(part.Value)
		}
	}
	if out.typ == "" && len(out.props) > 0 {
		out.typ = "object"
	}
	sort.Strings(out.required)
	out.required = slices.Compact(out.required)
	if s.Items != nil {
		out.items = shapeOf(s.Items, depth+1)
	}
	return out
}

func compareSchema(where string, want, got *openapi3.SchemaRef) string {
	return diffShape(where, shapeOf(want, 0), shapeOf(got, 0))
}

func diffShape(where string, want, got *shape) string {
	switch {
	case want == nil && got == nil:
		return ""
	case want == nil || got == nil:
		return where + ": a schema where " + map[bool]string{true: "none is", false: "one is"}[want == nil] + " served"
	case want.typ != got.typ:
		return fmt.Sprintf("%s: type %q, want %q", where, got.typ, want.typ)
	case !slices.Equal(want.required, got.required):
		return fmt.Sprintf("%s: required [%s], want [%s]", where, strings.Join(got.required, ", "), strings.Join(want.required, ", "))
	}
	for _, name := range slices.Sorted(maps.Keys(want.props)) {
		g, ok := got.props[name]
		if !ok {
			return fmt.Sprintf("%s.%s: missing", where, name)
		}
		if d := diffShape(where+"."+name, want.props[name], g); d != "" {
			return d
		}
	}
	for name := range got.props {
		if _, ok := want.props[name]; !ok {
			return fmt.Sprintf("%s.%s: specguard has no such property", where, name)
		}
	}
	if want.items != nil || got.items != nil {
		return diffShape(where+"[]", want.items, got.items)
	}
	return ""
}

// credentialOp returns table's operation marked x-credential kind, or nil.
func credentialOp(table *policy.Table, kind string) *policy.Operation {
	for _, op := range table.Operations() {
		if k, _ := op.Spec.Extensions[ExtCredential].(string); k == kind {
			return op
		}
	}
	return nil
}
