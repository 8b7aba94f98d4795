// Package cred holds what package security and its credential kinds share
// about reading a credential: the sentinel errors it is refused with (which
// package security documents and exports) and the bearer token of a
// request.
package cred

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Sentinels: security.ErrMalformed and security.ErrInvalid are these.
var (
	ErrMalformed = errors.New("malformed credentials")
	ErrInvalid   = errors.New("invalid credentials")
)

// MaxTokenBytes caps the size of a token the service will parse: room for
// an identity provider's token listing many groups or roles (Entra's and
// Keycloak's pass 4 KiB), within the server's 16 KiB of request headers.
const MaxTokenBytes = 12 << 10

// Bearer is security.BearerToken without the check of the token's
// characters: a token found in a cache needs none.
func Bearer(r *http.Request) (string, error) {
	// The cheap check must also see a percent-encoded name ("access%5Ftoken"),
	// which Query decodes to the same parameter.
	if q := r.URL.RawQuery; q != "" && (strings.Contains(q, "access_token") || strings.Contains(q, "%")) {
		if _, ok := r.URL.Query()["access_token"]; ok {
			return "", fmt.Errorf("%w: tokens are not accepted in the query string", ErrMalformed)
		}
	}
	// The key is canonical already: Header.Values would canonicalize it
	// again on every request (a fifth of this function's time).
	values := r.Header["Authorization"]
	switch len(values) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", fmt.Errorf("%w: more than one Authorization header", ErrMalformed)
	}
	h := values[0]
	scheme, token, found := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		if strings.EqualFold(h, "Bearer") {
			return "", fmt.Errorf("%w: empty bearer token", ErrMalformed)
		}
		if len(h) > len("Bearer") && strings.EqualFold(h[:len("Bearer")], "Bearer") && !tchar(h[len("Bearer")]) {
			// "Bearer<TAB>token", "Bearer:token", a no-break space: a
			// bearer token sent wrong, never none (RFC 9110 separates
			// the scheme, a token, from what follows by a space).
			return "", fmt.Errorf("%w: the bearer token must follow one space", ErrMalformed)
		}
		return "", nil
	}
	if !found || token == "" {
		return "", fmt.Errorf("%w: empty bearer token", ErrMalformed)
	}
	if len(token) > MaxTokenBytes {
		return "", fmt.Errorf("%w: token larger than %d bytes", ErrInvalid, MaxTokenBytes)
	}
	return token, nil
}

// ErrBadTokenSyntax: a bearer token that is no b64token.
var ErrBadTokenSyntax = fmt.Errorf("%w: the bearer token has characters RFC 6750 does not allow", ErrMalformed)

// IsB64Token reports whether s matches RFC 6750's b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func IsB64Token(s string) bool {
	i := 0
	for i < len(s) && b64tokenChar[s[i]] {
		i++
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

// b64tokenChar marks the characters of RFC 6750's b64token before any
// trailing '=': a table lookup per byte, as tokens are hundreds long.
var b64tokenChar = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'
	}
	return t
}()

// SplitCredential parses "<subject>.<id>.<base64url secret of 32 bytes>",
// the shape of session cookies and of API keys after their prefix.
func SplitCredential(v string) (subject, id string, secret [32]byte, ok bool) {
	if len(v) > 256 {
		return "", "", secret, false
	}
	subject, rest, ok1 := strings.Cut(v, ".")
	id, enc, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || !IsID(subject) || !IsID(id) {
		return "", "", secret, false
	}
	secret, ok = DecodeSecret(enc)
	return subject, id, secret, ok
}

// DecodeSecret decodes the base64url secret of a credential: 32 bytes, in
// arrays rather than the decoder's slices (it runs on every request).
func DecodeSecret(enc string) (secret [32]byte, ok bool) {
	// Only the canonical encoding is the credential. The strict decoder
	// refuses set unused low bits in the last character; it still skips
	// '\r' and '\n', which leaves fewer than 32 bytes from 43 characters.
	var src [43]byte
	if len(enc) != len(src) {
		return secret, false
	}
	copy(src[:], enc)
	n, err := strictRawURL.Decode(secret[:], src[:])
	return secret, err == nil && n == len(secret)
}

// strictRawURL is base64url without padding that refuses non-canonical
// encodings (see DecodeSecret).
var strictRawURL = base64.RawURLEncoding.Strict()

// IsID reports whether s is a plausible identifier: 1-64 base64url characters.
func IsID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// APIKeyPrefix starts every specguard API key (security.APIKeyPrefix).
const APIKeyPrefix = "sg_"

// SplitKey parses an API key, "sg_<id>.<base64url secret of 32 bytes>":
// ok only for one of that exact shape.
func SplitKey(v string) (id string, secret [32]byte, ok bool) {
	id, enc, ok := splitKey(v)
	if !ok {
		return "", secret, false
	}
	secret, ok = DecodeSecret(enc)
	return id, secret, ok
}

// KeyID returns the id of an API key of SplitKey's shape without decoding
// its secret, for a look at which key a value names: SplitKey may still
// refuse a value KeyID accepts (a secret that is 43 characters but not
// canonical base64url).
func KeyID(v string) (id string, ok bool) {
	id, enc, ok := splitKey(v)
	if !ok || len(enc) != 43 {
		return "", false
	}
	return id, true
}

// splitKey cuts an API key into its id and its encoded secret.
func splitKey(v string) (id, enc string, ok bool) {
	rest, ok := strings.CutPrefix(v, APIKeyPrefix)
	if !ok || len(rest) > 256 {
		return "", "", false
	}
	id, enc, ok = strings.Cut(rest, ".")
	if !ok || !IsID(id) {
		return "", "", false
	}
	return id, enc, true
}

// tchar reports whether c may be part of an HTTP token (RFC 9110 5.6.2),
// such as an authentication scheme's name.
func tchar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
