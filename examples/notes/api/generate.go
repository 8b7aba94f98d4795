// Package api holds the code oapi-codegen generates from the notes
// service's document: models and the strict chi server. Never edit it by
// hand; run `go generate ./examples/notes/api`.
package api

//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen -config oapi-codegen.yaml -o api.gen.go ../openapi.yaml
