// Package formats has kin-openapi check the string formats a document
// most often relies on, beyond the date, date-time and byte it checks by
// itself: uuid, email, ipv4, ipv6, uri and hostname. Without them a value
// of any text passed a schema of "format: uuid" to a handler that may
// take the format as checked. They are options of each validation, not
// kin-openapi's process-wide registry (openapi3.SchemaStringFormats),
// which still decides the formats they do not name. Any other format is
// an annotation that nothing checks (README, "How a request flows").
package formats

import (
	"net/url"
	"regexp"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// Checked are the string formats validation checks: kin-openapi's own
// and those of Options.
var Checked = map[string]bool{"byte": true, "date": true, "date-time": true,
	"uuid": true, "email": true, "ipv4": true, "ipv6": true, "uri": true, "hostname": true}

// Options are the schema validation options that check them.
var Options = []openapi3.SchemaValidationOption{openapi3.WithStringFormatValidators(map[string]openapi3.StringFormatValidator{
	"uuid":  openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC9562),
	"email": openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForEmail),
	"ipv4":  openapi3.NewIPValidator(true),
	"ipv6":  openapi3.NewIPValidator(false),
	"uri":   openapi3.NewCallbackValidator(absoluteURI),
	"hostname": openapi3.NewCallbackValidator(func(s string) error {
		if len(s) > 253 || !hostname.MatchString(s) {
			return errNotHostname
		}
		return nil
	}),
})}

// hostname is a host name of RFC 1123, 2.1: dot-separated labels of
// letters, digits and hyphens, none starting or ending with a hyphen, of
// 63 bytes at most.
var hostname = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

type formatError string

func (e formatError) Error() string { return string(e) }

const (
	errNotHostname = formatError("not a host name (RFC 1123)")
	errNotURI      = formatError("not an absolute URI (RFC 3986)")
)

// absoluteURI accepts an absolute URI: a scheme, then what url.Parse
// reads, without white space or control characters.
func absoluteURI(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return errNotURI
	}
	return nil
}
