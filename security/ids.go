package security

import (
	"crypto/rand"
	"encoding/base64"
)

// NewID returns a random identifier of 128 bits, base64url encoded.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}
