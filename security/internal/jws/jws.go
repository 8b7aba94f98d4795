// Package jws holds what package security and its credential kinds share
// about reading a JWS: its compact form, and golang-jwt's errors said
// briefly.
package jws

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// IsCompact reports whether s holds only the characters of a JWS in
// compact serialization: base64url without padding, and ".".
func IsCompact(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// Describe turns a golang-jwt error into a short reason that never contains
// the token.
// Reason is a key function's refusal whose text quotes nothing of the
// token: Describe passes it on, and nothing else a key function returns.
type Reason string

func (r Reason) Error() string { return string(r) }

func Describe(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token not valid yet"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "token issued in the future"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "token lacks a required claim"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// A key function's own refusal says why; any other error (a key
		// set's "key not found" quoting the kid) would echo the token.
		var r Reason
		if errors.As(err, &r) {
			return string(r)
		}
		return "the token's key is unknown or cannot be used"
	case errors.Is(err, jwt.ErrSignatureInvalid):
		return "bad signature"
	}
	return "invalid token"
}

// NumericTime reads a NumericDate: a JSON number of seconds, between 0
// and the year 10000 (anything else is refused, never read as "no time").
func NumericTime(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || f < 0 || f > 253402300799 {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}
