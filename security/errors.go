package security

import (
	"errors"

	"github.com/specguard/specguard/security/internal/cred"
)

// Errors an Authenticator returns. The guard maps each to one response.
var (
	// ErrMalformed: the credential is unreadable or presented ambiguously
	// (two Authorization headers, a token in the query string). 400 invalid_request.
	ErrMalformed = cred.ErrMalformed
	// ErrInvalid: the credential is forged, expired, revoked or of the wrong
	// kind. 401 invalid_token; never downgraded to anonymous.
	ErrInvalid = cred.ErrInvalid
	// ErrNotFresh: the operation needs a token minted from a password. 401.
	ErrNotFresh = errors.New("a fresh login is required")
	// ErrCSRF: a cookie-authenticated unsafe request without a valid CSRF proof. 403.
	ErrCSRF = errors.New("CSRF check failed")
	// ErrUnavailable: a store needed to decide is unreachable. 503; never a pass.
	ErrUnavailable = errors.New("security store unavailable")
	// ErrUnclaimed is wrapped next to one of the errors above when the
	// credential may have been issued for another scheme read from the same
	// place: an outside provider's token where specguard's own tokens are
	// read, say. The guard then tries the operation's other schemes that
	// read it before refusing with the error.
	ErrUnclaimed = errors.New("credential issued elsewhere")
)
