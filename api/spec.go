// Package api embeds the OpenAPI document that is the single source of truth
// for the example service's operations, security and rate limits.
package api

import _ "embed"

// Spec is api/openapi.yaml as it was when the binary was built.
//
//go:embed openapi.yaml
var Spec []byte
