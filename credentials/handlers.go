package credentials

import (
	"context"
	"errors"
	"net/http"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/go-chi/chi/v5"
	"golang.org/x/net/idna"

	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/problem"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/sessions"
	"github.com/specguard/specguard/security/tokens"
)

// The handlers of the credential operations, one per x-credential kind.
// The guard has authenticated, limited and validated each request before
// it reaches them.

// caller is the verified principal; the guard guarantees one on every
// operation that admits no anonymous caller.
func caller(r *http.Request) *security.Principal { return security.FromContext(r.Context()) }

// checkPassword returns the account when email and password match an
// enabled one. It spends a password check whether or not the address
// exists, charged to the failed-password budgets first and refunded when
// the password was right. A hash of older parameters (or a bcrypt one) is
// replaced on success. A database that cannot answer is an error wrapping
// security.ErrUnavailable (503), never a wrong password, and is refunded
// too: no password was checked (a user retrying through an outage must
// not find their budgets spent once it ends).
func (s *Service) checkPassword(r *http.Request, email, password string) (*Account, error) {
	ctx := r.Context()
	refund, err := s.failures.take(ctx, s.cfg.clientAddr(r), email)
	if err != nil {
		return nil, err
	}
	a, err := s.accounts.AccountByEmail(ctx, email)
	hash := ""
	if err == nil {
		hash = a.PasswordHash
	} else if !errors.Is(err, security.ErrNotFound) {
		refund()
		return nil, err
	}
	ok, rehash, err := s.passwords.match(ctx, hash, password)
	if err != nil {
		refund() // no turn to check it came
		return nil, err
	}
	if !ok || a.Disabled {
		return nil, security.ErrInvalid
	}
	refund()
	if rehash {
		if h, err := s.passwords.hash(ctx, password); err == nil {
			// Only over the hash just checked: a password changed since
			// must not be set back to this one.
			checked := a.PasswordHash
			up, err := s.updateIf(ctx, a.ID, func(cur *Account) error {
				if cur.PasswordHash != checked {
					return errPasswordChanged
				}
				cur.PasswordHash = h
				return nil
			})
			switch {
			case err == nil:
				// The version read stays the one the login is checked
				// against (stillHolds): the upgrade's own must not hide a
				// logout everywhere that came in between.
				up.Version, a = a.Version, up
			case errors.Is(err, errPasswordChanged):
				// Another login upgraded it first (the same password), or
				// the password was changed: stillHolds decides, once the
				// credential is minted, with the hash it finds.
			default:
				s.cfg.log.WarnContext(ctx, "upgrading a password hash failed; it stays as it was", "subject", a.ID, "err", err)
			}
		}
	}
	if s.cfg.passwordChecked != nil {
		s.cfg.passwordChecked(ctx, a)
	}
	return a, nil
}

// minted is stillHolds for a credential (what: "login", "session") just
// minted for a, which takeBack ends when it does not hold.
func (s *Service) minted(ctx context.Context, a *Account, password, what string, takeBack func(context.Context) error) error {
	err := s.stillHolds(ctx, a, password)
	if err != nil {
		if terr := takeBack(ctx); terr != nil {
			s.cfg.log.WarnContext(ctx, "a "+what+" minted after its account changed could not be ended; it was never handed out", "subject", a.ID, "err", terr)
		}
	}
	return err
}

// loginHolds is minted for a login's token pair.
func (s *Service) loginHolds(ctx context.Context, a *Account, password string, pair *tokens.Pair) error {
	return s.minted(ctx, a, password, "login", func(ctx context.Context) error { return s.store.RevokeFamily(ctx, a.ID, pair.AccessClaims.Family) })
}

// errPasswordChanged: the account's password changed while a login
// checked the one it had.
var errPasswordChanged = errors.New("the password changed meanwhile")

// stillHolds reports, once a credential was minted for a, which
// checkPassword returned for password, whether nothing ended the account's
// credentials since it was read (a logout everywhere, a disable) and the
// password still opens it: a change that committed between the check and
// the mint would otherwise not reach a credential minted after it. The
// caller takes back what it minted when it does not (ErrInvalid).
func (s *Service) stillHolds(ctx context.Context, a *Account, password string) error {
	cur, err := s.accounts.Account(ctx, a.ID)
	if err != nil {
		return security.AccountError(err)
	}
	if cur.Disabled || cur.NotBefore > a.Version {
		return security.ErrInvalid
	}
	if cur.PasswordHash != a.PasswordHash {
		// Another hash: another password, or the same one hashed anew
		// (another login's upgrade).
		ok, _, err := s.passwords.match(ctx, cur.PasswordHash, password)
		if err != nil {
			return err
		}
		if !ok {
			return security.ErrInvalid
		}
	}
	return nil
}

