package main

import (
	"fmt"
	"os"

	"github.com/specguard/specguard/api"
	"github.com/specguard/specguard/internal/speccli"
	"github.com/specguard/specguard/server"
)

// specCommands are lint and routes, on the embedded document by default.
var specCommands = speccli.Program{Name: "specguard", Default: "the embedded api/openapi.yaml", Read: readSpec}

// readSpec returns the document a command works on: the file named by its
// only argument, or the embedded api/openapi.yaml when there is none.
func readSpec(args []string) (source string, data []byte, err error) {
	switch len(args) {
	case 0:
		return server.SpecSource + " (embedded)", api.Spec, nil
	case 1:
		data, err := os.ReadFile(args[0])
		if err != nil {
			return "", nil, err
		}
		return args[0], data, nil
	}
	return "", nil, fmt.Errorf("unexpected argument %q: give one spec file at most", args[1])
}
