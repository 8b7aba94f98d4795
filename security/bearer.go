package security

import (
	"net/http"

	"github.com/specguard/specguard/security/internal/cred"
)

// MaxTokenBytes caps the size of a token the service will parse (12 KiB):
// a longer one is refused as invalid.
const MaxTokenBytes = cred.MaxTokenBytes

// BearerToken returns the token of an "Authorization: Bearer" header, or ""
// when the request has none (another scheme counts as none). Ambiguous or
// malformed presentations are errors wrapping ErrMalformed: two
// Authorization headers, a token in the query string (RFC 6750 section 5.3
// advises against it, and URLs leak into logs), or a bad token syntax.
func BearerToken(r *http.Request) (string, error) {
	token, err := cred.Bearer(r)
	if token != "" && err == nil && !cred.IsB64Token(token) {
		return "", cred.ErrBadTokenSyntax
	}
	return token, err
}
