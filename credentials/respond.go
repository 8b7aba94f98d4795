package credentials

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/specguard/specguard/internal/ijson"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/problem"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/tokens"
)

// The answers of the credential operations: JSON of the Fragment's
// schemas, problems through the service's problem.Writer.

// maxBody bounds what an operation reads of a request body.
const maxBody = 64 << 10

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// noStore forbids caching an answer that carries a credential (RFC 6749
// section 5.1): no shared cache, proxy or browser may keep a token.
func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}

// decode reads the JSON body of r into v, refusing fields v does not have
// (the Fragment's request schemas allow none), and a body that is not one
// I-JSON value (see internal/ijson: a name given twice would reach v as
// neither the guard's validator nor the client's other reader saw it). It
// writes the 400 itself and reports false when the body cannot be read.
func (s *Service) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		s.badRequest(w, "header.Content-Type", "the body must be application/json")
		return false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err == nil && len(body) > maxBody {
		// Read to its cap, the rest unseen: a value after it would pass.
		s.badRequest(w, "body", fmt.Sprintf("the body is larger than %d bytes", maxBody))
		return false
	}
	if err != nil || ijson.Check(body) != "" {
		s.badRequest(w, "body", "the body is not the JSON object this operation takes")
		return false
	}
	if name := foldedTwice(body); name != "" {
		// encoding/json matches names whatever their case, and the last
		// one counts: email and Email were one field, neither the
		// guard's validator (when on) nor the client read as v does.
		s.badRequest(w, "body."+name, "a name given twice, in another case")
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		field := "body"
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			field += "." + sentName(body, typeErr.Field, typeErr.Value)
		} else if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			if unquoted, err := strconv.Unquote(name); err == nil {
				field += "." + unquoted
			}
		}
		s.badRequest(w, field, "the body is not the JSON object this operation takes")
		return false
	}
	return true
}

// foldedTwice returns a name of the object body that another of its
// names equals but for case, "" when none does (or body is no object).
func foldedTwice(body []byte) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return ""
	}
	seen := make(map[string]bool, len(m))
	for _, name := range slices.Sorted(maps.Keys(m)) {
		folded := strings.ToLower(strings.ToUpper(name))
		if seen[folded] {
			return name
		}
		seen[folded] = true
	}
	return ""
}

// sentName is the name body gives the property of Go field name (matched
// as encoding/json matches it, whatever the case) whose value is of kind
// ("number", "string", "bool", "array", "object": json.UnmarshalTypeError's
// Value), or name.
func sentName(body []byte, name, kind string) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return name
	}
	for _, k := range slices.Sorted(maps.Keys(m)) { // one answer for one body
		if strings.EqualFold(k, name) && strings.HasPrefix(kind, jsonKind(m[k])) { // "number 300" too
			return k
		}
	}
	return name
}

// jsonKind names the kind of a JSON value as encoding/json's errors do.
func jsonKind(v json.RawMessage) string {
	switch v := bytes.TrimSpace(v); {
	case len(v) == 0:
		return "?"
	case v[0] == '"':
		return "string"
	case v[0] == '{':
		return "object"
	case v[0] == '[':
		return "array"
	case v[0] == 't' || v[0] == 'f':
		return "bool"
	case v[0] == 'n':
		return "null"
	}
	return "number"
}

// badRequest is the 400 of a request whose field (as the guard names
// fields: "body.email", "query.limit") is wrong, as detail says.
func (s *Service) badRequest(w http.ResponseWriter, field, detail string) {
	s.problems.InvalidRequest(w, detail, []problem.FieldError{{Field: field, Message: detail}})
}

func (s *Service) notFound(w http.ResponseWriter, what string) {
	s.problems.Write(w, &problem.Problem{Type: "not-found", Title: "Not found", Status: http.StatusNotFound, Detail: "No such " + what + "."})
}

func (s *Service) forbidden(w http.ResponseWriter, detail string) {
	s.problems.Write(w, &problem.Problem{Type: "forbidden", Title: "Forbidden", Status: http.StatusForbidden, Detail: detail})
}

