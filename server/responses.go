package server

import (
	"net/http"
	"time"

	"github.com/specguard/specguard/api/gen"
	"github.com/specguard/specguard/problem"
	"github.com/specguard/specguard/security"
)

// Responses of the example app: problems, views of its records, cookies.

// realm is the realm of every WWW-Authenticate challenge, the guard's and
// the handlers' alike.
const realm = "specguard"

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

func forbidden(detail string) gen.ForbiddenApplicationProblemPlusJSONResponse {
	return gen.ForbiddenApplicationProblemPlusJSONResponse{Body: newProblem(http.StatusForbidden, "forbidden", "Forbidden", detail)}
}

func badRequest(detail string) gen.BadRequestApplicationProblemPlusJSONResponse {
	return gen.BadRequestApplicationProblemPlusJSONResponse(newProblem(http.StatusBadRequest, "invalid-request", "Invalid request", detail))
}

// tooMany is the problem of a login, session or API key past its cap: it
// says how to get out, since a client that never logs out has no
// credential left to end one with.
func tooMany(what string) gen.Problem {
	detail := "This account holds the most " + what + " allowed. "
	switch what {
	case "logins":
		detail += "A client should refresh its tokens (POST /auth/refresh) instead of logging in again, and log out (POST /auth/logout) when done. " +
			"To end logins now, log in with a browser session (POST /auth/session), then DELETE /auth/sessions/{id} or POST /auth/logout-all; " +
			"a login nobody refreshes ends when its refresh token expires."
	case "browser sessions":
		detail += "Log out of one (POST /auth/logout), or log in with a token (POST /auth/login) and DELETE /auth/sessions/{id} or POST /auth/logout-all; " +
			"a session ends by itself when it expires."
	default:
		detail += "Revoke one first (DELETE /api-keys/{id}); a key revoked in the last minute still counts."
	}
	return newProblem(http.StatusConflict, "too-many", "Too many "+what, detail)
}

// unauthorized is a 401 of a credential the app checked itself (a
// password, a refresh token).
func unauthorized(code, detail string) gen.UnauthorizedApplicationProblemPlusJSONResponse {
	h := problem.Challenge{Scheme: "Bearer", Realm: realm, Error: code, Description: detail}.String()
	return gen.UnauthorizedApplicationProblemPlusJSONResponse{
		Body:    newProblem(http.StatusUnauthorized, "invalid-token", "Invalid credentials", detail),
		Headers: gen.UnauthorizedResponseHeaders{WWWAuthenticate: &h},
	}
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

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func userView(u *User) gen.User {
	return gen.User{Id: u.ID, Email: u.Email, Role: gen.Role(u.Role), Disabled: u.Disabled, CreatedAt: u.Created}
}

func oauthError(code gen.OAuthErrorError, description string) gen.OauthToken400JSONResponse {
	return gen.OauthToken400JSONResponse{Error: code, ErrorDescription: &description}
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

func keyView(k *security.APIKey) gen.ApiKey {
	v := gen.ApiKey{Id: k.ID, Name: k.Name, Prefix: k.Prefix, Scopes: k.Scopes, CreatedAt: k.Created.UTC(), ExpiresAt: k.Expires.UTC()}
	if !k.LastUsed.IsZero() {
		t := k.LastUsed.UTC()
		v.LastUsedAt = &t
	}
	return v
}

func postView(p *Post) gen.Post {
	return gen.Post{Id: p.ID, AuthorId: p.AuthorID, Title: p.Title, Body: p.Body, Status: gen.PostStatus(p.Status), CreatedAt: p.Created, UpdatedAt: p.Updated}
}
