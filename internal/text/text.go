// Package text holds small string helpers the packages share.
package text

import "strings"

// OneLine collapses every run of white space in s, newlines included, into
// one space: messages from parsers become one line of a log or a response.
func OneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
