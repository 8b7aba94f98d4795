package main

import (
	"os"

	"github.com/specguard/specguard/internal/speccli"
)

// defaultSpec is the document lint and routes read when no file is given.
const defaultSpec = "api/openapi.yaml"

// specCommands are lint and routes, on api/openapi.yaml by default.
var specCommands = speccli.Program{Name: "specguard", Default: defaultSpec + " (in the current directory)", Read: readSpec}

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