// roleScopes gives the current role and scopes of a subject, for refreshes.
func (s *Service) roleScopes(ctx context.Context) func(string) (string, []string, error) {
	return func(subject string) (string, []string, error) {
		a, err := s.accounts.Account(ctx, subject)
		switch {
		case errors.Is(err, security.ErrNotFound):
			return "", nil, security.ErrInvalid
		case err != nil:
			return "", nil, err
		case a.Disabled:
			return "", nil, security.ErrInvalid
		}
		return a.Role, s.table.RoleScopes(a.Role), nil
	}
}

func (s *Service) register(w http.ResponseWriter, r *http.Request) {
	var in struct{ Email, Password string }
	if !s.decode(w, r, &in) {
		return
	}
	addr, err := mail.ParseAddress(in.Email)
	if err != nil || addr.Address != in.Email {
		s.badRequest(w, "body.email", "email is not a valid address")
		return
	}
	if err := s.passwordRule.check(in.Password); err != nil {
		s.badRequest(w, "body.password", "The password is "+err.Error()+".")
		return
	}
	if invisible(in.Email) {
		// "ann\u200b@example.com" looks like ann@example.com in every list.
		s.badRequest(w, "body.email", "email holds an invisible or control character")
		return
	}
	hash, err := s.passwords.hash(r.Context(), in.Password)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	a := &Account{ID: security.NewID(), Email: in.Email, Role: s.cfg.registerRole, PasswordHash: hash}
	if err := s.accounts.CreateAccount(r.Context(), a); errors.Is(err, ErrExists) {
		s.problems.Write(w, &problem.Problem{Type: "conflict", Title: "Conflict", Status: http.StatusConflict, Detail: "An account with this email exists."})
		return
	} else if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, userOf(a))
}

type loginRequest struct {
	Email, Password, Device string
}

// decodeLogin decodes a login's body, whose device name is shown in the
// account's list of logins as given: it must be plain text.
func (s *Service) decodeLogin(w http.ResponseWriter, r *http.Request, in *loginRequest) bool {
	if !s.decode(w, r, in) {
		return false
	}
	if !plainText(in.Device) {
		s.badRequest(w, "body.device", "device must hold no control or bidirectional formatting characters")
		return false
	}
	return true
}

// plainText reports whether s, a name shown to people as given, holds no
// control character nor line or paragraph separator (a line break would
// forge lines where it is shown, a NUL cannot be stored in PostgreSQL),
// nor a bidirectional embedding, override or isolate (U+202E would show
// the rest of the line reversed; the marks U+200E, U+200F and U+061C,
// which a right-to-left name may end with, override nothing).
func plainText(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsControl(r) || unicode.In(r, unicode.Zl, unicode.Zp) ||
			unicode.Is(unicode.Bidi_Control, r) && r != '\u200e' && r != '\u200f' && r != '\u061c'
	})
}

func (s *Service) login(w http.ResponseWriter, r *http.Request) {
	var in loginRequest
	if !s.decodeLogin(w, r, &in) {
		return
	}
	a, err := s.checkPassword(r, in.Email, in.Password)
	var pair *tokens.Pair
	if err == nil {
		pair, err = s.tokens.Login(r.Context(), a.ID, a.Role, s.table.RoleScopes(a.Role), in.Device)
	}
	if err == nil {
		err = s.loginHolds(r.Context(), a, in.Password, pair)
	}
	switch {
	case s.tooManyFailures(w, err):
	case errors.Is(err, security.ErrInvalid):
		s.wrongPassword(w)
	case errors.Is(err, security.ErrTooMany):
		s.tooMany(w, "logins")
	case err != nil:
		s.fail(w, r, err)
	default:
		noStore(w)
		writeJSON(w, http.StatusOK, tokenOf(pair))
	}
}

