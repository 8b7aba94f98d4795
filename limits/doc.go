// Package limits enforces the x-rate-limit tiers of compiled operations with
// GCRA (the generic cell rate algorithm) in integer microseconds, identical
// in the memory and Redis stores, and gives the values of the RateLimit
// headers (draft-ietf-httpapi-ratelimit-headers-10).
//
// Start with New and a Store: NewMemoryStore in one process, or the Redis
// store of package limits/redislimit, shared by instances (this package
// does not depend on a Redis client). Limiter.Decide
// charges the tiers that apply to a Caller and returns a Verdict; it writes
// nothing, so any HTTP stack can answer from it (the guard does).
// ClientIP says which address a request comes from behind proxies.
//
// The package knows nothing of credentials: who the caller is arrives as
// plain values.
package limits
