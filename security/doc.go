// Package security is what every kind of specguard credential shares: the
// verified caller (Principal, read by handlers with FromContext), the
// errors an authenticator refuses with, the account state every credential
// follows (Accounts), and the stores that hold credentials' state (the
// Store roles, NewMemoryStore, KeyRecords).
//
// Each kind of credential is a package of its own, with New and plain
// option names:
//   - security/tokens mints and verifies JWTs (golang-jwt), rotates refresh
//     tokens with reuse detection, serves its public keys as a JWKS, and
//     holds the signing keys (GenerateKey, ReadKeyFile); tokens.Bearer
//     verifies the Authorization header with it.
//   - security/sessions: browser sessions in a cookie, with CSRF checks.
//   - security/apikeys: API keys in a header, their records in KeyRecords.
//   - security/oidc verifies the tokens of a document's openIdConnect
//     schemes (outside identity providers).
//
// Accounts makes every credential follow its account's current state
// (disabled, role, logout everywhere) on every instance.
//
// The fast shared state (logins, sessions, key marks, accounts' state) lives
// in a Store: NewMemoryStore for one process, redisstore.New for a fleet.
// Each service takes only the part it uses (FamilyStore, SessionStore,
// KeyMarkStore, AccountStore); storetest.Run checks a Store of your own.
//
// The guard package puts these services in front of a router: they are its
// Authenticators. Errors are the sentinels of errors.go (ErrInvalid,
// ErrUnavailable, ...), which the guard maps to 400 (ErrMalformed), 401,
// 403 and 503; one
// wrapping ErrUnclaimed lets another scheme reading the same header claim
// the credential first.
package security