// unauthorized is a 401 of a credential the operation checked itself (a
// password, a refresh token).
func (s *Service) unauthorized(w http.ResponseWriter, code, detail string) {
	w.Header().Set("WWW-Authenticate", problem.Challenge{Scheme: "Bearer", Realm: s.cfg.realm, Error: code, Description: detail}.String())
	s.problems.Write(w, &problem.Problem{Type: "invalid-token", Title: "Invalid credentials", Status: http.StatusUnauthorized, Detail: detail})
}

// callerUnauthorized is the 401 of a request whose credential the guard
// admitted but the operation found no longer good (its account gone or
// disabled since): challenged as the scheme that admitted it (a session
// cookie, an API key), as the guard challenges, not always as Bearer.
func (s *Service) callerUnauthorized(w http.ResponseWriter, r *http.Request, detail string) {
	p := caller(r)
	if p == nil {
		s.unauthorized(w, "invalid_token", detail)
		return
	}
	name, _, _ := strings.Cut(p.Scheme, "+")
	scheme := s.table.Schemes[name]
	if scheme == nil {
		s.unauthorized(w, "invalid_token", detail)
		return
	}
	s.challenge(w, scheme, "invalid_token", detail, "")
	s.problems.Write(w, &problem.Problem{Type: "invalid-token", Title: "Invalid credentials", Status: http.StatusUnauthorized, Detail: detail})
}

// wrongPassword is the 401 of a login whose email or password is wrong. Its
// challenge names no error: the request presented no token, and RFC 6750
// (section 3.1) keeps error codes for one that was; "invalid_token" has a
// client refresh its token and try again, where a password must be asked.
func (s *Service) wrongPassword(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", problem.Challenge{Scheme: "Bearer", Realm: s.cfg.realm}.String())
	s.problems.Write(w, &problem.Problem{Type: "invalid-token", Title: "Invalid credentials", Status: http.StatusUnauthorized, Detail: "wrong email or password"})
}

// tooMany is the 409 of a login, session or API key past its cap: it says
// how to get out, since a client that never logs out has no credential
// left to end one with, naming the operations as the document serves
// them (and only those it serves).
func (s *Service) tooMany(w http.ResponseWriter, what string) {
	at := func(kind string) string {
		if op := credentialOp(s.table, kind); op != nil {
			return op.Method + " " + op.Path
		}
		return ""
	}
	var ending []string // what ends another login or session
	for _, kind := range []string{"delete-session", "logout-all"} {
		if a := at(kind); a != "" {
			ending = append(ending, a)
		}
	}
	end := strings.Join(ending, " or ")
	parts := []string{"This account holds the most " + what + " allowed."}
	switch what {
	case "logins":
		if a := at("refresh"); a != "" {
			parts = append(parts, "A client should refresh its tokens ("+a+") instead of logging in again.")
		}
		if a := at("logout"); a != "" {
			parts = append(parts, "Log out ("+a+") when done.")
		}
		if a := at("session"); a != "" && end != "" {
			parts = append(parts, "To end logins now, log in with a browser session ("+a+"), then "+end+".")
		}
		parts = append(parts, "A login nobody refreshes ends when its refresh token expires.")
	case "browser sessions":
		if a := at("logout"); a != "" {
			parts = append(parts, "Log out of one ("+a+").")
		}
		if a := at("login"); a != "" && end != "" {
			parts = append(parts, "To end sessions now, log in with a token ("+a+"), then "+end+".")
		}
		parts = append(parts, "A session ends by itself when it expires.")
	default:
		if a := at("delete-api-key"); a != "" {
			parts = append(parts, "Revoke one first ("+a+").")
		}
		parts = append(parts, "A key revoked in the last minute still counts; a key ends by itself when it expires.")
	}
	s.problems.Write(w, &problem.Problem{Type: "too-many", Title: "Too many " + what, Status: http.StatusConflict, Detail: strings.Join(parts, " ")})
}

// fail answers an error no operation expected: a store or the database
// that cannot answer (503, retry), or anything else (500).
func (s *Service) fail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, security.ErrUnavailable) {
		s.cfg.log.WarnContext(r.Context(), "a store is unavailable; answering 503", "path", r.URL.Path, "err", err)
		s.problems.Unavailable(w, "A store is unavailable; try again shortly.")
		return
	}
	s.cfg.log.ErrorContext(r.Context(), "credential operation failed", "path", r.URL.Path, "err", err)
	s.problems.Internal(w)
}

