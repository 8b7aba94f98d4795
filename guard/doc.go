// Package guard enforces an OpenAPI document in front of a chi router:
// every request is resolved to its operation, authenticated, rate limited
// and validated before the router's handler runs, and refused in one place
// (problem+json 400, 401, 403, 404, 405, 413, 429, 503) otherwise.
//
// Start with New: give it the policy.Table compiled from the document, the
// router whose routes implement it, an Authenticator for every kind of
// scheme the document uses and a Limiter when it declares x-rate-limit. New
// refuses to build a guard that could not enforce the document: a scheme
// without an authenticator, limits without a limiter, a route that is no
// operation (unless named with WithUnguarded), an operation without route.
//
// The pipeline, in the order ServeHTTP runs it:
//
//	resolve       the router's route and method -> policy.Operation (404/405);
//	              HEAD without a route of its own -> the path's GET operation
//	authenticate  the operation's alternatives (OR) of schemes (AND), scopes
//	limit         the Limiter's verdict; a failed authentication counts as anonymous
//	decide        429/503 from the verdict, else 400/401/403/503 from authentication
//	validate      body size, then the request against the document's schemas
//	handler       the route's, called as the router calls it (a subrouter's
//	              through the router), with policy.FromContext and security.FromContext
//
// The security package's services are Authenticators, and *limits.Limiter
// is a Limiter. When both are specguard's and the limiter's store is Redis,
// the store check of the credential (its revocation, its account's state)
// rides in the rate-limit call: a guarded request costs one round trip.
// That path is private; a user's own Authenticator or Limiter works without
// it, its store check costing a call of its own.
package guard
