package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/specguard/specguard/api/gen"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
)

// App implements the generated strict server interface. The guard has
// already authenticated, limited and validated every request it sees.
type App struct {
	table      *policy.Table
	repo       Repository
	store      security.Store
	accounts   *security.Accounts
	tokens     *security.TokenService
	sessions   *security.SessionService
	keys       *security.APIKeyService
	cookieName string // the cookieAuth scheme's cookie, from the spec
	passwords  *passwords
	failures   *failedPasswords // nil: failed password checks are not limited
	ready      func(ctx context.Context) map[string]error
	log        *slog.Logger

	// passwordChecked, when set, runs after a password matched and before
	// a credential is minted: tests race account changes against it.
	passwordChecked func(ctx context.Context, u *User)
}

var _ gen.StrictServerInterface = (*App)(nil)

func problem(status int, slug, title, detail string) gen.Problem {
	d := detail
	return gen.Problem{Type: security.ProblemTypePrefix + slug, Title: title, Status: status, Detail: &d}
}

func notFound(what string) gen.NotFoundApplicationProblemPlusJSONResponse {
	return gen.NotFoundApplicationProblemPlusJSONResponse(problem(http.StatusNotFound, "not-found", "Not found", "No such "+what+"."))
}

func forbidden(detail string) gen.ForbiddenApplicationProblemPlusJSONResponse {
	return gen.ForbiddenApplicationProblemPlusJSONResponse{Body: problem(http.StatusForbidden, "forbidden", "Forbidden", detail)}
}

func badRequest(detail string) gen.BadRequestApplicationProblemPlusJSONResponse {
	return gen.BadRequestApplicationProblemPlusJSONResponse(problem(http.StatusBadRequest, "invalid-request", "Invalid request", detail))
}

// tooMany is the problem of a login, session or API key past its cap.
func tooMany(what string) gen.Problem {
	return problem(http.StatusConflict, "too-many", "Too many "+what,
		"This account holds the most "+what+" allowed; end one first (DELETE /auth/sessions/{id}, POST /auth/logout-all, DELETE /api-keys/{id}).")
}

func unauthorized(code, detail string) gen.UnauthorizedApplicationProblemPlusJSONResponse {
	h := `Bearer realm="specguard", error="` + code + `", error_description="` + detail + `"`
	return gen.UnauthorizedApplicationProblemPlusJSONResponse{
		Body:    problem(http.StatusUnauthorized, "invalid-token", "Invalid credentials", detail),
		Headers: gen.UnauthorizedResponseHeaders{WWWAuthenticate: &h},
	}
}

// caller is the verified principal; the guard guarantees one on every
// operation that does not admit anonymous callers.
func caller(ctx context.Context) *security.Principal { return security.FromContext(ctx) }

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

func (a *App) tokenResponse(p *security.Pair) gen.TokenResponse {
	return gen.TokenResponse{
		AccessToken:  p.Access,
		TokenType:    gen.Bearer,
		ExpiresIn:    int(p.ExpiresIn / time.Second),
		RefreshToken: p.Refresh,
		Scope:        p.AccessClaims.Scope,
	}
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

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
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
			problem(http.StatusConflict, "conflict", "Conflict", "An account with this email exists."))}, nil
	} else if err != nil {
		return nil, err
	}
	return gen.Register201JSONResponse(userView(u)), nil
}