// token is the OAuth2 token endpoint (RFC 6749): the password,
// refresh_token and client_credentials grants.
func (s *Service) token(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body must be a form (application/x-www-form-urlencoded)")
		return
	}
	f := r.PostForm
	for _, values := range f {
		if len(values) > 1 {
			// RFC 6749 section 3.2: no parameter more than once. The
			// validator checks the first that is not empty, this handler
			// would read the first.
			oauthError(w, http.StatusBadRequest, "invalid_request", "a parameter is given more than once")
			return
		}
	}
	var (
		pair *tokens.Pair
		err  error
	)
	if f.Get("grant_type") == "" {
		// RFC 6749 section 5.2: a parameter missing is a malformed
		// request, whatever grants are served.
		oauthError(w, http.StatusBadRequest, "invalid_request", "grant_type is required")
		return
	}
	if !slices.Contains(s.grants, f.Get("grant_type")) {
		s.unsupportedGrant(w)
		return
	}
	if g := f.Get("grant_type"); g == "password" || g == "refresh_token" {
		// A client that authenticates must be one (see client).
		if _, _, ok, err := s.client(w, r, false); !ok {
			if err != nil {
				s.fail(w, r, err)
			}
			return
		}
	}
	switch f.Get("grant_type") {
	case "password":
		if f.Get("username") == "" || f.Get("password") == "" {
			// RFC 6749 section 5.2: a parameter missing is a malformed
			// request, not a wrong password (nor a failed one, charged).
			oauthError(w, http.StatusBadRequest, "invalid_request", "username and password are required")
			return
		}
		a, perr := s.checkPassword(r, f.Get("username"), f.Get("password"))
		switch {
		case s.tooManyFailures(w, perr):
			return
		case errors.Is(perr, security.ErrInvalid):
			oauthError(w, http.StatusBadRequest, "invalid_grant", "wrong username or password")
			return
		case perr != nil:
			s.fail(w, r, perr)
			return
		}
		scopes, ok := narrow(s.table.RoleScopes(a.Role), f.Get("scope"))
		if !ok {
			oauthError(w, http.StatusBadRequest, "invalid_scope", "a scope requested is not granted to this account")
			return
		}
		pair, err = s.tokens.Login(r.Context(), a.ID, a.Role, scopes, "oauth2")
		if err == nil {
			err = s.loginHolds(r.Context(), a, f.Get("password"), pair)
		}
		if errors.Is(err, security.ErrInvalid) {
			oauthError(w, http.StatusBadRequest, "invalid_grant", "wrong username or password")
			return
		}
	case "refresh_token":
		if f.Get("refresh_token") == "" {
			oauthError(w, http.StatusBadRequest, "invalid_request", "refresh_token is required")
			return
		}
		scopes := s.roleScopes(r.Context())
		if want := fields(f.Get("scope")); len(want) > 0 {
			// RFC 6749 section 6: no scope the login was not granted, asked
			// before the token is spent; the new access token holds those
			// asked for.
			if c, err := s.tokens.RefreshClaims(f.Get("refresh_token")); err == nil && c.Grant != nil {
				if _, ok := narrow(strings.Fields(*c.Grant), f.Get("scope")); !ok {
					oauthError(w, http.StatusBadRequest, "invalid_scope", "a scope requested was not granted to this login")
					return
				}
			}
			scopes = narrowTo(scopes, want)
		}
		pair, err = s.tokens.Refresh(r.Context(), f.Get("refresh_token"), scopes)
		if errors.Is(err, security.ErrInvalid) {
			oauthError(w, http.StatusBadRequest, "invalid_grant", "the refresh token is invalid, expired or revoked")
			return
		}
	case "client_credentials":
		pair, err = s.clientCredentials(w, r)
		if pair == nil && err == nil {
			return // answered
		}
	default:
		s.unsupportedGrant(w)
		return
	}
	switch {
	case errors.Is(err, security.ErrTooMany):
		s.tooMany(w, "logins")
	case err != nil:
		s.fail(w, r, err)
	default:
		noStore(w)
		writeJSON(w, http.StatusOK, tokenOf(pair))
	}
}

// invisible reports whether the address s holds a character that shows
// nothing, or nothing but a space: a control or format character (a
// zero-width space, a soft hyphen, a bidi control), another
// default-ignorable one (a variation selector, a combining grapheme
// joiner, a Hangul filler), or white space other than U+0020 (NFKC makes
// a hair space one). An address holding one looks like another's. The
// zero-width joiner and non-joiner are letters' business in some scripts'
// domain names: allowed after the @ where IDNA allows them (RFC 5892,
// CONTEXTJ: after a virama, or a non-joiner between letters that join),
// not between Latin letters, where they show nothing.
func invisible(s string) bool {
	at := strings.LastIndexByte(s, '@')
	for i, r := range s {
		if (r == '\u200c' || r == '\u200d') && at >= 0 && i > at {
			if _, err := joiners.ToASCII(s[at+1:]); err != nil {
				return true
			}
			continue
		}
		if unicode.IsControl(r) || r != ' ' && unicode.IsSpace(r) ||
			unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point) {
			return true
		}
	}
	return false
}

// joiners judges where a domain may hold a joiner, and nothing else.
var joiners = idna.New(idna.CheckJoiners(true))

