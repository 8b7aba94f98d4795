package policy

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"unicode/utf16"
)

// surrogateEscape finds a \u escape of a UTF-16 surrogate: JSON encoders
// write every character outside the Basic Multilingual Plane as two of them
// ("\ud83d\ude80", as Python's json.dump does for an emoji by default).
var surrogateEscape = regexp.MustCompile(`\\u[dD][89a-fA-F][0-9a-fA-F]{2}`)

// readSurrogates rewrites the surrogate escapes inside double-quoted
// scalars so that the YAML parsers read them. Such a document is valid
// JSON, and so valid YAML 1.2, but yaml.v3 (and the loader's fork of it)
// refuses "found invalid Unicode character escape code". A pair becomes
// YAML's 32-bit escape ("\U0001f680"), the character the pair encodes; a
// lone surrogate becomes "\ufffd", as a JSON decoder reads it. Lines do
// not move, so every error still names its line. A document without such
// an escape is returned as it is, without a copy.
func readSurrogates(data []byte) []byte {
	if !surrogateEscape.Match(data) {
		return data
	}
	out := make([]byte, 0, len(data))
	for i := 0; i < len(data); {
		c := data[i]
		switch {
		case c == '"' && startsScalar(out):
			i = copyDoubleQuoted(&out, data, i)
		case c == '\'' && startsScalar(out):
			i = copyUntil(&out, data, i, singleQuotedEnd)
		case c == '#' && (len(out) == 0 || isBlank(out[len(out)-1])):
			i = copyUntil(&out, data, i, func(data []byte, j int) (int, bool) { return j, data[j] == '\n' })
		case (c == '|' || c == '>') && startsScalar(out):
			i = copyBlockScalar(&out, data, i)
		default:
			out = append(out, c)
			i++
		}
	}
	return out
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// startsScalar reports whether a scalar may start after out: at the start
// of a line, or after an indicator (": ", "- ", "? ", "[", "{", ",").
func startsScalar(out []byte) bool {
	i := len(out) - 1
	for i >= 0 && (out[i] == ' ' || out[i] == '\t') {
		i--
	}
	// An anchor or a tag may stand between the indicator and the scalar:
	// key: &name "...", - !!str "...".
	if j := bytes.LastIndexAny(out[:i+1], " \t\n[{,"); i >= 0 && j < i && (out[j+1] == '&' || out[j+1] == '!') {
		return startsScalar(out[:j+1])
	}
	if i < 0 {
		return true
	}
	switch out[i] {
	case '\n', '[', '{', ',':
		return true
	case ':':
		// followed by white space, or right after a JSON key ("a":"b")
		return i < len(out)-1 || i > 0 && out[i-1] == '"'
	case '-', '?':
		return i < len(out)-1 // followed by white space
	}
	return false
}

// copyUntil copies data from i through the byte end says ends the token
// (or the end of data) and returns the index after it.
func copyUntil(out *[]byte, data []byte, i int, end func(data []byte, j int) (int, bool)) int {
	*out = append(*out, data[i])
	for j := i + 1; j < len(data); j++ {
		if last, done := end(data, j); done {
			*out = append(*out, data[j:last+1]...)
			return last + 1
		}
		*out = append(*out, data[j])
	}
	return len(data)
}

// singleQuotedEnd ends a single-quoted scalar at a quote that is not
// doubled (” is an escaped quote).
func singleQuotedEnd(data []byte, j int) (int, bool) {
	if data[j] != '\'' {
		return j, false
	}
	if j+1 < len(data) && data[j+1] == '\'' {
		return j + 1, false
	}
	return j, true
}

// copyDoubleQuoted copies the double-quoted scalar starting at data[i],
// rewriting its surrogate escapes, and returns the index after it.
func copyDoubleQuoted(out *[]byte, data []byte, i int) int {
	*out = append(*out, '"')
	for j := i + 1; j < len(data); {
		c := data[j]
		switch {
		case c == '"':
			*out = append(*out, c)
			return j + 1
		case c == '\\' && j+1 < len(data):
			if hi, ok := surrogateAt(data, j); ok {
				if lo, ok := surrogateAt(data, j+6); ok && utf16.IsSurrogate(rune(hi)) && hi < 0xdc00 && lo >= 0xdc00 {
					*out = fmt.Appendf(*out, `\U%08x`, utf16.DecodeRune(rune(hi), rune(lo)))
					j += 12
					continue
				}
				*out = append(*out, `\ufffd`...)
				j += 6
				continue
			}
			*out = append(*out, c, data[j+1])
			j += 2
		default:
			*out = append(*out, c)
			j++
		}
	}
	return len(data)
}

// surrogateAt reads a \u escape of a surrogate at data[j].
func surrogateAt(data []byte, j int) (uint64, bool) {
	if j+6 > len(data) || !surrogateEscape.Match(data[j:j+6]) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(data[j+2:j+6]), 16, 16)
	return n, err == nil
}

// copyBlockScalar copies a block scalar (| or >) whose header starts at
// data[i]: the rest of the header's line, then every line that is blank or
// indented more than the header's line. Its content is literal text.
func copyBlockScalar(out *[]byte, data []byte, i int) int {
	lineStart := bytes.LastIndexByte(*out, '\n') + 1
	indent := 0
	for lineStart+indent < len(*out) && (*out)[lineStart+indent] == ' ' {
		indent++
	}
	eol := bytes.IndexByte(data[i:], '\n')
	if eol < 0 {
		*out = append(*out, data[i:]...)
		return len(data)
	}
	j := i + eol + 1
	*out = append(*out, data[i:j]...)
	for j < len(data) {
		end := bytes.IndexByte(data[j:], '\n')
		line := data[j:]
		if end >= 0 {
			line = data[j : j+end+1]
		}
		n := 0
		for n < len(line) && line[n] == ' ' {
			n++
		}
		if len(bytes.TrimSpace(line)) > 0 && n <= indent {
			break
		}
		*out = append(*out, line...)
		j += len(line)
	}
	return j
}
