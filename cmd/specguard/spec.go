package main

import (
	"os"
	"slices"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/internal/docspage"
	"github.com/specguard/specguard/internal/speccli"
	"github.com/specguard/specguard/policy"
)

// defaultSpec is the document lint and routes read when no file is given.
const defaultSpec = "api/openapi.yaml"

// specCommands are lint and routes, on api/openapi.yaml by default.
var specCommands = speccli.Program{Name: "specguard", Default: defaultSpec + " (in the current directory)", Read: readSpec, Check: checkCredentials}

// checkCredentials reports what a service (package service) refuses to
// start on in a document that marks credential operations (x-credential),
// a service's: an operation at /docs or under it (the docs page's), an
// operation of another shape than the fragment's, one acting for its
// caller open to anonymous callers, a session cookie not named __Host-,
// no x-roles role "user" for registered accounts.
func checkCredentials(t *policy.Table) error {
	if !slices.ContainsFunc(t.Operations(), func(op *policy.Operation) bool {
		_, marked := op.Spec.Extensions[credentials.ExtCredential]
		return marked
	}) {
		return nil
	}
	if err := docspage.Free(t); err != nil {
		return err
	}
	return credentials.CheckDocument(t)
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
