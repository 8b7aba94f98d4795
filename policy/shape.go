package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/parser"
	"github.com/specguard/specguard/internal/text"
	"github.com/specguard/specguard/internal/yamldoc"
	yaml3 "gopkg.in/yaml.v3"
)

// The shape check runs beside the OpenAPI loader. It reads the document's
// outline (outline.go), which knows where every key is, so that what the
// loader would report without a line, or not at all, is an error naming
// its line and column:
//   - a syntax error (a bad indentation, an unclosed quote), once, at the
//     place the parser stopped;
//   - a key given twice in one object (only one of the two would count,
//     silently);
//   - a field OpenAPI does not define in the objects the compiler reads
//     (the document, path items, operations, security schemes), with the
//     field it was probably meant to be ("securty");
//   - an extension one or two edits away from one specguard reads
//     ("x-rate-limt"), and one of specguard's extensions where it is not
//     read (x-rate-limit on a path item): either would leave an operation
//     silently less protected than its author wrote.

// Fields OpenAPI 3.0 and 3.1 define, by object.
var (
	rootFields = []string{"openapi", "info", "jsonSchemaDialect", "servers", "paths", "webhooks", "components",
		"security", "tags", "externalDocs"}
	pathItemFields = []string{"$ref", "summary", "description", "get", "put", "post", "delete", "options", "head",
		"patch", "trace", "servers", "parameters"}
	operationFields = []string{"tags", "summary", "description", "externalDocs", "operationId", "parameters",
		"requestBody", "responses", "callbacks", "deprecated", "security", "servers"}
	componentsFields = []string{"schemas", "responses", "parameters", "examples", "requestBodies", "headers",
		"securitySchemes", "links", "callbacks", "pathItems"}
	schemeFields = []string{"$ref", "type", "description", "name", "in", "scheme", "bearerFormat", "flows",
		"openIdConnectUrl"}
)

// extensions are those specguard reads, with the objects it reads each on.
var extensions = map[string][]string{
	ExtRateLimit:    {"document", "operation"},
	ExtRequireFresh: {"operation"},
	ExtOwner:        {"operation"},
	ExtLintIgnore:   {"document", "operation", "security scheme"},
	ExtRoles:        {"security scheme"},
	ExtAudience:     {"security scheme"},
	ExtIssuers:      {"security scheme"},
	ExtScopesClaim:  {"security scheme"},
	ExtIntrospect:   {"security scheme"},
	ExtCredential:   {"operation"},
}

// plural names the objects an extension is read on.
var plural = map[string]string{"document": "the document", "operation": "operations", "security scheme": "security schemes"}

