package policy

import (
	"fmt"
	"maps"
	"slices"

	"github.com/getkin/kin-openapi/openapi3"
)

// A value is checked against its schema and every schema its allOf, anyOf,
// oneOf and not name, and theirs, one reached by two ways twice: a chain of
// schemas each naming the next twice (S0: allOf [S1, S1], S1: allOf [S2,
// S2] ...) is a few lines per level and doubles the work at each. Twenty
// levels made one request of 12 bytes cost a second of CPU, and
// `specguard lint`, which checks the document's examples against their
// schemas, ran for hours on a 3 KB document. A document is refused when a
// schema of it spreads so.

// maxSpread is how many schemas one value may be checked against through
// allOf, anyOf, oneOf and not.
const maxSpread = 4096

// tooSpread returns where the first schema of doc stands whose allOf,
// anyOf, oneOf and not spread past maxSpread schemas; "" when none does.
// It counts each schema once, however it is reached.
func tooSpread(doc *openapi3.T) string {
	spread := map[*openapi3.Schema]int{}
	var spreadOf func(s *openapi3.Schema) int
	spreadOf = func(s *openapi3.Schema) int {
		if s == nil {
			return 0
		}
		if n, ok := spread[s]; ok {
			return n
		}
		spread[s] = 1 // while it is counted: a cycle counts once
		n := 1
		eachComposed(s, func(m *openapi3.Schema) bool {
			n = min(n+spreadOf(m), maxSpread+1)
			return n <= maxSpread
		})
		spread[s] = n
		return n
	}
	seen := map[*openapi3.Schema]bool{}
	var worst func(s *openapi3.Schema) int
	worst = func(s *openapi3.Schema) int {
		if s == nil || seen[s] {
			return 0
		}
		seen[s] = true
		n := spreadOf(s)
		more := func(p *openapi3.Schema) bool {
			n = max(n, worst(p))
			return n <= maxSpread
		}
		if n <= maxSpread && eachComposed(s, more) {
			eachPart(s, more)
		}
		return n
	}
	check := func(refs ...*openapi3.SchemaRef) bool {
		return slices.ContainsFunc(refs, func(ref *openapi3.SchemaRef) bool { return ref != nil && worst(ref.Value) > maxSpread })
	}
	if c := doc.Components; c != nil {
		for _, name := range slices.Sorted(maps.Keys(c.Schemas)) {
			if check(c.Schemas[name]) {
				return "components.schemas." + name
			}
		}
	}
	if doc.Paths != nil {
		for _, path := range doc.Paths.InMatchingOrder() {
			item := doc.Paths.Value(path)
			for _, method := range slices.Sorted(maps.Keys(item.Operations())) {
				op := item.Operations()[method]
				where := method + " " + path
				if op.OperationID != "" {
					where += " (" + op.OperationID + ")"
				}
				if check(opSchemas(item, op)...) {
					return where
				}
			}
		}
	}
	return ""
}

// eachComposed calls f with each schema s composes (its allOf, anyOf, oneOf
// and not) while f returns true, and reports whether it always did.
func eachComposed(s *openapi3.Schema, f func(*openapi3.Schema) bool) bool {
	for _, group := range [...]openapi3.SchemaRefs{s.AllOf, s.AnyOf, s.OneOf, {s.Not}} {
		for _, m := range group {
			if m != nil && m.Value != nil && !f(m.Value) {
				return false
			}
		}
	}
	return true
}

// eachPart calls f with the schema of each part of s's values (items,
// properties) while f returns true.
func eachPart(s *openapi3.Schema, f func(*openapi3.Schema) bool) {
	call := func(ref *openapi3.SchemaRef) bool { return ref == nil || ref.Value == nil || f(ref.Value) }
	if !call(s.Items) || !call(s.AdditionalProperties.Schema) {
		return
	}
	for _, ref := range s.PrefixItems {
		if !call(ref) {
			return
		}
	}
	for _, ref := range s.Properties {
		if !call(ref) {
			return
		}
	}
}

// opSchemas are the schemas of op's parameters (and its path item's),
// request body, answers and their headers.
func opSchemas(item *openapi3.PathItem, op *openapi3.Operation) []*openapi3.SchemaRef {
	var out []*openapi3.SchemaRef
	content := func(c openapi3.Content) {
		for _, mt := range c {
			if mt != nil {
				out = append(out, mt.Schema)
			}
		}
	}
	for _, p := range append(slices.Clone(item.Parameters), op.Parameters...) {
		if p != nil && p.Value != nil {
			out = append(out, p.Value.Schema)
			content(p.Value.Content)
		}
	}
	if op.RequestBody != nil && op.RequestBody.Value != nil {
		content(op.RequestBody.Value.Content)
	}
	if op.Responses != nil {
		for _, r := range op.Responses.Map() {
			if r != nil && r.Value != nil {
				content(r.Value.Content)
				for _, h := range r.Value.Headers {
					if h != nil && h.Value != nil {
						out = append(out, h.Value.Schema)
						content(h.Value.Content)
					}
				}
			}
		}
	}
	return out
}

// spreadError is the error of a document with a schema spread too far.
func spreadError(source, where string) *Error {
	return &Error{Source: source, Where: where, Msg: fmt.Sprintf("a value would be checked against more than %d schemas through allOf, anyOf, oneOf and not "+
		"(a schema reached two ways counts twice): each request would cost that many checks; name a schema once, or flatten the chain", maxSpread)}
}
