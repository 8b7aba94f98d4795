// Package gen holds the code oapi-codegen generates from api/openapi.yaml:
// models, the strict chi server and the embedded spec. Never edit it by hand;
// run `make generate`.
package gen

//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen -config oapi-codegen.yaml -o server.gen.go ../openapi.yaml
//go:generate go run ../../cmd/specguard specsum -pkg gen -o spec_sum.go ../openapi.yaml
