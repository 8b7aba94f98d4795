// Package ctxkey holds the context keys under which the guard hands on a
// request's operation (policy.FromContext) and principal
// (security.FromContext), so that the guard's own context answers them
// from one allocation without either package exporting its key; and the
// mark by which security.Accounts tells specguard's stores that an
// account's state it puts is a fill from the database (Fill).
package ctxkey

type key uint8

const (
	Operation key = iota + 1 // *policy.Operation
	Principal                // *security.Principal
	// Fill marks the context of a PutAccount that fills an empty place
	// of the store from the database (security.Accounts.Reload): it takes
	// nothing away, so a store need not wait for its replicas to have it.
	Fill
)
