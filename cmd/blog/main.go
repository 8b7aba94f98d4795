// Command blog serves the example app: a small blog whose security and
// rate limits come from its OpenAPI document (api/openapi.yaml), with
// specguard's credential operations beside it.
//
//	blog serve     # every setting is a SPECGUARD_* variable or a flag (blog serve --help)
//	blog migrate   # apply the database migrations and exit
package main

import (
	"github.com/specguard/specguard/server"
	"github.com/specguard/specguard/service"
)

func main() { service.Main(server.Service()) }
