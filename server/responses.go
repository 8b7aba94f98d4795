package server

import (
	"net/http"

	"github.com/specguard/specguard/api/gen"
	"github.com/specguard/specguard/problem"
)

// Responses of the example app: its problems.

// problems writes the problems of the app and its guard: one type-URI
// prefix for all (problem.DefaultPrefix).
var problems = problem.Writer{}

// newProblem is a problem the generated responses carry.
func newProblem(status int, slug, title, detail string) gen.Problem {
	d := detail
	return gen.Problem{Type: problems.TypeURI(slug), Title: title, Status: status, Detail: &d}
}

func notFound(what string) gen.NotFoundApplicationProblemPlusJSONResponse {
	return gen.NotFoundApplicationProblemPlusJSONResponse(newProblem(http.StatusNotFound, "not-found", "Not found", "No such "+what+"."))
}
