// Package client is the HTTP client oapi-codegen generates from
// api/openapi.yaml, used by the e2e suite. Never edit it by hand; run
// `make generate`.
package client

//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen -config oapi-codegen.yaml -o client.gen.go ../../api/openapi.yaml