// checkShape reports what is described above. A syntax error is the only
// error returned when there is one: nothing else can be read.
//
// A JSON document is read by outlineJSON. Any other is read as the OpenAPI
// loader reads it (yaml.v3), surrogate escapes rewritten (readSurrogates,
// by compileDoc). Only when that fails is it read again by
// goccy/go-yaml, whose errors point at the line and column where the
// document goes wrong rather than at the start of the enclosing block.
func checkShape(source string, data []byte) (errs Errors, syntax bool, meant []meant, lines keyLines) {
	var root object
	var dups []dup
	if utf8.Valid(data) && json.Valid(data) {
		root, dups = outlineJSON(data)
		lines = linesOf(root)
	} else if err := jsonSyntax(source, data); err != nil {
		return Errors{err}, true, nil, nil
	} else {
		var n yaml3.Node
		dec := yaml3.NewDecoder(bytes.NewReader(data))
		if err := dec.Decode(&n); err != nil && err != io.EOF {
			return Errors{syntaxError(source, data, err)}, true, nil, nil
		}
		if len(n.Content) == 0 {
			return nil, false, nil, nil
		}
		// The loader reads the first YAML document of a stream; what
		// follows another "---" would be dropped unread, whatever it
		// declares. An empty one (a "---" at the end) is nothing.
		if line, err := yamldoc.After(dec); err != nil {
			return Errors{syntaxError(source, data, err)}, true, nil, nil
		} else if line != 0 {
			return Errors{&Error{Source: source, Line: line, Msg: yamldoc.Message}}, true, nil, nil
		}
		var truncated bool
		root, dups, truncated = outlineYAML(n.Content[0])
		if truncated {
			return Errors{&Error{Source: source, Line: 1, Msg: fmt.Sprintf("merge keys and aliases bring in more than %d members, more than specguard reads to check what they bring (a field beside a $ref is dropped unread): write them out", maxMerged)}}, true, nil, nil
		}
	}
	s := &shape{source: source}
	for _, d := range dups {
		s.errs = append(s.errs, &Error{Source: source, Line: d.line, Col: d.col, Field: d.name,
			Msg: fmt.Sprintf("given twice in one object (first on line %d); only the last would count", d.first)})
	}
	top := s.fields(root, "", "document", rootFields)
	if paths := top["paths"]; paths != nil {
		for _, path := range paths.obj {
			item := s.fields(path.obj, path.name, "path item", pathItemFields)
			for i := range path.obj {
				op := &path.obj[i]
				method := strings.ToUpper(op.name)
				if item[op.name] != op || !slices.Contains(methods, method) {
					continue
				}
				where := method + " " + path.name
				for _, m := range op.obj {
					if m.name == "operationId" {
						where += " (" + m.text + ")"
					}
				}
				// The loader reads a null security as none at all: the
				// document's default, which is not what was written. Also
				// when a YAML merge key or an alias brings it in.
				nullSecurity := func(m *member, how string) {
					if m != nil && m.null {
						s.errs = append(s.errs, &Error{Source: s.source, Line: m.line, Col: m.col, Where: where, Field: m.name,
							Msg: "null" + how + " is not a list of requirements; write [] for a public operation, or leave security out for the document's default"})
					}
				}
				nullSecurity(s.fields(op.obj, where, "operation", operationFields)["security"], "")
				nullSecurity(mergedField(op.obj, "security"), fmt.Sprintf(" (merged into the operation on line %d)", op.line))
				if op.obj == nil && len(op.merged) == 1 {
					nullSecurity(givenField(op.merged[0], "security"), fmt.Sprintf(" (in the mapping the operation on line %d is an alias of)", op.line))
				}
			}
		}
	}
	if comps := top["components"]; comps != nil {
		c := s.fields(comps.obj, "components", "components", componentsFields)
		if schemes := c["securitySchemes"]; schemes != nil {
			// A template merged beside the $ref of many schemes is said
			// once, at its line: k of its fields in n schemes were k×n
			// errors from k+n lines.
			reported := map[*member]bool{}
			for i := range schemes.obj {
				m := &schemes.obj[i]
				where := "components.securitySchemes." + m.name
				given := effective(m)
				ref := slices.ContainsFunc(given, func(o *member) bool { return o.name == "$ref" })
				allowed := schemeFields
				if ref {
					allowed = append(slices.Clip(schemeFields), "summary") // a Reference Object's (3.1)
				}
				s.fields(m.obj, where, "security scheme", allowed)
				if !ref {
					continue
				}
				// The loader keeps a $ref's target and drops what is
				// written beside it (also through a YAML alias or merge
				// key): an x-audience or an openIdConnectUrl there would
				// leave the scheme the target's, accepting its tokens.
				for _, o := range given {
					// Another tool's extension: nothing of ours to lose.
					// Not one of ours, nor one an edit from it
					// (x-audiance), which fields reports on the scheme
					// itself but not through an alias.
					_, ours := extensions[o.name]
					msg, _ := extensionProblem(o.name, "security scheme", o.obj != nil || o.text == "true" || o.text == "false")
					other := strings.HasPrefix(o.name, "x-") && !ours && msg == ""
					if o.name != "$ref" && o.name != "description" && o.name != "summary" && !other && !reported[o] {
						reported[o] = true
						s.errs = append(s.errs, &Error{Source: s.source, Line: o.line, Col: o.col, Where: where, Field: o.name,
							Msg: "beside a $ref nothing is read (the scheme is the target's); declare the scheme in full instead"})
					}
				}
			}
		}
	}
	return s.errs, false, s.meant, lines
}

