package policy

import (
	"bytes"
	"cmp"
	"encoding/json"
	"slices"
	"unicode/utf8"

	yaml3 "gopkg.in/yaml.v3"
)

// The shape check reads a document's outline: the objects it checks the
// keys of, each key with its line and column, and every key given twice
// in one object anywhere. A YAML document's outline is taken from its
// yaml.v3 parse (outlineYAML). A JSON document's is read from its bytes
// (outlineJSON): the same outline wherever yaml.v3 reads JSON as JSON
// (TestOutlineJSONSameAsYAML, FuzzOutlineJSON; outlineJSON lists where it
// does not), at a fraction of the cost. On GitHub's 13 MB description
// yaml.v3 built a node for every value, a fifth of the compile's CPU and
// 120 MiB, for an outline of a few thousand keys.

// outlineDepth is how deep the shape check reads objects: the document
// (1), its paths (2), a path item (3) and its operations (4); the
// components (2), their security schemes (3) and each scheme (4).
const outlineDepth = 4

// An object is a mapping as the shape check reads it: its keys in order.
type object []member

// A member is one key of an object: its name, where it is (line and
// column from 1, the column in characters, as yaml.v3 counts them), and
// its value, as an object when it is one (down to outlineDepth), and as
// text when it is a scalar (yaml.v3's Value: a string decoded, anything
// else as written; empty for an object or an array).
type member struct {
	name      string
	line, col int
	obj       object
	text      string
	null      bool // the value is null (an empty value, ~ or null in YAML)
	// merged is what a YAML merge key (<<) merges, each mapping read as
	// an object at the depth of the one it merges into (in the order they
	// take precedence), or an alias's target, read as the object it
	// stands for. The shape check reads it only to find what the loader
	// would take from it (see mergedField).
	merged []object
}

// A dup is a key given twice in one object: where the later one is, and
// the line of the first.
type dup struct {
	name             string
	line, col, first int
}