func userView(u *User) gen.User {
	return gen.User{Id: u.ID, Email: u.Email, Role: gen.Role(u.Role), Disabled: u.Disabled, CreatedAt: u.Created}
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

func oauthError(code gen.OAuthErrorError, description string) gen.OauthToken400JSONResponse {
	return gen.OauthToken400JSONResponse{Error: code, ErrorDescription: &description}
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

// cookieResponse sets cookies, then lets the generated response write itself.
type cookieResponse struct {
	cookies []*http.Cookie
	visit   func(http.ResponseWriter) error
}

func (c cookieResponse) write(w http.ResponseWriter) error {
	for _, ck := range c.cookies {
		http.SetCookie(w, ck)
	}
	return c.visit(w)
}

func (c cookieResponse) VisitLogoutResponse(w http.ResponseWriter) error        { return c.write(w) }
func (c cookieResponse) VisitLogoutAllResponse(w http.ResponseWriter) error     { return c.write(w) }
func (c cookieResponse) VisitCreateSessionResponse(w http.ResponseWriter) error { return c.write(w) }

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
	u, err := a.repo.User(ctx, p.Subject)
	if errors.Is(err, ErrNotFound) {
		return gen.GetMe401ApplicationProblemPlusJSONResponse{UnauthorizedApplicationProblemPlusJSONResponse: unauthorized("invalid_token", "the account no longer exists")}, nil
	} else if err != nil {
		return nil, err
	}
	scopes := p.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	return gen.GetMe200JSONResponse{Id: u.ID, Email: u.Email, Role: gen.Role(u.Role), Scopes: scopes, Scheme: p.Scheme}, nil
}

func keyView(k *security.APIKey) gen.ApiKey {
	v := gen.ApiKey{Id: k.ID, Name: k.Name, Prefix: k.Prefix, Scopes: k.Scopes, CreatedAt: k.Created.UTC(), ExpiresAt: k.Expires.UTC()}
	if !k.LastUsed.IsZero() {
		t := k.LastUsed.UTC()
		v.LastUsedAt = &t
	}
	return v
}

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

func postView(p *Post) gen.Post {
	return gen.Post{Id: p.ID, AuthorId: p.AuthorID, Title: p.Title, Body: p.Body, Status: gen.PostStatus(p.Status), CreatedAt: p.Created, UpdatedAt: p.Updated}
}

// visible reports whether viewer (nil when anonymous) may see p.
func visible(p *Post, viewer *security.Principal) bool {
	return p.Status == string(gen.Published) || (viewer != nil && viewer.Subject == p.AuthorID)
}

// ListPosts implements GET /posts.
func (a *App) ListPosts(ctx context.Context, req gen.ListPostsRequestObject) (gen.ListPostsResponseObject, error) {
	limit, offset := 20, 0
	if req.Params.Limit != nil {
		limit = *req.Params.Limit
	}
	if req.Params.Offset != nil {
		offset = *req.Params.Offset
	}
	viewer := ""
	if p := caller(ctx); p != nil {
		viewer = p.Subject
	}
	posts, err := a.repo.Posts(ctx, viewer, limit, offset)
	if err != nil {
		return nil, err
	}
	out := make(gen.ListPosts200JSONResponse, 0, len(posts))
	for i := range posts {
		out = append(out, postView(&posts[i]))
	}
	return out, nil
}

// CreatePost implements POST /posts.
func (a *App) CreatePost(ctx context.Context, req gen.CreatePostRequestObject) (gen.CreatePostResponseObject, error) {
	status := gen.Published
	if req.Body.Status != nil {
		status = *req.Body.Status
	}
	p := &Post{ID: security.NewID(), AuthorID: caller(ctx).Subject, Title: req.Body.Title, Body: req.Body.Body, Status: string(status)}
	if err := a.repo.CreatePost(ctx, p); err != nil {
		return nil, err
	}
	return gen.CreatePost201JSONResponse(postView(p)), nil
}

// GetPost implements GET /posts/{id}; a draft is visible to its author only.
func (a *App) GetPost(ctx context.Context, req gen.GetPostRequestObject) (gen.GetPostResponseObject, error) {
	p, err := a.repo.Post(ctx, req.Id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if err != nil || !visible(p, caller(ctx)) {
		return gen.GetPost404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound("post")}, nil
	}
	return gen.GetPost200JSONResponse(postView(p)), nil
}

// UpdatePost implements PATCH /posts/{id}: its author, or a holder of users:admin.
func (a *App) UpdatePost(ctx context.Context, req gen.UpdatePostRequestObject) (gen.UpdatePostResponseObject, error) {
	who := caller(ctx)
	p, err := a.repo.Post(ctx, req.Id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if err != nil || !(visible(p, who) || who.HasScope("users:admin")) {
		return gen.UpdatePost404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound("post")}, nil
	}
	if p.AuthorID != who.Subject && !who.HasScope("users:admin") {
		return gen.UpdatePost403ApplicationProblemPlusJSONResponse{ForbiddenApplicationProblemPlusJSONResponse: forbidden("only the author or an admin may edit this post")}, nil
	}
	if req.Body.Title != nil {
		p.Title = *req.Body.Title
	}
	if req.Body.Body != nil {
		p.Body = *req.Body.Body
	}
	if req.Body.Status != nil {
		p.Status = string(*req.Body.Status)
	}
	if err := a.repo.UpdatePost(ctx, p); errors.Is(err, ErrNotFound) {
		return gen.UpdatePost404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound("post")}, nil
	} else if err != nil {
		return nil, err
	}
	return gen.UpdatePost200JSONResponse(postView(p)), nil
}

// DeletePost implements DELETE /posts/{id}: its author, or a holder of posts:delete.
func (a *App) DeletePost(ctx context.Context, req gen.DeletePostRequestObject) (gen.DeletePostResponseObject, error) {
	who := caller(ctx)
	p, err := a.repo.Post(ctx, req.Id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if err != nil || !(visible(p, who) || who.HasScope("posts:delete")) {
		return gen.DeletePost404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound("post")}, nil
	}
	if p.AuthorID != who.Subject && !who.HasScope("posts:delete") {
		return gen.DeletePost403ApplicationProblemPlusJSONResponse{ForbiddenApplicationProblemPlusJSONResponse: forbidden("only the author, a moderator or an admin may delete this post")}, nil
	}
	if err := a.repo.DeletePost(ctx, p.ID); err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	return gen.DeletePost204Response{}, nil
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