// effective returns the members m's value has as the loader reads it:
// those given, and those an alias or a merge key (<<) brings in. The
// outline shares a template's object between its references: each object
// is walked once (a merge of one twice adds nothing), or a chain of
// templates each merging the one before twice would be walked 2^n times.
func effective(m *member) []*member {
	var out []*member
	seen := map[*member]bool{}
	var walk func(m *member)
	add := func(o object) {
		if len(o) == 0 || seen[&o[0]] {
			return
		}
		seen[&o[0]] = true
		for i := range o {
			if o[i].name == "<<" {
				walk(&o[i])
			} else {
				out = append(out, &o[i])
			}
		}
	}
	walk = func(m *member) {
		add(m.obj)
		for _, o := range m.merged {
			add(o)
		}
	}
	walk(m)
	return out
}

// syntaxError is the one error of a document that does not parse.
// jsonSyntax is the syntax error of a document named *.json that is not
// JSON, where encoding/json finds it: read as YAML instead (JSON's flow
// style is YAML), a stray brace gave errors about fields far from it.
// Nil for any other document.
func jsonSyntax(source string, data []byte) *Error {
	if !strings.HasSuffix(strings.ToLower(source), ".json") {
		return nil
	}
	// A byte-order mark (Notepad's, PowerShell's) is no syntax error:
	// such a document is read as YAML, as before.
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var v any
	err := json.Unmarshal(data, &v)
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return nil
	}
	line, col := 1, 1
	for _, r := range string(data[:min(int(se.Offset), len(data))]) {
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return &Error{Source: source, Line: line, Col: max(col-1, 1), Msg: "JSON: " + text.OneLine(se.Error())}
}

func syntaxError(source string, data []byte, err error) *Error {
	if _, gerr := parser.ParseBytes(data, 0, parser.AllowDuplicateMapKey()); gerr != nil {
		var yerr yaml.Error
		if errors.As(gerr, &yerr) && yerr.GetToken() != nil {
			pos := yerr.GetToken().Position
			msg := strings.ReplaceAll(yerr.GetMessage(), "\t", `\t`)
			return &Error{Source: source, Line: pos.Line, Col: pos.Column, Msg: "YAML: " + text.OneLine(msg)}
		}
	}
	// goccy read what yaml.v3 did not: yaml.v3's error names a line.
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		n, after, ok := strings.Cut(rest, ": ")
		if l, err := strconv.Atoi(n); ok && err == nil {
			line, msg = l, after
		}
	}
	if line == 0 {
		line = errorLine(data, err.Error())
	}
	return &Error{Source: source, Line: line, Msg: "YAML: " + text.OneLine(msg)}
}

