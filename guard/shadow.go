package guard

import (
	"regexp"
	"strings"
)

// A route segment (the text between two slashes of a chi pattern), by the
// order in which chi tries its nodes: static text first, then a parameter
// with a regexp, then a plain parameter, then the catch-all.
type segKind int

const (
	segStatic segKind = iota
	segRegexp
	segParam
	segCatchAll
	segMixed // text and a parameter in one segment ("{name}.json"): no order assumed
)

type segment struct {
	kind segKind
	text string
	re   *regexp.Regexp // segRegexp: the parameter's regexp, anchored as chi anchors it
	// segMixed: the text before the first parameter and after the last
	// ("" and ".json" of "{name}.json"), what any value of it begins and
	// ends with.
	pre, suf string
}

// segments splits a chi pattern at the slashes outside its parameters.
func segments(pattern string) []segment {
	var out []segment
	depth, start := 0, 0
	for i := 0; i <= len(pattern); i++ {
		if i < len(pattern) {
			switch pattern[i] {
			case '{':
				depth++
				continue
			case '}':
				depth--
				continue
			case '/':
				if depth > 0 {
					continue
				}
			default:
				continue
			}
		}
		out = append(out, classify(pattern[start:i]))
		start = i + 1
	}
	return out
}

func classify(s string) segment {
	switch {
	case s == "*":
		return segment{kind: segCatchAll, text: s}
	case !strings.ContainsAny(s, "{*"):
		return segment{kind: segStatic, text: s}
	case strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") && strings.Count(s, "{") == 1:
		name, expr, isRegexp := strings.Cut(s[1:len(s)-1], ":")
		if !isRegexp {
			return segment{kind: segParam, text: name}
		}
		if !strings.HasPrefix(expr, "^") {
			expr = "^" + expr
		}
		if !strings.HasSuffix(expr, "$") {
			expr += "$"
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return segment{kind: segMixed, text: s} // chi refuses it when the route is added
		}
		return segment{kind: segRegexp, text: s, re: re}
	}
	m := segment{kind: segMixed, text: s}
	if !strings.Contains(s, "*") {
		m.pre, m.suf = s[:strings.IndexByte(s, '{')], s[strings.LastIndexByte(s, '}')+1:]
	}
	return m
}

// bothFit reports whether one value may be of both mixed segments: their
// texts before the first parameter agree, as do those after the last.
func bothFit(a, b segment) bool {
	agree := func(x, y string, at func(string, string) bool) bool { return at(x, y) || at(y, x) }
	return agree(a.pre, b.pre, strings.HasPrefix) && agree(a.suf, b.suf, strings.HasSuffix)
}

// fits reports whether the static text s may be a value of the mixed
// segment m.
func fits(s string, m segment) bool {
	return len(s) >= len(m.pre)+len(m.suf) && strings.HasPrefix(s, m.pre) && strings.HasSuffix(s, m.suf)
}

// takesFrom reports whether chi may route to the pattern free a request
// that the operation's pattern op matches (both of one method): a route
// named unguarded that would take an operation's requests, such as
// "/files/{name:[a-z]+}" or "/files/secret" beside the operation
// "/files/{name}", which chi tries first. Where it cannot tell, it says
// yes.
func takesFrom(free, op string) bool {
	f, o := segments(free), segments(op)
	for i := 0; ; i++ {
		if i == len(f) || i == len(o) {
			return len(f) == len(o) // one route: chi keeps one of the two handlers
		}
		switch a, b := f[i], o[i]; {
		case a.kind == segCatchAll:
			return false // every other node comes first: the operation takes what it matches
		case a.kind == segMixed || b.kind == segMixed:
			return overlap(f[i:], o[i:])
		case a.kind == segStatic && b.kind == segStatic:
			if a.text != b.text {
				return false
			}
		case a.kind == b.kind && (a.kind == segParam || a.text == b.text):
			// the same node of chi's tree
		case a.kind < b.kind:
			return overlap(f[i:], o[i:]) // the unguarded route's node comes first
		default:
			return false // the operation's node comes first
		}
	}
}

// overlap reports whether some path matches both runs of segments.
func overlap(f, o []segment) bool {
	for i := 0; ; i++ {
		if i < len(f) && f[i].kind == segCatchAll {
			return true
		}
		if i == len(f) || i == len(o) {
			return len(f) == len(o)
		}
		a, b := f[i], o[i]
		switch {
		case a.kind == segStatic && b.kind == segStatic && a.text != b.text,
			a.kind == segRegexp && b.kind == segStatic && !a.re.MatchString(b.text),
			a.kind == segStatic && b.kind == segRegexp && !b.re.MatchString(a.text),
			a.kind == segStatic && b.kind == segMixed && !fits(a.text, b),
			a.kind == segMixed && b.kind == segStatic && !fits(b.text, a),
			a.kind == segMixed && b.kind == segMixed && !bothFit(a, b),
			// chi's plain parameter takes no empty segment ("/files/").
			a.kind == segStatic && a.text == "" && b.kind == segParam,
			b.kind == segStatic && b.text == "" && a.kind == segParam:
			return false
		}
	}
}
