package policy

import (
	"bytes"
	"encoding/json"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/getkin/kin-openapi/openapi3"
)

// load reads an OpenAPI document into kin-openapi's types and resolves its
// references, as openapi3.Loader.LoadFromData does.
//
// A JSON document is decoded section by section (decodeJSON), which on a
// large one (GitHub's 13 MB description) makes the compile a quarter
// faster: the loader decodes the whole document a second time into a map
// for its extensions and the components a second time for theirs, and
// the components and paths can be decoded at the same time. Its schemas,
// most of its bytes, are decoded level by level (decodeSchemaRef,
// decodePathItem): kin-openapi's own UnmarshalJSON reads the bytes of every
// level below several times over, and that made half the compile. The
// sections are the loader's own types, decoded as their own UnmarshalJSON
// decodes them (the schemas, examples and path items by those decoders,
// each checked against the method: TestLoadSameAsLoader and the fuzz
// targets), so what comes out is the same; anything the split
// does not know to be the same (a YAML document, a key that differs from a
// section's name only in case, a null section, an error) goes to the
// loader. A key given twice is the one difference (the loader merges two
// maps, the split keeps the last): the shape check refuses such a document
// whichever reads it. The paths are read exactly as the loader reads
// them, detour included (decodePaths).
func load(data []byte) (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	loader.IncludeOrigin = true
	doc, ok := decodeJSON(data)
	if !ok {
		return loader.LoadFromData(data)
	}
	if err := loader.ResolveRefsIn(doc, nil); err != nil {
		return nil, err
	}
	return doc, nil
}

// The sections decoded on their own. Each is one the loader's
// UnmarshalJSON decodes into its field and leaves out of the extensions;
// everything else of the document (and of its components) is decoded by
// that UnmarshalJSON itself, in a document without these sections.
var (
	docSections = []string{"components", "paths", "webhooks"}
	// componentSections are the fields of openapi3.Components, all maps.
	componentSections = []string{"schemas", "parameters", "headers", "requestBodies", "responses", "securitySchemes", "examples", "links", "callbacks"}
)

// decodeJSON decodes a JSON document; ok is false when it is not one this
// split reads as the loader would (see load).
func decodeJSON(data []byte) (doc *openapi3.T, ok bool) {
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil || m == nil {
		return nil, false
	}
	// Every part of data is JSON encoding/json has checked from here on.
	top, rest, ok := split(m, docSections)
	if !ok {
		return nil, false
	}
	doc = &openapi3.T{}
	if json.Unmarshal(rest, doc) != nil {
		return nil, false
	}
	var wg sync.WaitGroup
	var pathsOK, compsOK, hooksOK = true, true, true
	if raw, found := top["paths"]; found {
		wg.Go(func() { doc.Paths, pathsOK = decodePaths(raw) })
	}
	if raw, found := top["webhooks"]; found {
		hooksOK = json.Unmarshal(raw, &doc.Webhooks) == nil
	}
	if raw, found := top["components"]; found {
		doc.Components, compsOK = decodeComponents(raw)
	}
	wg.Wait()
	return doc, pathsOK && compsOK && hooksOK
}

// split keeps the members of a JSON object named in sections apart, and
// returns the others as an object of their own. ok is false when a
// member's name differs from a section's only in case (encoding/json would
// decode it into that field).
func split(m map[string]json.RawMessage, sections []string) (kept map[string]json.RawMessage, rest []byte, ok bool) {
	kept = map[string]json.RawMessage{}
	for name := range m {
		for _, s := range sections {
			switch {
			case name == s:
				kept[name] = m[name]
				delete(m, name)
			case strings.EqualFold(name, s):
				return nil, nil, false
			}
		}
	}
	rest, err := json.Marshal(m)
	if err != nil {
		return nil, nil, false
	}
	return kept, rest, true
}

// decodePaths decodes the paths object as openapi3.Paths.UnmarshalJSON
// does, path by path. It takes the loader's detour for each path item
// (decoded into a map, encoded again, decoded into its type), for what
// the detour changes is read: keys sorted, so the last of two that differ
// only in case is another one ("required", "Required"), and numbers as
// float64. What it leaves out is the loader's decoding of all the paths
// at once, and that goes beside the components'.
func decodePaths(data []byte) (*openapi3.Paths, bool) {
	m, ok := membersOf(data)
	if !ok {
		return nil, false // null (the loader leaves no paths), or no object
	}
	paths := openapi3.NewPathsWithCapacity(len(m))
	paths.Extensions = make(map[string]any)
	for k, raw := range m {
		if strings.HasPrefix(k, "x-") {
			var v any
			if json.Unmarshal(raw, &v) != nil {
				return nil, false
			}
			paths.Extensions[k] = v
			continue
		}
		var v any
		if json.Unmarshal(raw, &v) != nil {
			return nil, false
		}
		again, err := json.Marshal(v)
		if err != nil {
			return nil, false
		}
		item, ok := decodePathItem(again)
		if !ok {
			return nil, false
		}
		paths.Set(k, item)
	}
	return paths, true
}

// decodeComponents decodes the components object as
// openapi3.Components.UnmarshalJSON does, its sections on their own.
func decodeComponents(data []byte) (*openapi3.Components, bool) {
	m, ok := membersOf(data)
	if !ok {
		return nil, false // null, or no object: left to the loader
	}
	sections, rest, ok := split(m, componentSections)
	if !ok {
		return nil, false
	}
	c := &openapi3.Components{}
	if json.Unmarshal(rest, c) != nil {
		return nil, false
	}
	fields := map[string]any{"parameters": &c.Parameters, "headers": &c.Headers, "requestBodies": &c.RequestBodies,
		"responses": &c.Responses, "securitySchemes": &c.SecuritySchemes, "links": &c.Links,
		"callbacks": &c.Callbacks}
	for name, raw := range sections {
		switch name {
		case "schemas":
			if c.Schemas, ok = decodeSchemas(raw); !ok {
				return nil, false
			}
		case "examples":
			if c.Examples, ok = decodeExamples(raw); !ok {
				return nil, false
			}
		default:
			if json.Unmarshal(raw, fields[name]) != nil {
				return nil, false
			}
		}
	}
	return c, true
}

// decodeSchemas decodes the component schemas, the bulk of a large
// document, on every core: each as openapi3.SchemaRef.UnmarshalJSON reads
// it, as decoding the map would (decodeSchemaRef, which reads it faster).
func decodeSchemas(data []byte) (openapi3.Schemas, bool) {
	m, ok := membersOf(data)
	if !ok {
		return nil, false // null, or no object: left to the loader
	}
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	refs := make([]*openapi3.SchemaRef, len(names))
	workers := min(runtime.GOMAXPROCS(0), max(1, len(names)/64))
	var failed atomic.Bool
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(names) && !failed.Load(); i += workers {
				raw := m[names[i]]
				if string(raw) == "null" {
					failed.Store(true) // a nil entry: left to the loader
					return
				}
				var ok bool
				if refs[i], ok = decodeSchemaRef(raw); !ok {
					failed.Store(true)
					return
				}
			}
		})
	}
	wg.Wait()
	if failed.Load() {
		return nil, false
	}
	schemas := make(openapi3.Schemas, len(names))
	for i, name := range names {
		schemas[name] = refs[i]
	}
	return schemas, true
}
