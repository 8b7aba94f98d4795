package policy

import (
	"fmt"
	"maps"
	"slices"
	"strconv"

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

// maxSpread is how many schemas one value may be checked against.
const maxSpread = 4096

// tooSpread returns where the first schema of doc stands that has some
// value checked against more than maxSpread schemas; "" when none does.
// It walks what applies where: at a value, a schema and those it composes
// (allOf, anyOf, oneOf, not, if, then, else, dependentSchemas), each as
// many times as it is reached; at a value's property or item, the schemas
// the ones above give it, added up, so that two schemas naming one
// property's schema check that property twice, and a chain of them
// doubles at each level, even through a cycle (which grows, and is
// refused, or repeats, and is walked once).
func tooSpread(doc *openapi3.T) string {
	w := &spreadWalk{ids: map[*openapi3.Schema]int{}, done: map[string]bool{}, onPath: map[string]int{},
		plain: map[*openapi3.Schema]bool{}, plainOnPath: map[*openapi3.Schema]bool{}}
	check := func(refs ...*openapi3.SchemaRef) bool {
		return slices.ContainsFunc(refs, func(ref *openapi3.SchemaRef) bool {
			return ref != nil && ref.Value != nil && !w.walkOne(ref.Value)
		})
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

// applied are the schemas a value is checked against, each with how many
// times.
type applied map[*openapi3.Schema]int

// spreadWalk walks what applies at each value under a schema (see
// tooSpread). done holds the states (what applies, how many times) walked
// whole; onPath, by the schemas of each state on the way down, its count.
type spreadWalk struct {
	ids    map[*openapi3.Schema]int
	done   map[string]bool
	onPath map[string]int
	// plain are the schemas composing none (most) walked whole, each alone
	// at a value once (see walkOne); plainOnPath, those on the way down.
	plain, plainOnPath map[*openapi3.Schema]bool
}

// closure is a, with what each of its schemas composes, as many times as
// it is reached; nil once that is more than maxSpread.
func (w *spreadWalk) closure(a applied) applied {
	out, total := applied{}, 0
	inside := map[*openapi3.Schema]bool{} // a schema composing itself counts once
	var add func(s *openapi3.Schema, n int) bool
	add = func(s *openapi3.Schema, n int) bool {
		if s == nil || inside[s] {
			return true
		}
		if out[s] += n; out[s] > maxSpread {
			return false
		}
		if total += n; total > maxSpread {
			return false
		}
		inside[s] = true
		defer delete(inside, s)
		for _, m := range composed(s) {
			if !add(m, n) {
				return false
			}
		}
		return true
	}
	for s, n := range a {
		if !add(s, n) {
			return nil
		}
	}
	return out
}

// keys are a's state as strings: its schemas alone, and with their counts.
func (w *spreadWalk) keys(a applied) (set, full string) {
	ids := make([]int, 0, len(a))
	for s := range a {
		id, ok := w.ids[s]
		if !ok {
			id = len(w.ids)
			w.ids[s] = id
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var b, c []byte
	byID := make(map[int]int, len(a))
	for s, n := range a {
		byID[w.ids[s]] = n
	}
	for _, id := range ids {
		b = strconv.AppendInt(append(b, ','), int64(id), 10)
		c = strconv.AppendInt(append(strconv.AppendInt(append(c, ','), int64(id), 10), ':'), int64(byID[id]), 10)
	}
	return string(b), string(c)
}

// walk reports whether no value under a (a closure) is checked against
// more than maxSpread schemas.
func (w *spreadWalk) walk(a applied) bool {
	if a == nil {
		return false
	}
	if len(a) == 0 {
		return true
	}
	set, full := w.keys(a)
	if w.done[full] {
		return true
	}
	total := 0
	for _, n := range a {
		total += n
	}
	if before, ok := w.onPath[set]; ok {
		// The same schemas again below themselves: a cycle, walked once
		// when it checks no more than before; one that checks more at each
		// turn grows without end.
		return total <= before
	}
	w.onPath[set] = total
	defer delete(w.onPath, set)
	for _, next := range children(a) {
		if len(next) == 1 {
			if s, n := only(next); n == 1 {
				if !w.walkOne(s) { // no state to build
					return false
				}
				continue
			}
		}
		if !w.walk(w.closure(next)) {
			return false
		}
	}
	w.done[full] = true
	return true
}

// walkOne is walk of s alone at a value, once: without the state a walk
// builds where s composes nothing, as most schemas do. Such a state met
// again below itself is a cycle that repeats (one that grows meets a state
// of its own counted twice, which walk refuses).
func (w *spreadWalk) walkOne(s *openapi3.Schema) bool {
	if composes(s) {
		return w.walk(w.closure(applied{s: 1}))
	}
	if w.plain[s] || w.plainOnPath[s] {
		return true
	}
	w.plainOnPath[s] = true
	defer delete(w.plainOnPath, s)
	for _, ref := range s.Properties {
		if !w.walkRef(ref) {
			return false
		}
	}
	for _, ref := range s.PatternProperties {
		if !w.walkRef(ref) {
			return false
		}
	}
	for _, ref := range s.PrefixItems {
		if !w.walkRef(ref) {
			return false
		}
	}
	for _, ref := range [...]*openapi3.SchemaRef{s.Items, s.Contains, s.AdditionalProperties.Schema, s.UnevaluatedProperties.Schema, s.UnevaluatedItems.Schema} {
		if !w.walkRef(ref) {
			return false
		}
	}
	w.plain[s] = true
	return true
}

func (w *spreadWalk) walkRef(ref *openapi3.SchemaRef) bool {
	return ref == nil || ref.Value == nil || w.walkOne(ref.Value)
}

// only is the one schema of a, and its count.
func only(a applied) (*openapi3.Schema, int) {
	for s, n := range a {
		return s, n
	}
	return nil, 0
}

// composes reports whether s composes another schema (see composed).
func composes(s *openapi3.Schema) bool {
	return len(s.AllOf) > 0 || len(s.AnyOf) > 0 || len(s.OneOf) > 0 || len(s.DependentSchemas) > 0 ||
		s.Not != nil || s.If != nil || s.Then != nil || s.Else != nil
}

// composed are the schemas that apply to the same value as s.
func composed(s *openapi3.Schema) []*openapi3.Schema {
	var out []*openapi3.Schema
	add := func(refs ...*openapi3.SchemaRef) {
		for _, ref := range refs {
			if ref != nil && ref.Value != nil {
				out = append(out, ref.Value)
			}
		}
	}
	add(s.AllOf...)
	add(s.AnyOf...)
	add(s.OneOf...)
	add(s.Not, s.If, s.Then, s.Else)
	for _, ref := range s.DependentSchemas {
		add(ref)
	}
	return out
}

// children are what applies, before closure, at each part of a value a
// applies to: each property any of them names, any other property, an
// item. A schema for any property (additionalProperties, patternProperties,
// unevaluatedProperties) is counted at every property, named or not: a
// bound from above.
func children(a applied) []applied {
	named := map[string]applied{}
	other, items := applied{}, applied{}
	for s := range a {
		for name := range s.Properties {
			named[name] = applied{}
		}
	}
	for s, n := range a {
		var anyProp []*openapi3.Schema
		for _, ref := range append([]*openapi3.SchemaRef{s.AdditionalProperties.Schema, s.UnevaluatedProperties.Schema}, slices.Collect(maps.Values(s.PatternProperties))...) {
			if ref != nil && ref.Value != nil {
				anyProp = append(anyProp, ref.Value)
			}
		}
		for name, next := range named {
			if ref := s.Properties[name]; ref != nil && ref.Value != nil {
				next[ref.Value] += n
			}
			for _, x := range anyProp {
				next[x] += n
			}
		}
		for _, x := range anyProp {
			other[x] += n
		}
		for _, ref := range append([]*openapi3.SchemaRef{s.Items, s.Contains, s.UnevaluatedItems.Schema}, s.PrefixItems...) {
			if ref != nil && ref.Value != nil {
				items[ref.Value] += n
			}
		}
	}
	out := make([]applied, 0, len(named)+2)
	for _, next := range named {
		out = append(out, next)
	}
	return append(out, other, items)
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
	return &Error{Source: source, Where: where, Msg: fmt.Sprintf("a value would be checked against more than %d schemas (through allOf, anyOf, oneOf, not, if, then, else "+
		"and dependentSchemas, and a property several of those name; a schema reached two ways counts twice): each request would cost "+
		"that many checks; name a schema once, or flatten the chain", maxSpread)}
}
