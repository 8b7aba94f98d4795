// Package spectest reads what tests of the example need from an OpenAPI
// document itself, so that a user's edit to the spec (a new operation, a
// changed limit) does not break tests that are about something else.
package spectest

import (
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// Operation is one operation as the document declares it.
type Operation struct {
	Method, Path, ID string
}

// Operations lists every operation of spec, read with kin-openapi alone
// (not the policy compiler the tests check).
func Operations(tb testing.TB, spec []byte) []Operation {
	tb.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(spec)
	if err != nil {
		tb.Fatalf("spectest: %v", err)
	}
	var out []Operation
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			out = append(out, Operation{Method: method, Path: path, ID: op.OperationID})
		}
	}
	return out
}
