package server

// Handlers of /api-keys.

import (
	"context"
	"errors"
	"slices"

	"github.com/specguard/specguard/api/gen"
	"github.com/specguard/specguard/security"
)

// ListApiKeys implements GET /api-keys.
func (a *App) ListApiKeys(ctx context.Context, _ gen.ListApiKeysRequestObject) (gen.ListApiKeysResponseObject, error) {
	keys, err := a.keys.List(ctx, caller(ctx).Subject)
	if err != nil {
		return nil, err
	}
	out := make(gen.ListApiKeys200JSONResponse, 0, len(keys))
	for i := range keys {
		out = append(out, keyView(&keys[i]))
	}
	return out, nil
}

// CreateApiKey implements POST /api-keys: a key holds a subset of the
// caller's own scopes.
func (a *App) CreateApiKey(ctx context.Context, req gen.CreateApiKeyRequestObject) (gen.CreateApiKeyResponseObject, error) {
	p := caller(ctx)
	for _, s := range req.Body.Scopes {
		if _, declared := slices.BinarySearch(a.table.Scopes, s); !declared {
			return gen.CreateApiKey400ApplicationProblemPlusJSONResponse{BadRequestApplicationProblemPlusJSONResponse: badRequest("unknown scope " + s)}, nil
		}
		if !p.HasScope(s) {
			return gen.CreateApiKey403ApplicationProblemPlusJSONResponse{ForbiddenApplicationProblemPlusJSONResponse: forbidden("a key cannot hold scope " + s + ", which you do not hold")}, nil
		}
	}
	full, k, err := a.keys.Create(ctx, p.Subject, req.Body.Name, slices.Compact(slices.Sorted(slices.Values(req.Body.Scopes))))
	if errors.Is(err, security.ErrInvalid) {
		// The account was disabled since the guard let this request in.
		return gen.CreateApiKey401ApplicationProblemPlusJSONResponse{UnauthorizedApplicationProblemPlusJSONResponse: unauthorized("invalid_token", "the account is disabled")}, nil
	} else if errors.Is(err, security.ErrTooMany) {
		return gen.CreateApiKey409ApplicationProblemPlusJSONResponse(tooMany("API keys")), nil
	} else if err != nil {
		return nil, err
	}
	v := keyView(k)
	return gen.CreateApiKey201JSONResponse{Id: v.Id, Name: v.Name, Prefix: v.Prefix, Scopes: v.Scopes, CreatedAt: v.CreatedAt, ExpiresAt: v.ExpiresAt, Key: full}, nil
}

// DeleteApiKey implements DELETE /api-keys/{id}.
func (a *App) DeleteApiKey(ctx context.Context, req gen.DeleteApiKeyRequestObject) (gen.DeleteApiKeyResponseObject, error) {
	switch err := a.keys.Revoke(ctx, caller(ctx).Subject, req.Id); {
	case errors.Is(err, security.ErrNotFound):
		return gen.DeleteApiKey404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound("API key")}, nil
	case err != nil:
		return nil, err
	}
	return gen.DeleteApiKey204Response{}, nil
}
