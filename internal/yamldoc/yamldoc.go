// Package yamldoc finds what a YAML file holds past its first document.
// The YAML readers specguard uses (the OpenAPI loader, yaml.Unmarshal)
// read the first document of a stream and drop the rest unread: an
// operation, a user or a credential written after another "---" would be
// neither used nor refused.
package yamldoc

import (
	"bytes"
	"errors"
	"io"

	"gopkg.in/yaml.v3"
)

// After reads the rest of dec, whose first document has been decoded: the
// line of the first document that holds anything (a "---" with nothing or
// only comments after it holds nothing), 0 when none does, or the error
// of one that does not parse.
func After(dec *yaml.Decoder) (int, error) {
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		switch {
		case errors.Is(err, io.EOF):
			return 0, nil
		case err != nil:
			return 0, err
		case !empty(&n):
			return n.Line, nil
		}
	}
}

// Extra is After for the YAML of data: the line of a document past the
// first that holds anything, 0 when there is none.
func Extra(data []byte) (int, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var first yaml.Node
	if err := dec.Decode(&first); err != nil {
		if errors.Is(err, io.EOF) {
			return 0, nil
		}
		return 0, err
	}
	return After(dec)
}

// Message says what is wrong with a file holding a second document.
const Message = "a second YAML document (after ---): the file must hold one, and the reader would ignore the rest"

func empty(n *yaml.Node) bool {
	if len(n.Content) == 0 {
		return true
	}
	c := n.Content[0]
	return len(n.Content) == 1 && c.Kind == yaml.ScalarNode && c.Tag == "!!null" && c.Value == "" && c.Style == 0
}
