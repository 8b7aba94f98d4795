// Package security issues and checks specguard's credentials: access and
// refresh tokens (TokenService), browser sessions with CSRF protection
// (SessionService) and API keys (APIKeyService); package security/oidc
// checks the tokens of outside identity providers. Each turns a request
// into a verified Principal, which handlers read with FromContext.
//
// Where to start:
//   - TokenService mints and verifies JWTs (golang-jwt), rotates refresh
//     tokens with reuse detection, and serves its public keys as a JWKS.
//     BearerAuthenticator verifies the Authorization header with it.
//   - SessionService and APIKeyService authenticate cookies and API keys.
//   - Accounts makes every credential follow its account's current state
//     (disabled, role, logout everywhere) on every instance.
//   - oidc.New (package security/oidc) verifies the tokens of a document's
//     openIdConnect schemes.
//
// The fast shared state (logins, sessions, key marks, accounts' state) lives
// in a Store: NewMemoryStore for one process, redisstore.New for a fleet.
// Each service takes only the part it uses (FamilyStore, SessionStore,
// KeyMarkStore, AccountStore); storetest.Run checks a Store of your own.
//
// The guard package puts these services in front of a router: they are its
// Authenticators. Errors are the sentinels of errors.go (ErrInvalid,
// ErrUnavailable, ...), which the guard maps to 401, 403 and 503; one
// wrapping ErrUnclaimed lets another scheme reading the same header claim
// the credential first.
package security