// narrowTo is scopes keeping only those of want.
func narrowTo(scopes func(string) (string, []string, error), want []string) func(string) (string, []string, error) {
	return func(subject string) (string, []string, error) {
		role, sc, err := scopes(subject)
		return role, slices.DeleteFunc(slices.Clone(sc), func(s string) bool { return !slices.Contains(want, s) }), err
	}
}

// narrow returns the scopes requested (a space-separated list) when every
// one is granted, all of granted when none is requested.
func narrow(granted []string, requested string) ([]string, bool) {
	want := fields(requested)
	if len(want) == 0 {
		return granted, true
	}
	for _, sc := range want {
		if !slices.Contains(granted, sc) {
			return nil, false
		}
	}
	return slices.Compact(slices.Sorted(slices.Values(want))), true
}

// client authenticates the client of a token request: an API key, its id
// as client_id ("sg_" optional) and the rest as client_secret, in HTTP
// Basic (RFC 6749 section 2.3.1) or in the form. A wrong key is charged
// to the failed-password budget of the client's address, and answered 401
// invalid_client. It answers the refusals itself (ok false, err nil).
//
// The client_credentials grant requires it. The password and
// refresh_token grants need no client, but one that authenticates all the
// same is checked (section 4.3.2, 6: "authenticate the client if client
// authentication is included"); a client only naming itself (a client_id,
// Basic with no secret, as Swagger UI's password flow sends) or another
// Authorization header (an access token a client sends with every
// request) authenticates nothing there, and is ignored. key is nil when
// no client authenticated.
func (s *Service) client(w http.ResponseWriter, r *http.Request, required bool) (key *security.APIKey, p *security.Principal, ok bool, err error) {
	id, secret, basic := r.BasicAuth()
	// client_id in the form beside Basic only names the client (section
	// 3.2.1); a secret there, or another id, is a second method.
	bare := func(id string) string { return strings.TrimPrefix(id, security.APIKeyPrefix) }
	if !required && (!basic || secret == "") {
		// Only a secret authenticates a client here: Basic without one
		// names it at most, another Authorization header (an access
		// token) authenticates none, and the form's secret may.
		if r.PostForm.Get("client_secret") == "" {
			return nil, nil, true, nil
		}
		scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		switch {
		case basic && id != "" && bare(id) != bare(r.PostForm.Get("client_id")):
			oauthError(w, http.StatusBadRequest, "invalid_request", "HTTP Basic names another client than the form authenticates")
			return nil, nil, false, nil
		case !basic && strings.EqualFold(scheme, "Basic"):
			// The client tried the header, and wrote it wrong.
			s.invalidClient(w)
			return nil, nil, false, nil
		}
		basic = false
	}
	inForm := r.PostForm.Has("client_secret") || r.PostForm.Has("client_id") && bare(r.PostForm.Get("client_id")) != bare(id)
	switch {
	case basic && inForm:
		// RFC 6749 section 2.3: one way of authenticating the client per
		// request; the form's would otherwise be ignored, unread.
		oauthError(w, http.StatusBadRequest, "invalid_request", "the client authenticates in HTTP Basic or in the form, not both")
		return nil, nil, false, nil
	case required && !basic && r.Header.Get("Authorization") != "":
		// An Authorization header that is no Basic credential: the client
		// tried the header (RFC 6749 section 5.2).
		w.Header().Set("WWW-Authenticate", problem.Challenge{Scheme: "Basic", Realm: s.cfg.realm}.String())
		oauthError(w, http.StatusUnauthorized, "invalid_client", "the Authorization header holds no HTTP Basic client credentials")
		return nil, nil, false, nil
	case !basic:
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id == "" || secret == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "client_id and client_secret (an API key) are required")
		return nil, nil, false, nil
	}
	refund, err := s.failures.takeAddr(r.Context(), s.cfg.clientAddr(r))
	if s.tooManyFailures(w, err) {
		return nil, nil, false, nil
	} else if err != nil {
		return nil, nil, false, err
	}
	key, p, err = s.keys.Verify(r.Context(), security.APIKeyPrefix+strings.TrimPrefix(id, security.APIKeyPrefix)+"."+secret)
	if errors.Is(err, security.ErrInvalid) {
		s.invalidClient(w)
		return nil, nil, false, nil
	}
	refund() // the key was right, or could not be checked
	if err != nil {
		return nil, nil, false, err
	}
	return key, p, true, nil
}

// invalidClient answers a token request whose client credentials are not
// a live API key.
func (s *Service) invalidClient(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", problem.Challenge{Scheme: "Basic", Realm: s.cfg.realm}.String())
	oauthError(w, http.StatusUnauthorized, "invalid_client", "the client credentials are not a live API key")
}

