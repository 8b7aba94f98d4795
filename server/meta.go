package server

// Handlers of the service itself: JWKS, health, readiness.

import (
	"context"

	"github.com/specguard/specguard/api/gen"
)

// GetJWKS implements GET /.well-known/jwks.json.
func (a *App) GetJWKS(context.Context, gen.GetJWKSRequestObject) (gen.GetJWKSResponseObject, error) {
	set := gen.GetJWKS200JSONResponse{Keys: []gen.JWKS_Keys_Item{}}
	for _, jwk := range a.tokens.JWKS() {
		item := gen.JWKS_Keys_Item{Kty: jwk["kty"].(string), Kid: jwk["kid"].(string), AdditionalProperties: map[string]any{}}
		for k, v := range jwk {
			switch k {
			case "kty", "kid":
			case "alg":
				s := v.(string)
				item.Alg = &s
			case "use":
				s := v.(string)
				item.Use = &s
			default:
				item.AdditionalProperties[k] = v
			}
		}
		set.Keys = append(set.Keys, item)
	}
	return set, nil
}

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
