// Package server is the example app, a small blog: the handlers of the
// operations generated from api/openapi.yaml (its posts, and the
// service's health), its records (package db) and their migrations.
// Package service runs it (Service), with the credential operations of
// package credentials mounted beside it; cmd/blog is its command.
package server

import (
	"context"
	"io"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/api"
	"github.com/specguard/specguard/api/gen"
	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/server/db"
	"github.com/specguard/specguard/service"
	"github.com/specguard/specguard/sqldb"
)

// SpecSource names the embedded document in messages.
const SpecSource = "api/openapi.yaml"

// DemoUsers are seeded in the development setup (SQLite without Redis, on a loopback address, no trusted proxy)
// when no users file is given, so `make run` has someone to log in as.
// Everywhere else they are never seeded, and retired when found: their
// passwords are published.
var DemoUsers = []credentials.SeedAccount{
	{Email: "admin@example.com", Password: "admin-password", Role: "admin"},
	{Email: "moderator@example.com", Password: "moderator-password", Role: "moderator"},
	{Email: "user@example.com", Password: "user-password", Role: "user"},
	{Email: "user2@example.com", Password: "user2-password", Role: "user"},
}

// Service is the example app as package service runs it.
func Service() service.App {
	return service.App{
		Name: "blog", Spec: api.Spec, SpecSource: SpecSource, SpecSHA256: gen.SpecSHA256,
		Migrations: []sqldb.Migrations{db.Migrations},
		DemoUsers:  DemoUsers,
		Problems:   problems,
		Routes: func(r chi.Router, d *service.Deps) error {
			app := NewApp(db.New(d.DB), d.Ready, d.Log)
			strict := gen.NewStrictHandlerWithOptions(app, nil, gen.StrictHTTPServerOptions{
				RequestErrorHandlerFunc: d.Errors.Request, ResponseErrorHandlerFunc: d.Errors.Response})
			gen.HandlerWithOptions(strict, gen.ChiServerOptions{BaseRouter: r, ErrorHandlerFunc: d.Errors.Param})
			return nil
		},
	}
}

// Run serves the example app until ctx is done (service.Run of Service).
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return service.Run(ctx, Service(), args, getenv, stdout, stderr)
}