// clientCredentials is the client_credentials grant: a token for the API
// key the client authenticates with (see client). It answers the refusals
// itself (returning nil, nil).
func (s *Service) clientCredentials(w http.ResponseWriter, r *http.Request) (*tokens.Pair, error) {
	key, p, ok, err := s.client(w, r, true)
	if !ok {
		return nil, err
	}
	// A scope the document asks of a key only beside another credential
	// (an admin key and the admin's own browser session) stays out of
	// the token: as a bearer token it would be the key's alone.
	held := slices.DeleteFunc(slices.Clone(p.Scopes), func(sc string) bool { return s.keyOnlyBeside[sc] })
	scopes, ok := narrow(held, r.PostForm.Get("scope"))
	if !ok {
		oauthError(w, http.StatusBadRequest, "invalid_scope", "a scope requested is not held by this API key, or the document lets a key use it only beside another credential")
		return nil, nil
	}
	pair, err := s.tokens.MintForKey(r.Context(), key, p.Role, scopes)
	if errors.Is(err, security.ErrInvalid) {
		// The account was disabled, or its credentials ended, after the
		// key was checked: the key is no longer live.
		s.invalidClient(w)
		return nil, nil
	}
	return pair, err
}

func (s *Service) refresh(w http.ResponseWriter, r *http.Request) {
	var in struct {
		RefreshToken string `json:"refresh_token"`
	}
	if !s.decode(w, r, &in) {
		return
	}
	pair, err := s.tokens.Refresh(r.Context(), in.RefreshToken, s.roleScopes(r.Context()))
	switch {
	case errors.Is(err, security.ErrReused):
		s.unauthorized(w, "invalid_token", "refresh token reused; every token of this login is revoked")
	case errors.Is(err, security.ErrInvalid):
		s.unauthorized(w, "invalid_token", "the refresh token is invalid, expired or revoked")
	case err != nil:
		s.fail(w, r, err)
	default:
		noStore(w)
		writeJSON(w, http.StatusOK, tokenOf(pair))
	}
}

// alsoSession is for a logout by a token that also sends the session
// cookie (a page holding both): the session the cookie opens, to end too,
// and whether to clear the cookies, which it does also when the cookie
// opens no session (ended, expired, idle, malformed). A session of the
// token's own account needs no CSRF proof: the token could end it anyway
// (DELETE /auth/sessions/{id}). Another account's live session needs what
// a cookie logout needs; failing the CSRF check is answered 403 (ok false)
// before anything is ended, rather than leave that browser logged in
// behind a 204. A caller that came by the cookie needs no second check.
func (s *Service) alsoSession(w http.ResponseWriter, r *http.Request, p *security.Principal) (also *security.Principal, clear, ok bool) {
	if sessionOf(p) != "" {
		return nil, true, true
	}
	if s.cookieSc == nil {
		return nil, false, true
	}
	// The session the cookie opens, the CSRF check aside: a safe method
	// is asked none, and the session's liveness is checked before it.
	peek := r.WithContext(r.Context())
	peek.Method = http.MethodGet
	q, err := s.sessions.Authenticate(r.Context(), peek, s.cookieSc)
	switch {
	case errors.Is(err, security.ErrUnavailable):
		s.fail(w, r, err)
		return nil, false, false
	case err != nil:
		return nil, true, true
	case q == nil:
		return nil, false, true
	case q.Subject == p.Subject:
		return q, true, true
	}
	switch _, err := s.sessions.Authenticate(r.Context(), r, s.cookieSc); {
	case errors.Is(err, security.ErrCSRF):
		s.problems.Write(w, &problem.Problem{Type: "csrf", Title: "CSRF check failed", Status: http.StatusForbidden,
			Detail: "The request also carries the session cookie of another account, which fails the CSRF check (" + err.Error() + "): send the X-CSRF-Token header to end it too, or no cookie."})
		return nil, false, false
	case errors.Is(err, security.ErrUnavailable):
		s.fail(w, r, err)
		return nil, false, false
	case err != nil:
		return nil, true, true // it ended in between: only clear it
	}
	return q, true, true
}

