package server

// Handlers of /auth and /me: accounts, passwords, tokens, sessions.

import (
	"context"
	"errors"
	"net/http"
	"net/mail"
	"slices"
	"strings"

	"github.com/specguard/specguard/api/gen"
	"github.com/specguard/specguard/security"
)

// checkPassword returns the user when email and password match an enabled
// account. It spends a password check whether or not the email exists. A
// hash of older parameters (or a bcrypt one) is replaced on success.
// A database that cannot answer is an error wrapping
// security.ErrUnavailable (503), never a wrong password.
func (a *App) checkPassword(ctx context.Context, email, password string) (*User, error) {
	refund, err := a.failures.take(ctx, clientAddr(ctx), email)
	if err != nil {
		return nil, err
	}
	u, err := a.verifyPassword(ctx, email, password)
	if err == nil {
		refund()
	}
	return u, err
}

// verifyPassword is checkPassword without the failure budgets.
func (a *App) verifyPassword(ctx context.Context, email, password string) (*User, error) {
	u, err := a.repo.UserByEmail(ctx, email)
	hash := ""
	if err == nil {
		hash = u.PasswordHash
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	ok, rehash, err := a.passwords.match(ctx, hash, password)
	if err != nil {
		return nil, err
	}
	if !ok || u.Disabled {
		return nil, security.ErrInvalid
	}
	if rehash {
		if h, err := a.passwords.hash(ctx, password); err == nil {
			if err := a.repo.SetPassword(ctx, u.ID, h); err != nil {
				a.log.Warn("upgrading a password hash failed; it stays as it was", "subject", u.ID, "err", err)
			}
		}
	}
	if a.passwordChecked != nil {
		a.passwordChecked(ctx, u)
	}
	return u, nil
}

// roleScopes gives the current role and scopes of subject, for refreshes.
func (a *App) roleScopes(ctx context.Context) func(string) (string, []string, error) {
	return func(subject string) (string, []string, error) {
		u, err := a.repo.User(ctx, subject)
		switch {
		case errors.Is(err, ErrNotFound):
			return "", nil, security.ErrInvalid
		case err != nil:
			return "", nil, err
		case u.Disabled:
			return "", nil, security.ErrInvalid
		}
		return u.Role, a.table.RoleScopes(u.Role), nil
	}
}

// Register implements POST /auth/register.
func (a *App) Register(ctx context.Context, req gen.RegisterRequestObject) (gen.RegisterResponseObject, error) {
	email := string(req.Body.Email)
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email {
		return gen.Register400ApplicationProblemPlusJSONResponse{BadRequestApplicationProblemPlusJSONResponse: badRequest("email is not a valid address")}, nil
	}
	hash, err := a.passwords.hash(ctx, req.Body.Password)
	if err != nil {
		return nil, err
	}
	u := &User{ID: security.NewID(), Email: email, Role: "user", PasswordHash: hash}
	if err := a.repo.CreateUser(ctx, u); errors.Is(err, ErrExists) {
		return gen.Register409ApplicationProblemPlusJSONResponse{ConflictApplicationProblemPlusJSONResponse: gen.ConflictApplicationProblemPlusJSONResponse(
			newProblem(http.StatusConflict, "conflict", "Conflict", "An account with this email exists."))}, nil
	} else if err != nil {
		return nil, err
	}
	return gen.Register201JSONResponse(userView(u)), nil
}

// Login implements POST /auth/login.
func (a *App) Login(ctx context.Context, req gen.LoginRequestObject) (gen.LoginResponseObject, error) {
	u, err := a.checkPassword(ctx, req.Body.Email, req.Body.Password)
	if err == nil {
		var pair *security.Pair
		if pair, err = a.tokens.Login(ctx, u.ID, u.Role, a.table.RoleScopes(u.Role), deref(req.Body.Device)); err == nil {
			return gen.Login200JSONResponse(a.tokenResponse(pair)), nil
		}
	}
	if r, ok := tooManyFailures(err); ok {
		return gen.Login429ApplicationProblemPlusJSONResponse{TooManyRequestsApplicationProblemPlusJSONResponse: r}, nil
	}
	switch {
	case errors.Is(err, security.ErrInvalid):
		return gen.Login401ApplicationProblemPlusJSONResponse{UnauthorizedApplicationProblemPlusJSONResponse: unauthorized("invalid_token", "wrong email or password")}, nil
	case errors.Is(err, security.ErrTooMany):
		return gen.Login409ApplicationProblemPlusJSONResponse(tooMany("logins")), nil
	}
	return nil, err
}

// OauthToken implements POST /auth/token, the OAuth2 token endpoint (RFC 6749).
func (a *App) OauthToken(ctx context.Context, req gen.OauthTokenRequestObject) (gen.OauthTokenResponseObject, error) {
	b := req.Body
	var (
		pair *security.Pair
		err  error
	)
	switch b.GrantType {
	case gen.Password:
		u, perr := a.checkPassword(ctx, deref(b.Username), deref(b.Password))
		if r, ok := tooManyFailures(perr); ok {
			return gen.OauthToken429ApplicationProblemPlusJSONResponse{TooManyRequestsApplicationProblemPlusJSONResponse: r}, nil
		}
		if errors.Is(perr, security.ErrInvalid) {
			return oauthError(gen.InvalidGrant, "wrong username or password"), nil
		} else if perr != nil {
			return nil, perr
		}
		scopes := a.table.RoleScopes(u.Role)
		if requested := strings.Fields(deref(b.Scope)); len(requested) > 0 {
			for _, s := range requested {
				if !slices.Contains(scopes, s) {
					return oauthError(gen.InvalidScope, "scope "+s+" is not granted to this account"), nil
				}
			}
			scopes = requested
		}
		pair, err = a.tokens.Login(ctx, u.ID, u.Role, scopes, "oauth2")
		if errors.Is(err, security.ErrInvalid) {
			return oauthError(gen.InvalidGrant, "wrong username or password"), nil
		}
	case gen.RefreshToken:
		if deref(b.RefreshToken) == "" {
			return oauthError(gen.InvalidRequest, "refresh_token is required"), nil
		}
		pair, err = a.tokens.Refresh(ctx, *b.RefreshToken, a.roleScopes(ctx))
		if errors.Is(err, security.ErrInvalid) {
			return oauthError(gen.InvalidGrant, "the refresh token is invalid, expired or revoked"), nil
		}
	default:
		return oauthError(gen.UnsupportedGrantType, "grant_type must be password or refresh_token"), nil
	}
	if errors.Is(err, security.ErrTooMany) {
		return gen.OauthToken409ApplicationProblemPlusJSONResponse(tooMany("logins")), nil
	} else if err != nil {
		return nil, err
	}
	return gen.OauthToken200JSONResponse(a.tokenResponse(pair)), nil
}

// Refresh implements POST /auth/refresh.
func (a *App) Refresh(ctx context.Context, req gen.RefreshRequestObject) (gen.RefreshResponseObject, error) {
	pair, err := a.tokens.Refresh(ctx, req.Body.RefreshToken, a.roleScopes(ctx))
	switch {
	case errors.Is(err, security.ErrReused):
		return gen.Refresh401ApplicationProblemPlusJSONResponse{UnauthorizedApplicationProblemPlusJSONResponse: unauthorized("invalid_token", "refresh token reused; every token of this login is revoked")}, nil
	case errors.Is(err, security.ErrInvalid):
		return gen.Refresh401ApplicationProblemPlusJSONResponse{UnauthorizedApplicationProblemPlusJSONResponse: unauthorized("invalid_token", "the refresh token is invalid, expired or revoked")}, nil
	case err != nil:
		return nil, err
	}
	return gen.Refresh200JSONResponse(a.tokenResponse(pair)), nil
}

// endCurrent ends the login the caller authenticated with.
func (a *App) endCurrent(ctx context.Context, p *security.Principal) error {
	if p.FamilyID != "" {
		if err := a.store.RevokeFamily(ctx, p.Subject, p.FamilyID); err != nil && !errors.Is(err, security.ErrNotFound) {
			return err
		}
	}
	if p.SessionID != "" {
		if err := a.sessions.Delete(ctx, p.Subject, p.SessionID); err != nil && !errors.Is(err, security.ErrNotFound) {
			return err
		}
	}
	return nil
}

// Logout implements POST /auth/logout.
func (a *App) Logout(ctx context.Context, _ gen.LogoutRequestObject) (gen.LogoutResponseObject, error) {
	p := caller(ctx)
	if err := a.endCurrent(ctx, p); err != nil {
		return nil, err
	}
	resp := cookieResponse{visit: gen.Logout204Response{}.VisitLogoutResponse}
	if p.SessionID != "" {
		resp.cookies = a.sessions.ClearCookies(a.cookieName)
	}
	return resp, nil
}

// LogoutAll implements POST /auth/logout-all.
func (a *App) LogoutAll(ctx context.Context, _ gen.LogoutAllRequestObject) (gen.LogoutAllResponseObject, error) {
	p := caller(ctx)
	if _, err := a.endAll(ctx, p.Subject, func(*User) {}); err != nil {
		return nil, err
	}
	resp := cookieResponse{visit: gen.LogoutAll204Response{}.VisitLogoutAllResponse}
	if p.SessionID != "" {
		resp.cookies = a.sessions.ClearCookies(a.cookieName)
	}
	return resp, nil
}

// CreateSession implements POST /auth/session: a browser login.
func (a *App) CreateSession(ctx context.Context, req gen.CreateSessionRequestObject) (gen.CreateSessionResponseObject, error) {
	u, err := a.checkPassword(ctx, req.Body.Email, req.Body.Password)
	var ns *security.NewSession
	if err == nil {
		ns, err = a.sessions.Create(ctx, u.ID, u.Role, deref(req.Body.Device))
	}
	if r, ok := tooManyFailures(err); ok {
		return gen.CreateSession429ApplicationProblemPlusJSONResponse{TooManyRequestsApplicationProblemPlusJSONResponse: r}, nil
	}
	if errors.Is(err, security.ErrInvalid) {
		return gen.CreateSession401ApplicationProblemPlusJSONResponse{UnauthorizedApplicationProblemPlusJSONResponse: unauthorized("invalid_token", "wrong email or password")}, nil
	} else if errors.Is(err, security.ErrTooMany) {
		return gen.CreateSession409ApplicationProblemPlusJSONResponse(tooMany("browser sessions")), nil
	} else if err != nil {
		return nil, err
	}
	body := gen.CreateSession201JSONResponse{Body: gen.BrowserSession{CsrfToken: ns.CSRF, ExpiresAt: ns.Session.Expires.UTC()}}
	return cookieResponse{cookies: a.sessions.Cookies(a.cookieName, ns), visit: body.VisitCreateSessionResponse}, nil
}

// ListSessions implements GET /auth/sessions: token families and cookie sessions.
func (a *App) ListSessions(ctx context.Context, _ gen.ListSessionsRequestObject) (gen.ListSessionsResponseObject, error) {
	p := caller(ctx)
	fams, err := a.store.Families(ctx, p.Subject)
	if err != nil {
		return nil, err
	}
	sess, err := a.store.Sessions(ctx, p.Subject)
	if err != nil {
		return nil, err
	}
	out := make(gen.ListSessions200JSONResponse, 0, len(fams)+len(sess))
	for _, f := range fams {
		out = append(out, gen.Session{Id: f.ID, Kind: gen.Token, Device: f.Device, CreatedAt: f.Created.UTC(), LastUsedAt: f.LastUsed.UTC(), Current: f.ID == p.FamilyID})
	}
	for _, s := range sess {
		out = append(out, gen.Session{Id: s.ID, Kind: gen.Cookie, Device: s.Device, CreatedAt: s.Created.UTC(), LastUsedAt: s.LastUsed.UTC(), Current: s.ID == p.SessionID})
	}
	slices.SortFunc(out, func(x, y gen.Session) int { return y.CreatedAt.Compare(x.CreatedAt) })
	return out, nil
}

// DeleteSession implements DELETE /auth/sessions/{id}.
func (a *App) DeleteSession(ctx context.Context, req gen.DeleteSessionRequestObject) (gen.DeleteSessionResponseObject, error) {
	p := caller(ctx)
	err := a.store.RevokeFamily(ctx, p.Subject, req.Id)
	if errors.Is(err, security.ErrNotFound) {
		err = a.sessions.Delete(ctx, p.Subject, req.Id)
	}
	switch {
	case errors.Is(err, security.ErrNotFound):
		return gen.DeleteSession404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound("session")}, nil
	case err != nil:
		return nil, err
	}
	return gen.DeleteSession204Response{}, nil
}

// GetMe implements GET /me.
func (a *App) GetMe(ctx context.Context, _ gen.GetMeRequestObject) (gen.GetMeResponseObject, error) {
	p := caller(ctx)
	scopes := p.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	if p.External {
		// Verified by an outside provider: there is no account to read.
		return gen.GetMe200JSONResponse{Id: p.Subject, Scopes: scopes, Scheme: p.Scheme}, nil
	}
	u, err := a.repo.User(ctx, p.Subject)
	if errors.Is(err, ErrNotFound) {
		return gen.GetMe401ApplicationProblemPlusJSONResponse{UnauthorizedApplicationProblemPlusJSONResponse: unauthorized("invalid_token", "the account no longer exists")}, nil
	} else if err != nil {
		return nil, err
	}
	role := gen.Role(u.Role)
	return gen.GetMe200JSONResponse{Id: u.ID, Email: &u.Email, Role: &role, Scopes: scopes, Scheme: p.Scheme}, nil
}
