package guard

import (
	"cmp"
	"encoding/json"
	"math"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/problem"
)

// The validator compares every number of a JSON body or a parameter as a
// float64; the handlers oapi-codegen generates bind it into the Go type of
// its schema.
// Past 2^53 a float64 holds only some integers, so an int64 of
// 10000000000000001 passed maximum: 10000000000000000 (it is that bound
// as a float64) and reached the handler as it was sent; a number of
// format float is a float32 in the handler, so 1e-50 passed
// exclusiveMinimum: 0 and reached it as 0. Such a number is checked
// again here, as the handler has it: an integer exactly, a float as a
// float32. Only the schemas that must hold where the number stands are
// asked (its own, its allOf's), not those of anyOf or oneOf.

// exactNumbers reports whether a JSON body of op may hold a number the
// validator cannot check as the handler has it: under an integer schema
// with a bound or multipleOf, or a float one with a bound. (An enum past
// 2^53 is compared as the validator compares it: the document's number
// is the float64 it was read into, its other digits lost.)
func exactNumbers(rb *openapi3.RequestBodyRef) bool {
	return jsonBodyHas(rb, func(s *openapi3.Schema) bool { return boundsNumbers(s, 0) })
}

// boundsNumbers reports whether s, or a schema of its values' parts,
// constrains a number in a way float64 may not decide (see exactNumbers).
func boundsNumbers(s *openapi3.Schema, depth int) bool {
	if s == nil || depth > maxFoldDepth {
		return false
	}
	bounded := s.Min != nil || s.Max != nil || s.ExclusiveMin.Value != nil || s.ExclusiveMax.Value != nil
	if isType(s, "integer") && (bounded || s.MultipleOf != nil) || isFloat32(s) && bounded {
		return true
	}
	parts := []*openapi3.SchemaRef{s.Items, s.AdditionalProperties.Schema}
	for _, p := range s.Properties {
		parts = append(parts, p)
	}
	for _, group := range []openapi3.SchemaRefs{s.AllOf, s.AnyOf, s.OneOf} {
		parts = append(parts, group...)
	}
	for _, p := range parts {
		if p != nil && boundsNumbers(p.Value, depth+1) {
			return true
		}
	}
	return false
}

func isType(s *openapi3.Schema, t string) bool { return s.Type != nil && s.Type.Includes(t) }

// isFloat32 reports whether s is a number a generated handler binds into
// a float32.
func isFloat32(s *openapi3.Schema) bool {
	return isType(s, "number") && !isType(s, "integer") && s.Format == "float"
}

// exactBody answers 400 and returns false when r's JSON body, already
// validated, holds a number that breaks its schema as the handler binds it
// (see exactNumbers). It walks the value the validator decoded.
func (g *Guard) exactBody(w http.ResponseWriter, r *http.Request, v *opValidation) bool {
	value, schema, ok := validatedJSON(r, v)
	if !ok {
		return true
	}
	if field, msg := inexact(value, schema, "body", 0); field != "" {
		g.refuse(w, r, v, problem.Invalid("The request does not match the API description.", []problem.FieldError{{Field: field, Message: msg}}))
		return false
	}
	return true
}

// inexact returns the first number of x (at field) that breaks s, or a
// schema that must hold with it, as its handler binds it, and what is
// wrong with it. It walks x, which the body's size bounds, as deep as it
// goes; s's allOf as deep as maxFoldDepth.
func inexact(x any, s *openapi3.Schema, field string, depth int) (string, string) {
	if n, ok := x.(json.Number); ok {
		if msg := breaksAll(n, s, depth); msg != "" {
			return field, msg
		}
		return "", ""
	}
	if s == nil || depth > maxFoldDepth {
		return "", ""
	}
	for _, m := range s.AllOf {
		if m != nil {
			if f, msg := inexact(x, m.Value, field, depth+1); f != "" {
				return f, msg
			}
		}
	}
	switch x := x.(type) {
	case map[string]any:
		for k, val := range x {
			p := s.Properties[k]
			if p == nil {
				p = s.AdditionalProperties.Schema
			}
			if p != nil {
				if f, msg := inexact(val, p.Value, field+"."+k, 0); f != "" {
					return f, msg
				}
			}
		}
	case []any:
		if s.Items != nil {
			for i, item := range x {
				if f, msg := inexact(item, s.Items.Value, field+"."+strconv.Itoa(i), 0); f != "" {
					return f, msg
				}
			}
		}
	}
	return "", ""
}

// checkExactParams refuses a number parameter that breaks its schema as
// the handler binds it (see exactNumbers): its first value, as the
// validator and the handler read a parameter given once, or each item of
// an array.
func (v *opValidation) checkExactParams(r *http.Request, rctx *chi.Context, q url.Values) []problem.FieldError {
	for _, p := range v.exactParams {
		s := p.Schema.Value
		if isType(s, "array") {
			if s.Items == nil {
				continue
			}
			for i, raw := range items(r, rctx, q, p) {
				if msg := breaksAll(json.Number(raw), s.Items.Value, 0); msg != "" {
					return []problem.FieldError{{Field: p.In + "." + p.Name + "." + strconv.Itoa(i), Message: msg}}
				}
			}
			continue
		}
		raw, found := paramValue(r, rctx, q, p)
		if !found {
			continue
		}
		if msg := breaksAll(json.Number(raw), s, 0); msg != "" {
			return []problem.FieldError{{Field: p.In + "." + p.Name, Message: msg}}
		}
	}
	return nil
}