// Views: the Fragment's schemas.

type tokenView struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope"`
}

func tokenOf(p *tokens.Pair) tokenView {
	return tokenView{AccessToken: p.Access, TokenType: "Bearer", ExpiresIn: int(p.ExpiresIn / time.Second),
		RefreshToken: p.Refresh, Scope: p.AccessClaims.Scope}
}

type userView struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Role      string    `json:"role"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
}

func userOf(a *Account) userView {
	return userView{ID: a.ID, Email: a.Email, Role: a.Role, Disabled: a.Disabled, CreatedAt: a.Created.UTC()}
}

type meView struct {
	ID     string   `json:"id"`
	Email  string   `json:"email,omitempty"`
	Role   string   `json:"role,omitempty"`
	Scopes []string `json:"scopes"`
	Scheme string   `json:"scheme"`
}

type sessionView struct {
	ID         string    `json:"id"`
	Kind       string    `json:"kind"`
	Device     string    `json:"device"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at"`
	Current    bool      `json:"current"`
}

type browserSessionView struct {
	CSRFToken string    `json:"csrf_token"`
	ExpiresAt time.Time `json:"expires_at"`
}

type keyView struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	Scopes     []string   `json:"scopes"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	Key        string     `json:"key,omitempty"` // only when created
}

func keyOf(k *security.APIKey) keyView {
	v := keyView{ID: k.ID, Name: k.Name, Prefix: k.Prefix, Scopes: k.Scopes, CreatedAt: k.Created.UTC(), ExpiresAt: k.Expires.UTC()}
	if v.Scopes == nil {
		v.Scopes = []string{}
	}
	if !k.LastUsed.IsZero() {
		t := k.LastUsed.UTC()
		v.LastUsedAt = &t
	}
	return v
}

// oauthError answers a refused grant (RFC 6749 section 5.2).
func oauthError(w http.ResponseWriter, status int, code, description string) {
	noStore(w)
	writeJSON(w, status, struct {
		Error       string `json:"error"`
		Description string `json:"error_description,omitempty"`
	}{code, description})
}

// grants are the token endpoint's grant types.
var grants = []string{"password", "refresh_token", "client_credentials"}

// unsupportedGrant answers a grant_type that names none of the grants
// the document declares (RFC 6749 section 5.2).
func (s *Service) unsupportedGrant(w http.ResponseWriter) {
	oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be one of: "+strings.Join(s.grants, ", "))
}

// malformedToken answers a token request the guard's validation refused
// (p) in the form of RFC 6749 section 5.2, as an OAuth2 client reads it:
// 400 unsupported_grant_type when grant_type names none of the grants the
// document declares, else 400 invalid_request, saying what p says is
// wrong.
func (s *Service) malformedToken(w http.ResponseWriter, r *http.Request, p *problem.Problem) {
	if r.ParseForm() == nil {
		if g := r.PostForm["grant_type"]; len(g) == 1 && g[0] != "" && !slices.Contains(s.grants, g[0]) {
			s.unsupportedGrant(w)
			return
		}
	}
	desc := p.Detail
	if len(p.Errors) > 0 {
		parts := make([]string, len(p.Errors))
		for i, e := range p.Errors {
			parts[i] = e.Field + ": " + e.Message
		}
		desc = strings.Join(parts, "; ")
	}
	oauthError(w, http.StatusBadRequest, "invalid_request", desc)
}

// declaredGrants are the grants of the token operation op that its
// document's form schema allows in grant_type: each of grants when it
// lists none.
func declaredGrants(op *policy.Operation) []string {
	var declared []string
	if rb := op.Spec.RequestBody; rb != nil && rb.Value != nil {
		if mt := rb.Value.Content.Get("application/x-www-form-urlencoded"); mt != nil && mt.Schema != nil && mt.Schema.Value != nil {
			if gt := mt.Schema.Value.Properties["grant_type"]; gt != nil && gt.Value != nil {
				for _, v := range gt.Value.Enum {
					if g, ok := v.(string); ok && slices.Contains(grants, g) {
						declared = append(declared, g)
					}
				}
			}
		}
	}
	if len(declared) == 0 {
		return grants
	}
	return declared
}

// fields splits a space-separated list.
func fields(s string) []string { return strings.Fields(s) }