// outlineYAML reads the outline of a yaml.v3 parse. An alias is not
// followed: its target is read where it is defined. truncated reports that
// the merge keys and aliases brought in more than maxMerged members, past
// which the outline holds none of them: the shape check cannot say what
// they bring (a field beside a $ref), and refuses the document.
func outlineYAML(root *yaml3.Node) (_ object, _ []dup, truncated bool) {
	var dups []dup
	var walk func(n *yaml3.Node)
	walk = func(n *yaml3.Node) {
		if n.Kind == yaml3.MappingNode {
			seen := map[string]*yaml3.Node{}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				name := keyName(k)
				if name == "<<" { // a merge key
					continue
				}
				if first, twice := seen[name]; twice {
					dups = append(dups, dup{name: name, line: k.Line, col: k.Column, first: first.Line})
					continue
				}
				seen[name] = k
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(root)
	y := &yamlOutline{}
	o := y.node(root, 1)
	return o, dups, y.truncated
}

// keyName is the key k as the loader reads it: an alias used as a key
// stands for its anchor's scalar, not the anchor's name.
func keyName(k *yaml3.Node) string {
	if k.Kind == yaml3.AliasNode && k.Alias != nil {
		return k.Alias.Value
	}
	return k.Value
}

// maxMerged bounds the members read through merge keys and aliases in one
// outline, each target once (aliases of aliases would multiply).
const maxMerged = 10_000

// yamlOutline reads a yaml.v3 parse's outline, following merge keys and
// aliases for member.merged, each at most once on the way down (an
// anchor's mapping may merge itself) and maxMerged members in all.
type yamlOutline struct {
	merged int
	within map[*yaml3.Node]bool
	// read holds each target outlined, by node and depth: a template
	// merged into thousands of operations is read, and counted, once.
	// A target whose reading met a cycle (cuts) is not kept: read from
	// elsewhere, the cut falls elsewhere.
	read map[targetAt]object
	cuts int
	// truncated: a member was left unread for maxMerged.
	truncated bool
}

type targetAt struct {
	n     *yaml3.Node
	depth int
}

func (y *yamlOutline) node(n *yaml3.Node, depth int) object {
	if n.Kind != yaml3.MappingNode || depth > outlineDepth {
		return nil
	}
	var o object
	for i := 0; i+1 < len(n.Content); i += 2 {
		if len(y.within) > 0 {
			if y.merged >= maxMerged {
				y.truncated = true
				break
			}
			y.merged++
		}
		k, v := n.Content[i], n.Content[i+1]
		m := member{name: keyName(k), line: k.Line, col: k.Column, obj: y.node(v, depth+1), text: v.Value,
			null: v.Kind == yaml3.ScalarNode && v.ShortTag() == "!!null"}
		switch {
		case m.name == "<<" && v.Kind == yaml3.SequenceNode:
			for _, e := range v.Content {
				if obj := y.target(e, depth); obj != nil {
					m.merged = append(m.merged, obj)
				}
			}
		case m.name == "<<":
			if obj := y.target(v, depth); obj != nil {
				m.merged = []object{obj}
			}
		case v.Kind == yaml3.AliasNode:
			if obj := y.target(v, depth+1); obj != nil {
				m.merged = []object{obj}
			}
		}
		o = append(o, m)
	}
	return o
}

// target reads the mapping n stands for (n itself, or an alias's
// anchor) as an object at depth.
func (y *yamlOutline) target(n *yaml3.Node, depth int) object {
	if n.Kind == yaml3.AliasNode {
		n = n.Alias
	}
	if n == nil || n.Kind != yaml3.MappingNode {
		return nil
	}
	if y.within[n] {
		y.cuts++
		return nil
	}
	// Inside a target every reference counts, read or kept: a template
	// met again and again (one with a cycle is read each time) builds
	// the merges that refer to it.
	if len(y.within) > 0 {
		if y.merged >= maxMerged {
			y.truncated = true
			return nil
		}
		y.merged++
	}
	at := targetAt{n, depth}
	if o, ok := y.read[at]; ok {
		return o
	}
	if y.merged >= maxMerged {
		y.truncated = true
		return nil
	}
	if y.within == nil {
		y.within, y.read = map[*yaml3.Node]bool{}, map[targetAt]object{}
	}
	y.within[n] = true
	defer delete(y.within, n)
	cuts := y.cuts
	o := y.node(n, depth)
	if y.cuts == cuts {
		y.read[at] = o
	}
	return o
}

// mergedField returns the member named name that the object o gets
// through its merge keys (the first mapping of a merge key wins, as
// YAML's merge does), or, for an alias (the member of an alias o stands
// for, through), from the alias's target: nil when o gives name itself or
// nothing gives it. Each object is looked in once (see effective).
func mergedField(o object, name string) *member {
	return (&fieldSearch{name: name, seen: map[*member]bool{}}).merged(o)
}

// givenField is the member named name of o, given there or merged in.
func givenField(o object, name string) *member {
	return (&fieldSearch{name: name, seen: map[*member]bool{}}).given(o)
}

type fieldSearch struct {
	name string
	seen map[*member]bool // the objects looked in, by their first member
}

func (f *fieldSearch) merged(o object) *member {
	for i := range o {
		if o[i].name == f.name {
			return nil
		}
	}
	for i := range o {
		if o[i].name != "<<" {
			continue
		}
		for _, obj := range o[i].merged {
			if m := f.given(obj); m != nil {
				return m
			}
		}
	}
	return nil
}

func (f *fieldSearch) given(o object) *member {
	if len(o) == 0 || f.seen[&o[0]] {
		return nil
	}
	f.seen[&o[0]] = true
	for i := range o {
		if o[i].name == f.name {
			return &o[i]
		}
	}
	return f.merged(o)
}

// outlineJSON reads the outline of a document json.Valid accepts, as
// outlineYAML reads it from yaml.v3's parse of the same bytes. It trusts
// that the document is valid. Where the two differ, the JSON reading is
// the document's:
//   - JSON that yaml.v3 refuses is read (an escaped slash, a line break
//     between a key and its colon, a raw DEL or C1 control character, a
//     key longer than 1,024 characters);
//   - a key after a surrogate pair escape on its line has its column in
//     the file (yaml.v3 reads readSurrogates' shorter rewrite);
//   - raw line and paragraph separators (U+0085, U+2028, U+2029) in a
//     string are kept, not folded as YAML folds line breaks.
//
// checkShape sends a document that is not valid UTF-8 to yaml.v3, which
// refuses it, naming the line.
func outlineJSON(data []byte) (object, []dup) {
	r := &jsonOutline{data: data, line: 1, col: 1}
	r.space()
	root, _ := r.value(1)
	// Reported as yaml.v3's walk finds them: an object's before those of
	// the objects in it.
	slices.SortStableFunc(r.dups, func(a, b seqDup) int { return cmp.Compare(a.seq, b.seq) })
	var dups []dup
	for _, d := range r.dups {
		dups = append(dups, d.dup)
	}
	return root, dups
}

type jsonOutline struct {
	data      []byte
	i         int // the next byte to read
	line      int // the line of data[i]
	lineStart int // where that line starts
	colAt     int // an offset on the line, at or before i ...
	col       int // ... and its column
	seq       int // objects opened so far
	keys      []jsonKey
	dups      []seqDup
}

// jsonKey is a key of an object being read (keys holds those of every
// open object, the innermost last).
type jsonKey struct {
	name []byte
	line int
}

type seqDup struct {
	dup
	seq int // the object's, numbered as they open
}

// keysInline is how many keys an object may have before its duplicates
// are looked up in a map rather than by comparing with each.
const keysInline = 16

// value reads the value at r.i, which has the given depth if an object:
// the object when it is at most outlineDepth deep, the scalar's text when
// it is in one.
func (r *jsonOutline) value(depth int) (object, string) {
	switch r.data[r.i] {
	case '{':
		return r.object(depth), ""
	case '[':
		r.i++
		r.space()
		if r.data[r.i] == ']' {
			r.i++
			return nil, ""
		}
		for {
			r.value(outlineDepth + 2) // an array's items are not outlined
			r.space()
			c := r.data[r.i]
			r.i++
			if c == ']' {
				return nil, ""
			}
			r.space()
		}
	case '"':
		start := r.i
		r.str()
		if depth > outlineDepth+1 {
			return nil, ""
		}
		return nil, string(unquote(r.data[start:r.i]))
	default: // a number, true, false or null
		start := r.i
		for r.i < len(r.data) && !isJSONDelim(r.data[r.i]) {
			r.i++
		}
		if depth > outlineDepth+1 {
			return nil, ""
		}
		return nil, string(r.data[start:r.i])
	}
}

func isJSONDelim(c byte) bool {
	switch c {
	case ',', '}', ']', ' ', '\t', '\n', '\r':
		return true
	}
	return false
}

// object reads the object at r.i, checking its keys for duplicates, and
// returns it when it is at most outlineDepth deep.
func (r *jsonOutline) object(depth int) object {
	r.seq++
	seq := r.seq
	base := len(r.keys)
	defer func() { r.keys = r.keys[:base] }()
	var seen map[string]int // by name, the line of the first; once past keysInline
	var o object
	r.i++
	r.space()
	if r.data[r.i] == '}' {
		r.i++
		return nil
	}
	for {
		start, line := r.i, r.line
		r.str()
		name := unquote(r.data[start:r.i])
		first, twice := 0, false
		if seen != nil {
			first, twice = seen[string(name)]
		} else {
			for _, k := range r.keys[base:] {
				if bytes.Equal(k.name, name) {
					first, twice = k.line, true
					break
				}
			}
		}
		if string(name) == "<<" { // as yaml.v3's walk, which takes it for a merge key
			twice = false
		}
		col := 0
		if twice || depth <= outlineDepth {
			col = r.column(start)
		}
		if twice {
			r.dups = append(r.dups, seqDup{dup{name: string(name), line: line, col: col, first: first}, seq})
		} else if seen != nil {
			seen[string(name)] = line
		} else if r.keys = append(r.keys, jsonKey{name, line}); len(r.keys)-base > keysInline {
			seen = make(map[string]int, 2*keysInline)
			for _, k := range r.keys[base:] {
				seen[string(k.name)] = k.line
			}
		}
		r.space()
		r.i++ // ':'
		r.space()
		null := r.data[r.i] == 'n'
		obj, text := r.value(depth + 1)
		if depth <= outlineDepth {
			o = append(o, member{name: string(name), line: line, col: col, obj: obj, text: text, null: null})
		}
		r.space()
		c := r.data[r.i]
		r.i++
		if c == '}' {
			return o // nil beyond outlineDepth: nothing was added
		}
		r.space()
	}
}

// str moves past the string at r.i.
func (r *jsonOutline) str() {
	i := r.i + 1
	for {
		switch r.data[i] {
		case '"':
			r.i = i + 1
			return
		case '\\':
			i += 2
		default:
			i++
		}
	}
}

// space moves past white space, counting lines as yaml.v3 does ("\r\n",
// "\n" and "\r" each end one).
func (r *jsonOutline) space() {
	for ; r.i < len(r.data); r.i++ {
		switch r.data[r.i] {
		case ' ', '\t':
		case '\r':
			if r.i+1 < len(r.data) && r.data[r.i+1] == '\n' {
				r.i++
			}
			fallthrough
		case '\n':
			r.line++
			r.lineStart = r.i + 1
		default:
			return
		}
	}
}

// column returns the column of offset i, on the current line and not
// before an offset asked about before: characters, not bytes, from 1.
func (r *jsonOutline) column(i int) int {
	if r.colAt < r.lineStart {
		r.colAt, r.col = r.lineStart, 1
	}
	for _, c := range r.data[r.colAt:i] {
		if c&0xc0 != 0x80 { // not a continuation byte
			r.col++
		}
	}
	r.colAt = i
	return r.col
}

// unquote returns the string a quoted JSON string holds: its bytes when
// it has no escape and is valid UTF-8, else what encoding/json decodes.
func unquote(quoted []byte) []byte {
	s := quoted[1 : len(quoted)-1]
	if bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) {
		return s
	}
	var v string
	if json.Unmarshal(quoted, &v) != nil {
		return s // not reached: the document is valid JSON
	}
	return []byte(v)
}
