package server

// Handlers of /admin, and how an account change reaches every instance.

import (
	"context"
	"errors"
	"time"

	"github.com/specguard/specguard/api/gen"
)

// updateUser changes account id in one database transaction that holds
// the row, and publishes the new state to the store every instance checks
// credentials against before it commits (db.DB.UpdateUser): when the
// publish fails nothing is committed. The new version passes both the
// database's and the store's, so no version is ever reused. When the
// commit fails after the publish, the store is set back to what the
// database holds (and, should that fail too, forgets it within
// security.AccountTTL).
func (a *App) updateUser(ctx context.Context, id string, change func(*User)) (*User, error) {
	floor, err := a.accounts.Floor(ctx, id)
	if err != nil {
		return nil, err
	}
	var published int64
	u, err := a.repo.UpdateUser(ctx, id, func(u *User) error {
		u.Version = max(u.Version, floor)
		change(u)
		return nil
	}, func(u *User) error {
		if err := a.accounts.Publish(ctx, u.ID, accountOf(u)); err != nil {
			return err
		}
		published = u.Version
		return nil
	})
	if err != nil && published != 0 {
		a.republish(id, published)
	}
	return u, err
}

// republish puts the database's state of account id back into the store,
// at version (the one an uncommitted change published), after a commit
// that failed.
func (a *App) republish(id string, version int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	u, err := a.repo.User(ctx, id)
	if err == nil {
		st := accountOf(u)
		st.Version = version
		err = a.accounts.Publish(ctx, id, st)
	}
	if err != nil {
		a.log.Warn("a change of an account was published but not committed, and putting it back failed; the store forgets it within the account TTL",
			"subject", id, "err", err)
	}
}

// endAll ends every credential of subject: its account's NotBefore moves
// past every credential minted so far (which every instance enforces at
// the next request), then its token families, sessions and API keys are
// deleted, which only tidies what is already dead.
func (a *App) endAll(ctx context.Context, subject string, change func(*User)) (*User, error) {
	u, err := a.updateUser(ctx, subject, func(u *User) {
		change(u)
		u.NotBefore = u.Version + 1 // the version this update commits
	})
	if err != nil {
		return nil, err
	}
	if err := a.store.RevokeSubject(ctx, subject); err != nil {
		a.log.Warn("revoked every credential; tidying the store failed", "subject", subject, "err", err)
	}
	if err := a.keys.RevokeAll(ctx, subject); err != nil {
		a.log.Warn("revoked every credential; marking the API keys revoked failed", "subject", subject, "err", err)
	}
	return u, nil
}

// ListUsers implements GET /admin/users.
func (a *App) ListUsers(ctx context.Context, _ gen.ListUsersRequestObject) (gen.ListUsersResponseObject, error) {
	users, err := a.repo.Users(ctx)
	if err != nil {
		return nil, err
	}
	out := make(gen.ListUsers200JSONResponse, 0, len(users))
	for i := range users {
		out = append(out, userView(&users[i]))
	}
	return out, nil
}

// DisableUser implements POST /admin/users/{id}/disable: the account can no
// longer log in, and every token, session and key it holds stops working
// on every instance at the next request.
func (a *App) DisableUser(ctx context.Context, req gen.DisableUserRequestObject) (gen.DisableUserResponseObject, error) {
	_, err := a.endAll(ctx, req.Id, func(u *User) { u.Disabled = true })
	if errors.Is(err, ErrNotFound) {
		return gen.DisableUser404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound("user")}, nil
	} else if err != nil {
		return nil, err
	}
	return gen.DisableUser204Response{}, nil
}

// UpdateUser implements PATCH /admin/users/{id}: a new role bounds the
// scopes of every credential of the account at the next request, on every
// instance; disabled: true is DisableUser; disabled: false lets the account
// log in again.
func (a *App) UpdateUser(ctx context.Context, req gen.UpdateUserRequestObject) (gen.UpdateUserResponseObject, error) {
	b := req.Body
	if b.Role != nil && a.table.RoleScopes(string(*b.Role)) == nil {
		return gen.UpdateUser400ApplicationProblemPlusJSONResponse{BadRequestApplicationProblemPlusJSONResponse: badRequest("role " + string(*b.Role) + " is not declared in the spec's x-roles")}, nil
	}
	change := func(u *User) {
		if b.Role != nil {
			u.Role = string(*b.Role)
		}
		if b.Disabled != nil {
			u.Disabled = *b.Disabled
		}
	}
	var u *User
	var err error
	if b.Disabled != nil && *b.Disabled {
		u, err = a.endAll(ctx, req.Id, change)
	} else {
		u, err = a.updateUser(ctx, req.Id, change)
	}
	if errors.Is(err, ErrNotFound) {
		return gen.UpdateUser404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound("user")}, nil
	} else if err != nil {
		return nil, err
	}
	return gen.UpdateUser200JSONResponse(userView(u)), nil
}
