package server

// Handlers of the service itself: health, readiness.

import (
	"context"

	"github.com/specguard/specguard/api/gen"
)

// Healthz implements GET /healthz: the process lives.
func (a *App) Healthz(context.Context, gen.HealthzRequestObject) (gen.HealthzResponseObject, error) {
	return gen.Healthz200JSONResponse{Status: gen.Ok}, nil
}

// Readyz implements GET /readyz: every store answers.
func (a *App) Readyz(ctx context.Context, _ gen.ReadyzRequestObject) (gen.ReadyzResponseObject, error) {
	checks := map[string]string{}
	ok := true
	for name, err := range a.ready(ctx) {
		if err != nil {
			checks[name] = "unavailable"
			ok = false
		} else {
			checks[name] = "ok"
		}
	}
	if !ok {
		return gen.Readyz503JSONResponse{Status: gen.Unavailable, Checks: &checks}, nil
	}
	return gen.Readyz200JSONResponse{Status: gen.Ok, Checks: &checks}, nil
}
