// Package credentials issues specguard's own credentials and serves the
// operations that manage them, from the OpenAPI document like everything
// else: registration and login with a password (argon2id, with budgets of
// failed passwords per client address and per account), the OAuth2 token
// endpoint (password, refresh_token and client_credentials grants), refresh
// with rotation and reuse detection, logout and logout everywhere, cookie
// sessions with their CSRF token, API keys, the accounts' administration
// and the JWKS. It also verifies, for the guard, what it issued.
//
// Start with Fragment: copy its paths and components into your document
// (each operation is marked x-credential, which New checks). Then call New
// with the compiled table, a signing key (tokens.GenerateKey,
// tokens.ReadKeyFile) and Stores: durable accounts and API keys in a
// database (package credentials/sqlstore: SQLite or PostgreSQL;
// NewMemoryAccounts and security.NewMemoryKeyRecords in tests) and fast
// state in memory or Redis (security.NewMemoryStore, or
// security/redisstore and limits/redislimit for several instances). Mount
// the operations on the router you guard, and give Authenticators to
// guard.New. Package service does all of this from SPECGUARD_* settings.
package credentials