// loggedOut answers a logout: 204, clearing the session cookies if asked.
func (s *Service) loggedOut(w http.ResponseWriter, clear bool) {
	if clear && s.cookie != "" {
		for _, c := range s.sessions.ClearCookies(s.cookie) {
			http.SetCookie(w, c)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// logout ends the caller's login, and the session of a cookie sent beside
// its token (see alsoSession). A token with no login to end (one minted
// from an API key, an identity provider's), sent without a session
// cookie, is answered 400: a 204 would tell its client that the token no
// longer works.
func (s *Service) logout(w http.ResponseWriter, r *http.Request) {
	p := caller(r)
	also, clear, ok := s.alsoSession(w, r, p)
	if !ok {
		return
	}
	ended := false
	for _, who := range []*security.Principal{p, also} {
		if who == nil {
			continue
		}
		switch err := s.Logout(r.Context(), who); {
		case errors.Is(err, ErrNoLogin):
		case err != nil:
			s.fail(w, r, err)
			return
		default:
			ended = true
		}
	}
	if !ended && !clear {
		s.badRequest(w, "header.Authorization", "This token has no login to end: a token minted from an API key stays valid until it expires or the key is revoked, an identity provider's until it expires.")
		return
	}
	s.loggedOut(w, clear)
}

// logoutAll ends every credential of the caller's account, and the session
// of a cookie sent beside its token (see alsoSession), which may be
// another account's.
func (s *Service) logoutAll(w http.ResponseWriter, r *http.Request) {
	p := caller(r)
	also, clear, ok := s.alsoSession(w, r, p)
	if !ok {
		return
	}
	if err := s.LogoutAll(r.Context(), p.Subject); err != nil {
		s.fail(w, r, err)
		return
	}
	if also != nil && also.Subject != p.Subject {
		if err := s.Logout(r.Context(), also); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	s.loggedOut(w, clear)
}

func (s *Service) session(w http.ResponseWriter, r *http.Request) {
	var in loginRequest
	if !s.decodeLogin(w, r, &in) {
		return
	}
	a, err := s.checkPassword(r, in.Email, in.Password)
	var ns *sessions.Issued
	if err == nil {
		// First, so that the session it replaces leaves room under the
		// cap for the new one.
		if err = s.endReplaced(r); err == nil {
			ns, err = s.sessions.Create(r.Context(), a.ID, a.Role, in.Device)
		}
	}
	if err == nil {
		err = s.minted(r.Context(), a, in.Password, "session", func(ctx context.Context) error { return s.store.DeleteSession(ctx, a.ID, ns.Session.ID) })
	}
	switch {
	case s.tooManyFailures(w, err):
	case errors.Is(err, security.ErrInvalid):
		s.wrongPassword(w)
	case errors.Is(err, security.ErrTooMany):
		s.tooMany(w, "browser sessions")
	case err != nil:
		s.fail(w, r, err)
	default:
		for _, c := range s.sessions.Cookies(s.cookie, ns) {
			http.SetCookie(w, c)
		}
		noStore(w)
		writeJSON(w, http.StatusCreated, browserSessionView{CSRFToken: ns.CSRF, ExpiresAt: ns.Session.Expires.UTC()})
	}
}

// endReplaced ends the session whose cookie a browser session login
// replaces, whichever account's: the browser drops the cookie, and a copy
// of it (taken earlier, or the last user's on a shared browser) must not
// outlive it. The request proved a password, so no CSRF proof is asked
// (a safe method is asked none). A store that cannot say whether the old
// session lives, or cannot confirm its end (a replica that did not get
// it), fails the login (503, to try again): a new session behind a 201
// would leave the old one alive, after a failover too. Called before the
// new session is made, it frees its place under the cap on an account's
// sessions.
func (s *Service) endReplaced(r *http.Request) error {
	if s.cookieSc == nil {
		return nil
	}
	peek := r.WithContext(r.Context())
	peek.Method = http.MethodGet
	q, err := s.sessions.Authenticate(r.Context(), peek, s.cookieSc)
	switch {
	case errors.Is(err, security.ErrUnavailable):
		return err
	case err != nil || q == nil:
		return nil // no session, or one that has ended
	}
	if id := sessionOf(q); id != "" {
		if err := s.sessions.Delete(r.Context(), q.Subject, id); err != nil && !errors.Is(err, security.ErrNotFound) {
			return err
		}
	}
	return nil
}

func (s *Service) listSessions(w http.ResponseWriter, r *http.Request) {
	p := caller(r)
	fams, err := s.store.Families(r.Context(), p.Subject)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	sess, err := s.store.Sessions(r.Context(), p.Subject)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]sessionView, 0, len(fams)+len(sess))
	login, current := loginOf(p), sessionOf(p)
	for _, f := range fams {
		out = append(out, sessionView{ID: f.ID, Kind: "token", Device: f.Device, CreatedAt: f.Created.UTC(), LastUsedAt: f.LastUsed.UTC(), Current: f.ID == login})
	}
	for _, x := range sess {
		out = append(out, sessionView{ID: x.ID, Kind: "cookie", Device: x.Device, CreatedAt: x.Created.UTC(), LastUsedAt: x.LastUsed.UTC(), Current: x.ID == current})
	}
	slices.SortFunc(out, func(a, b sessionView) int { return b.CreatedAt.Compare(a.CreatedAt) })
	writeJSON(w, http.StatusOK, out)
}

// pathID is the last path parameter of op (its {id}), as routed.
func pathID(r *http.Request, op *policy.Operation) string {
	path := op.Path
	i := strings.LastIndex(path, "{")
	j := strings.LastIndex(path, "}")
	if i < 0 || j < i {
		return ""
	}
	return chi.URLParam(r, path[i+1:j])
}

func (s *Service) deleteSession(op *policy.Operation) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, id := caller(r), pathID(r, op)
		err := s.store.RevokeFamily(r.Context(), p.Subject, id)
		if errors.Is(err, security.ErrNotFound) {
			err = s.sessions.Delete(r.Context(), p.Subject, id)
		}
		switch {
		case errors.Is(err, security.ErrNotFound):
			s.notFound(w, "session")
		case err != nil:
			s.fail(w, r, err)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}
}

func (s *Service) me(w http.ResponseWriter, r *http.Request) {
	p := caller(r)
	scopes := p.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	if p.Credential(security.KindExternal) != nil {
		// Verified by an outside provider: there is no account to read.
		writeJSON(w, http.StatusOK, meView{ID: p.Subject, Scopes: scopes, Scheme: p.Scheme})
		return
	}
	a, err := s.accounts.Account(r.Context(), p.Subject)
	if errors.Is(err, security.ErrNotFound) {
		s.callerUnauthorized(w, r, "the account no longer exists")
		return
	} else if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, meView{ID: a.ID, Email: a.Email, Role: a.Role, Scopes: scopes, Scheme: p.Scheme})
}