// errorLine finds the line of a yaml.v3 error whose message names none
// ("found invalid Unicode character escape code"): the fewest leading
// lines of data that fail with that same message end with it. A prefix
// cut before the fault fails otherwise (or not at all), one that includes
// it fails with the fault, so a binary search finds it. 0 when not found.
func errorLine(data []byte, msg string) int {
	var starts []int // where each line after the first starts
	for i, c := range data {
		if c == '\n' {
			starts = append(starts, i+1)
		}
	}
	lines := len(starts) + 1
	sameError := func(n int) bool { // the first n lines fail with msg
		end := len(data)
		if n < lines {
			end = starts[n-1]
		}
		var v yaml3.Node
		err := yaml3.Unmarshal(data[:end], &v)
		return err != nil && err.Error() == msg
	}
	if !sameError(lines) {
		return 0
	}
	lo, hi := 1, lines
	for lo < hi {
		mid := (lo + hi) / 2
		if sameError(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// meant is a misspelled field and the one it was probably meant to be: the
// compiler's complaints about that one missing say the same thing again.
type meant struct{ where, field string }

type shape struct {
	source string
	errs   Errors
	meant  []meant
}

// fields checks the keys of the object o (of kind, known fields allowed)
// and returns its members by key, the last where a key is given twice.
func (s *shape) fields(o object, where, kind string, allowed []string) map[string]*member {
	out := map[string]*member{}
	for i := range o {
		m := &o[i]
		name := m.name
		out[name] = m
		fail := func(format string, args ...any) {
			s.errs = append(s.errs, &Error{Source: s.source, Line: m.line, Col: m.col, Where: where, Field: name, Msg: fmt.Sprintf(format, args...)})
		}
		switch {
		case name == "<<": // a YAML merge key
		case strings.HasPrefix(name, "x-"):
			if msg, near := extensionProblem(name, kind, m.obj != nil || m.text == "true" || m.text == "false"); msg != "" {
				fail("%s", msg)
				if near != "" {
					s.meant = append(s.meant, meant{where, near})
					s.errs[len(s.errs)-1].near = near
				}
			}
		case !slices.Contains(allowed, name):
			if near := text.Nearest(name, allowed, 2); near != "" {
				fail("not a field of %s; did you mean %s?", article(kind), near)
				s.meant = append(s.meant, meant{where, near})
			} else {
				fail("not a field of %s (OpenAPI allows %s, and x- extensions)", article(kind), strings.Join(allowed, ", "))
			}
		}
	}
	return out
}

// extensionProblem says what is wrong with the extension name on an
// object of kind: one of specguard's where it is not read, or one an edit
// or two from one of them, or that begins as a guarding extension read on
// kind does (see extendedFrom; near, the one it was probably meant to be).
// Empty when nothing is.
func extensionProblem(name, kind string, ownerShaped bool) (msg, near string) {
	if on, ours := extensions[name]; ours {
		if slices.Contains(on, kind) {
			return "", ""
		}
		places := make([]string, len(on))
		for i, k := range on {
			places[i] = plural[k]
		}
		return fmt.Sprintf("specguard reads this extension on %s, not on %s; here it would be ignored", strings.Join(places, " and "), article(kind)), ""
	}
	near = text.Nearest(name, slices.Sorted(maps.Keys(extensions)), 2)
	if near == "" {
		near = extendedFrom(name, kind, ownerShaped)
	}
	if near != "" {
		return fmt.Sprintf("unknown extension; did you mean %s? Nothing reads %s, so it would be ignored", near, name), near
	}
	return "", ""
}

// extendedFrom returns the extension read on kind that name begins with,
// its hyphens and underscores aside and in any case (x-rate-limiting,
// x-ratelimit-policy, x-require-fresh-token, x-owner-only): more than two
// edits from the name it extends, yet surely meant for it, and an
// operation less guarded than written when it is ignored. x-owner only
// when the value has its shape (true, false or an object, ownerShaped):
// x-owner-team: identity is metadata. Another vendor's names
// (x-kong-plugin-rate-limiting) begin otherwise.
func extendedFrom(name, kind string, ownerShaped bool) string {
	squash := strings.NewReplacer("-", "", "_", "")
	lowered := strings.Map(func(r rune) rune {
		if r == '_' || unicode.Is(unicode.Pd, r) {
			return -1 // any dash: one pasted from rendered text too
		}
		return r
	}, strings.ToLower(name))
	for _, ext := range []string{ExtRateLimit, ExtRequireFresh, ExtOwner} {
		if ext == ExtOwner && !ownerShaped {
			continue
		}
		if slices.Contains(extensions[ext], kind) && strings.HasPrefix(lowered, squash.Replace(ext)) {
			return ext
		}
	}
	return ""
}

func article(kind string) string {
	if strings.IndexByte("aeiou", kind[0]) >= 0 {
		return "an " + kind
	}
	return "a " + kind
}

// said reports whether e says again what a misspelling found by the shape
// check said: that the field it was meant to be is missing.
func said(e *Error, ms []meant) bool {
	for _, m := range ms {
		if e.Where == m.where && (e.Field == m.field || strings.HasPrefix(e.Field, m.field+"[") || strings.HasPrefix(e.Field, m.field+" ")) {
			return true
		}
	}
	return false
}
