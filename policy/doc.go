// Package policy compiles an OpenAPI 3 document into an immutable table of
// operation policies: for every operation, who may call it (security
// alternatives, OR of AND, with scopes) and how often (x-rate-limit tiers).
//
// Start with Compile. It fails on anything it cannot
// fully enforce, naming the file, line and operation, so a server built on
// the table never serves an operation it does not understand. Table.Lookup
// resolves a request's route to its Operation; FromContext gives handlers
// the operation the guard resolved.
package policy
