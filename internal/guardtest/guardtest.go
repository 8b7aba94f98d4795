// Package guardtest is the test harness the guard's and the security
// package's tests share: a document with one operation per security shape,
// a complete guarded server (tokens, sessions, API keys, memory store) over
// loopback (env.go), request modifiers and the checks of the guard's
// answers (check.go), and hand-made tokens (jose.go). The document is
// testdata/guard.yaml.
package guardtest

import _ "embed"

// Spec declares one operation per security shape the guard must
// enforce. Limits are off everywhere: these tests are about authentication.
//
//go:embed testdata/guard.yaml
var Spec string

// AndOrAnonymous is a document with one operation, GET /x, that an API key
// (X-Key) AND a session (__Host-session) let in, or anyone, with an
// anonymous and an authenticated tier of 10 an hour.
//
//go:embed testdata/and.yaml
var AndOrAnonymous string

const (
	Issuer         = "https://issuer.test"
	Audience       = "specguard-test"
	SessionCookie  = "__Host-session"
	MaxBody        = 1024
	NoChallenge    = ""     // want: no WWW-Authenticate header at all
	BareOnly       = "bare" // want: challenges without error=
	ProblemInvalid = "invalid-token"
)
