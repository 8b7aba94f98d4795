// Package ctxkey holds the context keys under which the guard hands on a
// request's operation (policy.FromContext) and principal
// (security.FromContext), so that the guard's own context answers them
// from one allocation without either package exporting its key.
package ctxkey

type key uint8

const (
	Operation key = iota + 1 // *policy.Operation
	Principal                // *security.Principal
)
