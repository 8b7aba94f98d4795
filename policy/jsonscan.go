package policy

import "encoding/json"

// A scanner of JSON that encoding/json has already checked (a slice of a
// document it decoded): it only finds where members and elements begin
// and end, one pass over the bytes, which is what decodeSchemaRef needs at
// each level of a schema. On anything it does not expect it reports
// false, and the caller leaves the value to encoding/json.

// eachMember calls f with each member of the JSON object obj: its key,
// unquoted as encoding/json unquotes it, the key as written, and its
// value, without the spaces around them. It stops when f returns false.
func eachMember(obj []byte, f func(key string, rawKey, value []byte) bool) bool {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return false
	}
	i = skipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return skipSpace(obj, i+1) == len(obj)
	}
	for i < len(obj) {
		if obj[i] != '"' {
			return false
		}
		end := skipString(obj, i)
		if end < 0 {
			return false
		}
		rawKey := obj[i:end]
		key := string(unquote(rawKey))
		i = skipSpace(obj, end)
		if i >= len(obj) || obj[i] != ':' {
			return false
		}
		i = skipSpace(obj, i+1)
		vend := skipValue(obj, i)
		if vend < 0 {
			return false
		}
		if !f(key, rawKey, obj[i:vend]) {
			return false
		}
		i = skipSpace(obj, vend)
		if i >= len(obj) {
			return false
		}
		switch obj[i] {
		case ',':
			i = skipSpace(obj, i+1)
		case '}':
			return skipSpace(obj, i+1) == len(obj)
		default:
			return false
		}
	}
	return false
}

// membersOf returns the members of the JSON object obj as decoding it
// into a map[string]json.RawMessage does (of a key given twice, the
// last); ok is false when obj is not an object (null included).
func membersOf(obj []byte) (m map[string]json.RawMessage, ok bool) {
	m = map[string]json.RawMessage{}
	ok = eachMember(obj, func(key string, _, value []byte) bool {
		m[key] = value
		return true
	})
	return m, ok
}

// eachElement calls f with each element of the JSON array arr, without
// the spaces around it. It stops when f returns false.
func eachElement(arr []byte, f func(value []byte) bool) bool {
	i := skipSpace(arr, 0)
	if i >= len(arr) || arr[i] != '[' {
		return false
	}
	i = skipSpace(arr, i+1)
	if i < len(arr) && arr[i] == ']' {
		return skipSpace(arr, i+1) == len(arr)
	}
	for i < len(arr) {
		end := skipValue(arr, i)
		if end < 0 || !f(arr[i:end]) {
			return false
		}
		i = skipSpace(arr, end)
		if i >= len(arr) {
			return false
		}
		switch arr[i] {
		case ',':
			i = skipSpace(arr, i+1)
		case ']':
			return skipSpace(arr, i+1) == len(arr)
		default:
			return false
		}
	}
	return false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string that starts at b[i] ('"'),
// or -1.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// skipValue returns the index after the value that starts at b[i], or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				if i = skipString(b, i); i < 0 {
					return -1
				}
				i-- // the loop steps past the closing quote
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	}
	// A number, true, false or null: up to the next delimiter.
	start := i
	for i < len(b) && !isJSONDelim(b[i]) {
		i++
	}
	if i == start {
		return -1
	}
	return i
}
