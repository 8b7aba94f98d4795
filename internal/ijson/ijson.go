// Package ijson says whether a body is one I-JSON value (RFC 7493): names
// unique in each object, text in UTF-8, nothing after the value. Go's
// encoding/json, which handlers decode with, merges the members of a name
// repeated in an object, turns text that is not UTF-8 into U+FFFD (so two
// names may fold into one) and leaves data after the value unread; a
// validator that keeps the last of a repeated name checks another value
// than the one a handler gets. The scan is jsontext's
// (go-json-experiment/json, encoding/json/v2 to be), whose default is
// I-JSON.
package ijson

import (
	"bytes"
	"io"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// Check says what makes body other than one I-JSON value, or "" when it
// is one. White space around the value is allowed.
func Check(body []byte) string {
	dec := jsontext.NewDecoder(bytes.NewReader(body))
	if err := dec.SkipValue(); err != nil {
		return strings.TrimPrefix(err.Error(), "jsontext: ")
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return "holds data after its JSON value"
	}
	return ""
}
