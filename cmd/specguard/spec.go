package main

import (
	"maps"
	"os"
	"slices"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/internal/speccli"
	"github.com/specguard/specguard/policy"
)

// defaultSpec is the document lint and routes read when no file is given.
const defaultSpec = "api/openapi.yaml"

// specCommands are lint and routes, on api/openapi.yaml by default.
var specCommands = speccli.Program{Name: "specguard", Default: defaultSpec + " (in the current directory)", Read: readSpec, Check: checkCredentials}

// checkCredentials reports what credentials.New would refuse in a document
// that marks credential operations (x-credential), as a service checks it
// when it starts: an operation of another shape than the fragment's, one
// acting for its caller open to anonymous callers, a session cookie not
// named __Host-. The role new accounts register with is the service's
// option (credentials.WithRegistrationRole), so any the document declares
// passes here.
func checkCredentials(t *policy.Table) error {
	if !slices.ContainsFunc(t.Operations(), func(op *policy.Operation) bool {
		_, marked := op.Spec.Extensions[credentials.ExtCredential]
		return marked
	}) {
		return nil
	}
	var opts []credentials.Option
	if t.RoleScopes("user") == nil && len(t.Roles) > 0 {
		opts = append(opts, credentials.WithRegistrationRole(slices.Sorted(maps.Keys(t.Roles))[0]))
	}
	return credentials.CheckDocument(t, opts...)
}

// readSpec returns the document a command works on: the file named by its
// only argument, or api/openapi.yaml when there is none.
func readSpec(args []string) (source string, data []byte, err error) {
	name := defaultSpec
	switch len(args) {
	case 0:
	case 1:
		name = args[0]
	default:
		return "", nil, usageErr("unexpected argument %q: give one spec file at most", args[1])
	}
	data, err = os.ReadFile(name)
	return name, data, err
}
