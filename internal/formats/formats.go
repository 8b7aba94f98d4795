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
	"net/netip"
	"net/url"
	"regexp"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// Checked reports whether validation checks string format f: one of
// Options', or one kin-openapi's registry has (its own date, date-time
// and byte, and any a program defined there).
func Checked(f string) bool {
	_, ours := validators[f]
	_, kins := openapi3.SchemaStringFormats[f]
	return ours || kins
}

// Options are the schema validation options that check them.
var Options = []openapi3.SchemaValidationOption{openapi3.WithStringFormatValidators(validators)}

// validators are the formats checked beyond kin-openapi's own.
var validators = map[string]openapi3.StringFormatValidator{
	// Any version and variant (RFC 9562 leaves room for more, and a
	// Microsoft GUID has its own variant), in either case.
	"uuid":  openapi3.NewRegexpFormatValidator(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`),
	"email": openapi3.NewRegexpFormatValidator(`^[^@\s]+@[^@<>",\s]+$`),
	"ipv4":  openapi3.NewCallbackValidator(func(s string) error { return ip(s, true) }),
	"ipv6":  openapi3.NewCallbackValidator(func(s string) error { return ip(s, false) }),
	"uri":   openapi3.NewCallbackValidator(absoluteURI),
	"hostname": openapi3.NewCallbackValidator(func(s string) error {
		if len(s) > 253 || !hostname.MatchString(s) {
			return errNotHostname
		}
		return nil
	}),
}

// hostname is a host name of RFC 1123, 2.1: dot-separated labels of
// letters, digits and hyphens, none starting or ending with a hyphen, of
// 63 bytes at most.
var hostname = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

type formatError string

func (e formatError) Error() string { return string(e) }

const (
	errNotHostname = formatError("not a host name (RFC 1123)")
	errNotURI      = formatError("not an absolute URI (RFC 3986)")
	errNotIPv4     = formatError("not an IPv4 address")
	errNotIPv6     = formatError("not an IPv6 address")
)

// absoluteURI accepts an absolute URI: a scheme, then what url.Parse
// reads, in printable ASCII (a URI of RFC 3986 has no other bytes; text
// beyond them makes an IRI).
func absoluteURI(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		return errNotURI
	}
	return nil
}

// ip accepts an IPv4 address in dotted decimal (v4), or an IPv6 address
// without a zone (fe80::1%eth0 names an interface of one host, no
// address of RFC 4291).
func ip(s string, v4 bool) error {
	a, err := netip.ParseAddr(s)
	switch {
	case v4 && (err != nil || !a.Is4()):
		return errNotIPv4
	case !v4 && (err != nil || !a.Is6() || a.Zone() != ""):
		return errNotIPv6
	}
	return nil
}