func (s *Service) listKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := s.keys.List(r.Context(), caller(r).Subject)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]keyView, 0, len(keys))
	for i := range keys {
		out = append(out, keyOf(&keys[i]))
	}
	writeJSON(w, http.StatusOK, out)
}

// createKey makes a key holding a subset of the caller's own scopes.
func (s *Service) createKey(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name   string   `json:"name"`
		Scopes []string `json:"scopes"`
	}
	if !s.decode(w, r, &in) {
		return
	}
	if in.Name == "" {
		s.badRequest(w, "body.name", "name and scopes are required")
		return
	}
	if len(in.Scopes) == 0 {
		s.badRequest(w, "body.scopes", "name and scopes are required")
		return
	}
	if !plainText(in.Name) {
		s.badRequest(w, "body.name", "name must hold no control or bidirectional formatting characters")
		return
	}
	p := caller(r)
	for _, sc := range in.Scopes {
		if !s.scopeDeclared(sc) {
			s.badRequest(w, "body.scopes", "unknown scope "+sc)
			return
		}
		if !p.HasScope(sc) {
			s.forbidden(w, "a key cannot hold scope "+sc+", which you do not hold")
			return
		}
	}
	full, k, err := s.keys.Create(r.Context(), p.Subject, in.Name, slices.Compact(slices.Sorted(slices.Values(in.Scopes))))
	if err == nil && (!s.stillAdmits(w, r) || !s.roleGrantsKey(w, r, k)) {
		// Minted at the account's version as it is now, the key would
		// outlive what ended the caller's credential, or narrowed its
		// role, while its body arrived: it is taken back before anyone
		// saw it.
		if err := s.keys.Revoke(r.Context(), p.Subject, k.ID); err != nil {
			s.cfg.log.WarnContext(r.Context(), "an API key minted after its caller's credential ended could not be revoked; it was never handed out", "subject", p.Subject, "err", err)
		}
		return
	}
	switch {
	case errors.Is(err, security.ErrInvalid):
		// The account was disabled since the guard let this request in.
		s.callerUnauthorized(w, r, "the account is disabled")
	case errors.Is(err, security.ErrTooMany):
		s.tooMany(w, "API keys")
	case err != nil:
		s.fail(w, r, err)
	default:
		v := keyOf(k)
		v.Key = full
		noStore(w)
		writeJSON(w, http.StatusCreated, v)
	}
}