// items are the items of array parameter p as a handler binds them: every
// value of an exploded query parameter, else its one value cut at its
// style's delimiter; none for a style it does not cut so (label, matrix).
func items(r *http.Request, rctx *chi.Context, q url.Values, p *openapi3.Parameter) []string {
	sm, err := p.SerializationMethod()
	if err != nil {
		return nil
	}
	if p.In == openapi3.ParameterInQuery && sm.Style == openapi3.SerializationForm && sm.Explode {
		return q[p.Name]
	}
	sep := ","
	switch sm.Style {
	case openapi3.SerializationSimple, openapi3.SerializationForm:
	case openapi3.SerializationSpaceDelimited:
		sep = " "
	case openapi3.SerializationPipeDelimited:
		sep = "|"
	default:
		return nil
	}
	raw, found := paramValue(r, rctx, q, p)
	if !found {
		return nil
	}
	return strings.Split(raw, sep)
}

// breaksAll is numberBreaks of n under s and its allOf.
func breaksAll(n json.Number, s *openapi3.Schema, depth int) string {
	if s == nil || depth > maxFoldDepth {
		return ""
	}
	for _, m := range s.AllOf {
		if m != nil {
			if msg := breaksAll(n, m.Value, depth+1); msg != "" {
				return msg
			}
		}
	}
	return numberBreaks(n, s)
}

// maxExact is 2^53: every integer up to it is a float64 of its own.
var maxExact = new(big.Int).Lsh(big.NewInt(1), 53)

// numberBreaks says what is wrong with n under s as a handler binds it:
// an integer past 2^53 compared exactly, a float as the float32 it
// becomes. "" when nothing is, or when the validator compared it as it is.
func numberBreaks(n json.Number, s *openapi3.Schema) string {
	var against func(limit float64) int // n as the handler reads it against a bound
	var reads string
	switch {
	case isType(s, "integer"):
		if len(strings.TrimLeft(string(n), "+-")) < 16 {
			return "" // below 10^15: exact as a float64
		}
		i, ok := new(big.Int).SetString(string(n), 10)
		if !ok || new(big.Int).Abs(i).Cmp(maxExact) <= 0 {
			return "" // no integer literal (the handler refuses it), or exact as a float64
		}
		at := new(big.Rat).SetInt(i)
		reads = i.String()
		if m := s.MultipleOf; m != nil && *m == math.Trunc(*m) && *m != 0 && !math.IsInf(*m, 0) {
			mi, _ := new(big.Float).SetFloat64(*m).Int(nil)
			if new(big.Int).Rem(i, mi).Sign() != 0 {
				return "number must be a multiple of " + mi.String() + " (compared exactly: " + reads + ")"
			}
		}

		against = func(limit float64) int { return at.Cmp(new(big.Rat).SetFloat64(limit)) }
	case isFloat32(s):
		f, err := n.Float64()
		f32 := float64(float32(f))
		if err != nil || f32 == f || math.IsInf(f32, 0) {
			return "" // the validator refused it, the handler does, or the float32 is the number
		}
		reads = "the float32 " + strconv.FormatFloat(f32, 'g', -1, 32)
		// The handler's float32 against the bound as a float32: 0.1 is
		// at most 0.1 there, both of them 0.100000001.
		against = func(limit float64) int { return cmp.Compare(f32, float64(float32(limit))) }
	default:
		return ""
	}
	for _, b := range bounds(s) {
		c := against(b.at)
		var what string
		switch {
		case b.lower && b.exclusive && c <= 0:
			what = "more than"
		case b.lower && !b.exclusive && c < 0:
			what = "at least"
		case !b.lower && b.exclusive && c >= 0:
			what = "less than"
		case !b.lower && !b.exclusive && c > 0:
			what = "at most"
		default:
			continue
		}
		return "number must be " + what + " " + strconv.FormatFloat(b.at, 'f', -1, 64) + " (compared as the handler reads it: " + reads + ")"
	}
	return ""
}

type bound struct {
	at               float64
	lower, exclusive bool
}

// bounds are s's minimum and maximum, exclusive or not, in the style of
// OpenAPI 3.0 (a boolean beside them) and of 3.1 (a number of their own).
func bounds(s *openapi3.Schema) []bound {
	var out []bound
	if s.Min != nil {
		out = append(out, bound{*s.Min, true, s.ExclusiveMin.IsTrue()})
	}
	if s.ExclusiveMin.Value != nil {
		out = append(out, bound{*s.ExclusiveMin.Value, true, true})
	}
	if s.Max != nil {
		out = append(out, bound{*s.Max, false, s.ExclusiveMax.IsTrue()})
	}
	if s.ExclusiveMax.Value != nil {
		out = append(out, bound{*s.ExclusiveMax.Value, false, true})
	}
	return out
}