// roleGrantsKey reports whether the role k's account has now grants every
// scope of k, else answers 403 (or 503 when the account cannot be read).
// The caller held them when the request came in; a role changed since
// (an admin demoted while the body arrived) bounds the caller's
// credentials, but a key minted at the new version would hold them
// whole again once the role came back.
func (s *Service) roleGrantsKey(w http.ResponseWriter, r *http.Request, k *security.APIKey) bool {
	acct, err := s.state.Reload(r.Context(), k.Subject)
	if err != nil {
		s.fail(w, r, security.AccountError(err))
		return false
	}
	held := s.state.Bounded(k.Scopes, acct)
	for _, sc := range k.Scopes {
		if !slices.Contains(held, sc) {
			s.forbidden(w, "a key cannot hold scope "+sc+", which your role no longer grants")
			return false
		}
	}
	return true
}

func (s *Service) deleteKey(op *policy.Operation) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		switch err := s.keys.Revoke(r.Context(), caller(r).Subject, pathID(r, op)); {
		case errors.Is(err, security.ErrNotFound):
			s.notFound(w, "API key")
		case err != nil:
			s.fail(w, r, err)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}
}

// Pages of accounts: limit's default, and its bound whatever the document
// allows (the guard has validated limit against it).
const (
	defaultPage = 50
	maxPage     = 1000
)

// listUsers answers a page of accounts: at most limit (the document's
// default when the guard validates requests, else 50; never above 1000)
// after the address after.
func (s *Service) listUsers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := defaultPage
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			s.badRequest(w, "query.limit", "limit must be a whole number of at least 1")
			return
		}
		limit = min(n, maxPage)
	}
	accounts, err := s.accounts.ListAccounts(r.Context(), q.Get("after"), limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]userView, 0, len(accounts))
	for i := range accounts {
		out = append(out, userOf(&accounts[i]))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Service) disableUser(op *policy.Operation) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.ownLockout(w, r, pathID(r, op), op, nil, true) {
			return
		}
		switch err := s.Disable(r.Context(), pathID(r, op)); {
		case errors.Is(err, security.ErrNotFound):
			s.notFound(w, "user")
		case err != nil:
			s.fail(w, r, err)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}
}

// updateUser: a new role bounds the scopes of every credential of the
// account at the next request, on every instance; disabled: true disables
// it; disabled: false lets it log in again.
func (s *Service) updateUser(op *policy.Operation) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Role     *string `json:"role"`
			Disabled *bool   `json:"disabled"`
		}
		if !s.decode(w, r, &in) || !s.stillAdmits(w, r) {
			return
		}
		if in.Role == nil && in.Disabled == nil {
			s.badRequest(w, "body", "give role or disabled")
			return
		}
		if in.Role != nil && !s.roleGrants(*in.Role) {
			s.badRequest(w, "body.role", "role "+*in.Role+" is not declared in the document's x-roles")
			return
		}
		change := func(a *Account) {
			if in.Role != nil {
				a.Role = *in.Role
			}
			if in.Disabled != nil {
				a.Disabled = *in.Disabled
			}
		}
		id := pathID(r, op)
		if s.ownLockout(w, r, id, op, in.Role, in.Disabled != nil && *in.Disabled) {
			return
		}
		var a *Account
		var err error
		if in.Disabled != nil && *in.Disabled {
			a, err = s.endAll(r.Context(), id, change)
		} else {
			a, err = s.update(r.Context(), id, change)
		}
		switch {
		case errors.Is(err, security.ErrNotFound):
			s.notFound(w, "user")
		case err != nil:
			s.fail(w, r, err)
		default:
			writeJSON(w, http.StatusOK, userOf(a))
		}
	}
}

// ownLockout answers 403, and reports true, when the caller would take
// from its own account the power to do op: disable itself, or give itself
// a role that no longer grants the scopes of any of op's alternatives. The
// last admin could otherwise leave no account able to manage accounts;
// another account holding those scopes can make the change.
func (s *Service) ownLockout(w http.ResponseWriter, r *http.Request, id string, op *policy.Operation, role *string, disable bool) bool {
	p := security.FromContext(r.Context())
	if p == nil || p.Subject != id {
		return false
	}
	lockout := disable
	if role != nil && !disable {
		grants := s.table.RoleScopes(*role)
		lockout = !slices.ContainsFunc(op.Security.Alternatives, func(alt policy.Requirement) bool { return grantsAll(grants, alt) })
	}
	if lockout {
		s.forbidden(w, "This change would take from your own account what this operation needs; another account holding it can make the change.")
	}
	return lockout
}

// grantsAll reports whether grants holds every scope alt asks for.
func grantsAll(grants []string, alt policy.Requirement) bool {
	for _, sr := range alt {
		for _, sc := range sr.Scopes {
			if !slices.Contains(grants, sc) {
				return false
			}
		}
	}
	return true
}

func (s *Service) jwks(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"keys": s.tokens.JWKS()})
}
