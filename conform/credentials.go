package conform

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/specguard/specguard/internal/yamldoc"
	"github.com/specguard/specguard/policy"
)

// Config is a credentials file:
//
//	credentials:
//	  - name: user
//	    scheme: bearerAuth
//	    from: {url: /auth/login, body: {email: user@example.com, password: pw}, field: access_token}
//	  - name: reader-key
//	    scheme: apiKeyAuth
//	    scopes: [posts:read]
//	    from: {url: /api-keys, with: user, body: {name: conform, scopes: [posts:read]}, field: key}
//	  - name: reader
//	    scheme: oauth2
//	    from: {url: /auth/token, form: {grant_type: password, username: u@example.com, password: pw, scope: posts:read}, field: access_token}
//	  - name: fixed
//	    scheme: bearerAuth
//	    value: eyJhbGciOi...
type Config struct {
	Credentials []Credential `yaml:"credentials"`
}

// Credential is one credential the cases may use.
type Credential struct {
	Name string `yaml:"name"`
	// Scheme is the document's security scheme it is for; a bearer token
	// serves every http bearer and oauth2 scheme alike.
	Scheme string `yaml:"scheme"`
	// Value is the credential itself (a token, an API key, a session
	// cookie's value), or empty when From gets it.
	Value string `yaml:"value"`
	From  *Fetch `yaml:"from"`
	// Scopes it holds. When empty, a bearer token's are read from its
	// scope claim, and another credential's from the answer of the
	// document's GET /me (x-credential: me), which must agree with them
	// when they are given; without it, they hold none the cases can count
	// on.
	Scopes []string `yaml:"scopes"`
	// Account names the account it acts for, when the document has no
	// GET /me (x-credential: me) to ask: two credentials of different
	// accounts and the same scopes let the owner cases run.
	Account string `yaml:"account"`
	// Retire lets the revoked cases end it (a logout, a refresh token
	// reused, its account disabled for a moment) after the cases that
	// need credentials alive have run; the rate-limit cases do without
	// it then.
	Retire bool `yaml:"retire"`

	at string // file:line of its entry, when LoadConfig read it
}

// Fetch is a request whose answer holds a credential.
type Fetch struct {
	Method string            `yaml:"method"` // POST when empty
	URL    string            `yaml:"url"`    // a path on the server
	Body   any               `yaml:"body"`   // sent as JSON
	Form   map[string]string `yaml:"form"`   // or: sent as a form
	With   string            `yaml:"with"`   // a credential listed before, sent with the request
	Field  string            `yaml:"field"`  // the field of the JSON answer that holds it
	Cookie string            `yaml:"cookie"` // or: the cookie the answer sets
}

// LoadConfig reads a credentials file. Errors name the file and line.
func LoadConfig(path string) ([]Credential, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("%s: %s", path, strings.Join(te.Errors, "; "))
		}
		return nil, fmt.Errorf("%s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if line, err := yamldoc.After(dec); err != nil {
		return nil, fmt.Errorf("%s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	} else if line != 0 {
		return nil, fmt.Errorf("%s:%d: %s", path, line, yamldoc.Message)
	}
	// Where each entry is, for the errors Run finds in it.
	var doc struct {
		Credentials []yaml.Node `yaml:"credentials"`
	}
	if yaml.Unmarshal(data, &doc) == nil && len(doc.Credentials) == len(c.Credentials) {
		for i := range c.Credentials {
			c.Credentials[i].at = fmt.Sprintf("%s:%d", path, doc.Credentials[i].Line)
		}
	}
	return c.Credentials, nil
}

// credential is a Credential ready to use.
type credential struct {
	name   string
	scheme *policy.Scheme
	value  string
	scopes []string // sorted
	known  bool     // scopes are known (given, or read from the token)
	// refresh and csrf are the refresh token and the CSRF token the answer
	// that gave it held, when it did; cookies the other cookies it set (a
	// session's CSRF cookie), sent with it.
	refresh, csrf string
	cookies       []*http.Cookie
	account       string // the account it acts for, once known
	accountAsked  bool
	retire        bool   // the revoked cases may end it
	retired       bool   // it has been ended: no case uses it
	from          *Fetch // how it was made, when it was: made again, it is another login
	// keyID and maker: an API key the file made (from: the document's
	// create-api-key operation), its id and the credential that made it,
	// to revoke it when the run ends.
	keyID string
	maker *credential
}

func (c *credential) apply(req *http.Request) {
	switch c.scheme.Type {
	case policy.SchemeBearer, policy.SchemeOAuth2, policy.SchemeOIDC:
		req.Header.Set("Authorization", "Bearer "+c.value)
	case policy.SchemeAPIKeyHeader:
		req.Header.Set(c.scheme.Param, c.value)
	case policy.SchemeAPIKeyCookie:
		req.AddCookie(&http.Cookie{Name: c.scheme.Param, Value: c.value})
		for _, ck := range c.cookies {
			req.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
		}
	}
}

// kind is how a credential travels and who verifies it: specguard's own
// bearer tokens alike, each identity provider's apart.
func kind(s *policy.Scheme) string {
	if s.Type == policy.SchemeOIDC {
		return "openIdConnect:" + s.Name
	}
	if s.Type == policy.SchemeBearer || s.Type == policy.SchemeOAuth2 {
		return "bearer"
	}
	return s.Type.String() + ":" + s.Param
}

// holds reports whether c has every one of scopes.
func (c *credential) holds(scopes []string) bool {
	for _, s := range scopes {
		if _, ok := slices.BinarySearch(c.scopes, s); !ok {
			return false
		}
	}
	return true
}

// fetchAll resolves every credential, in order (one may be fetched with
// another listed before it).
func (r *runner) fetchAll(ctx context.Context, list []Credential) ([]*credential, error) {
	var out []*credential
	byName := map[string]*credential{}
	for i, c := range list {
		where := fmt.Sprintf("credential %d (%s)", i+1, c.Name)
		if c.Name == "" {
			where = fmt.Sprintf("credential %d", i+1)
		}
		if c.at != "" {
			where = c.at + ": " + where
		}
		s := r.table.Schemes[c.Scheme]
		switch {
		case c.Name == "":
			return out, fmt.Errorf("%s: name is missing", where)
		case byName[c.Name] != nil:
			return out, fmt.Errorf("%s: the name is used twice", where)
		case s == nil:
			return out, fmt.Errorf("%s: scheme %q is not a security scheme of %s", where, c.Scheme, r.table.Source)
		case (c.Value == "") == (c.From == nil):
			return out, fmt.Errorf("%s: give exactly one of value and from", where)
		case c.From != nil && !onServer(c.From.URL):
			// base+url goes to another host, the password with it.
			return out, fmt.Errorf("%s: from.url %q is not a path on the server: give one starting with /", where, c.From.URL)
		}
		cred := &credential{name: c.Name, scheme: s, value: c.Value, account: c.Account, retire: c.Retire, from: c.From}
		if c.From != nil {
			got, err := r.fetch(ctx, c.From, byName)
			if errors.Is(err, errFetchLimited) {
				return out, fmt.Errorf("%s: %v (%s)", where, err, spentBy(list, i))
			}
			if err != nil {
				return out, fmt.Errorf("%s: %v", where, err)
			}
			cred.value, cred.refresh, cred.csrf, cred.cookies = got.value, got.refresh, got.csrf, got.cookies
			if create := r.credentialOp("create-api-key"); create != nil && got.id != "" && c.From.With != "" &&
				strings.EqualFold(cmp.Or(c.From.Method, http.MethodPost), create.Method) && pathMatches(create.Path, c.From.URL) {
				cred.keyID, cred.maker = got.id, byName[c.From.With]
			}
		}
		cred.scopes, cred.known = slices.Sorted(slices.Values(c.Scopes)), len(c.Scopes) > 0
		if !cred.known && kind(s) == "bearer" {
			cred.scopes, cred.known = tokenScopes(cred.value)
		} else if me := r.askMe(ctx, cred); me != nil {
			// What the service says the credential holds: a session's
			// scopes are its role's, which an edit of x-roles changes.
			me = slices.Sorted(slices.Values(me))
			if cred.known && !slices.Equal(me, cred.scopes) {
				return out, fmt.Errorf("%s: scopes %v, but %s answers %v for this credential: correct the file, or leave scopes out to take the answer's",
					where, cred.scopes, r.credentialOp("me"), me)
			}
			cred.scopes, cred.known = me, true
		}
		out = append(out, cred)
		byName[c.Name] = cred
	}
	return out, nil
}

// tidy ends what the run made, however it ended (interrupted, with part
// of the cases selected, or failing to make a later credential): the API
// keys the credentials file made, which stayed live for a year (a full
// run ends them too, logging out everywhere; revoking an ended key changes
// nothing), and the resources the owner cases made, deleted by their
// owner where the document has a DELETE of them (one the case deleted
// already is answered 404).
func (r *runner) tidy(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if del := r.credentialOp("delete-api-key"); del != nil {
		for _, c := range r.creds {
			if c.keyID == "" {
				continue
			}
			revoked := func(by *credential) bool {
				resp, err := waiting(ctx, 5, func() (*response, error) { return r.sendBody(ctx, "", del, by, nil, c.keyID) })
				return err == nil && (resp.status/100 == 2 || resp.status == http.StatusNotFound)
			}
			if c.maker != nil && !c.maker.retired && revoked(c.maker) {
				continue
			}
			for _, by := range r.revokers(ctx, c, del) {
				if revoked(by) {
					break
				}
			}
		}
	}
	r.deleteMade(ctx)
}

// revokers are the credentials that may revoke key with del when its
// maker (tried first, asking nothing) could not, a case having ended it
// (logged out): another live credential of its account, then the key
// itself. A key none of them may revoke stays.
func (r *runner) revokers(ctx context.Context, key *credential, del *policy.Operation) []*credential {
	var out []*credential
	acct := ""
	if key.maker != nil {
		acct = key.maker.account
	}
	if acct == "" {
		acct = r.account(ctx, key)
	}
	for _, c := range r.live() {
		if c != key && c != key.maker && acct != "" && may(c, del) && r.account(ctx, c) == acct {
			out = append(out, c)
		}
	}
	if !key.retired && may(key, del) {
		out = append(out, key)
	}
	return out
}

// deleteMade deletes the resources the owner cases made, as their owners
// (at the end of the owner cases, before the revoked cases end the owners'
// credentials; by tidy when the run ended before).
func (r *runner) deleteMade(ctx context.Context) {
	for _, m := range r.made {
		if may(m.owner, m.del) {
			_, _ = r.sendBody(ctx, "", m.del, m.owner, nil, m.id)
		}
	}
	r.made = nil
}

// made is a resource an owner case made: the operation that deletes it,
// its id, and its owner.
type made struct {
	del   *policy.Operation
	id    string
	owner *credential
}

// pathMatches reports whether url (a path on the server, perhaps with a
// query) is the document's path, which has no parameters.
func pathMatches(path, url string) bool {
	p, _, _ := strings.Cut(url, "?")
	return p == path
}

// fetched is what a Fetch got: the credential, and the refresh and CSRF
// tokens its answer held.
type fetched struct {
	value, refresh, csrf, id string
	cookies                  []*http.Cookie
}

// spentBy says who spent the rate limit that refused making list[i]: the
// run itself, when credentials before it were made at the same URL, or
// calls before it (an earlier run from this address, or this run's at
// another URL counted by the same tier) when it is the first made there.
func spentBy(list []Credential, i int) string {
	before, same := 0, 0
	for j, o := range list {
		if o.From != nil && o.From.URL == list[i].From.URL {
			same++
			if j < i {
				before++
			}
		}
	}
	if before == 0 {
		return "the first credential the file makes at this URL: calls before it spent the limit, an earlier run from this address perhaps, or credentials the file makes at another URL the same tier counts; wait for it to refill, or restart the server"
	}
	return fmt.Sprintf("the credentials file makes %d there, one after another from one address, and %d went before this one: that operation's x-rate-limit must admit them at once, or the file must make fewer", same, before)
}

// errFetchLimited: a rate limit refused the call that makes a credential.
var errFetchLimited = errors.New("rate limited")

// limitedError is errFetchLimited with the answer's Retry-After (seconds;
// 0 when it had none).
type limitedError struct {
	retry int
	err   error
}

func (e *limitedError) Error() string { return e.err.Error() }
func (e *limitedError) Unwrap() error { return e.err }

// again makes c anew as it was made (another login of its account), while
// a rate limit refuses it for a few seconds at most (Retry-After up to
// most), waiting and trying again, three times at most.
func (r *runner) again(ctx context.Context, c *credential, most int) (*credential, error) {
	byName := map[string]*credential{}
	for _, o := range r.creds {
		byName[o.name] = o
	}
	for try := 0; ; try++ {
		got, err := r.fetch(ctx, c.from, byName)
		var limited *limitedError
		if !errors.As(err, &limited) || try == 2 || limited.retry < 1 || limited.retry > most {
			if err != nil {
				return nil, err
			}
			made := *c
			made.name = c.name + " made again"
			made.value, made.refresh, made.csrf, made.cookies = got.value, got.refresh, got.csrf, got.cookies
			made.retired = false
			// An account c's ask could not learn (c ended, or a tier
			// refused) is asked anew: this one is live.
			made.accountAsked = made.account != ""
			return &made, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(limited.retry) * time.Second):
		}
	}
}

// onServer reports whether u is a path on the server under test, which
// the base URL is put before: without its /, "@host:port/login" makes the
// base's host a user name, and "auth/login" lengthens its host.
func onServer(u string) bool { return strings.HasPrefix(u, "/") }

func (r *runner) fetch(ctx context.Context, f *Fetch, byName map[string]*credential) (fetched, error) {
	method := f.Method
	if method == "" {
		method = http.MethodPost
	}
	var body io.Reader
	contentType := "application/json"
	switch {
	case f.Body != nil && f.Form != nil:
		return fetched{}, errors.New("give body or form, not both")
	case f.Body != nil:
		b, err := json.Marshal(f.Body)
		if err != nil {
			return fetched{}, err
		}
		body = bytes.NewReader(b)
	case f.Form != nil:
		form := url.Values{}
		for k, v := range f.Form {
			form.Set(k, v)
		}
		body, contentType = strings.NewReader(form.Encode()), "application/x-www-form-urlencoded"
	}
	req, err := http.NewRequestWithContext(ctx, method, r.base+f.URL, body)
	if err != nil {
		return fetched{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if f.With != "" {
		with := byName[f.With]
		if with == nil {
			return fetched{}, fmt.Errorf("with: %q is not a credential listed before it", f.With)
		}
		with.apply(req)
	}
	resp, err := r.opts.Client.Do(req)
	if err != nil {
		return fetched{}, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode == http.StatusTooManyRequests {
		retry, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		return fetched{}, &limitedError{retry: retry, err: fmt.Errorf("%w: %s %s: %d %s", errFetchLimited, method, f.URL, resp.StatusCode, quoted(raw))}
	}
	if resp.StatusCode/100 != 2 {
		return fetched{}, fmt.Errorf("%s %s: %d %s", method, f.URL, resp.StatusCode, quoted(raw))
	}
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	got := fetched{}
	got.refresh, _ = m["refresh_token"].(string)
	got.csrf, _ = m["csrf_token"].(string)
	got.id, _ = m["id"].(string)
	if f.Cookie != "" {
		for _, c := range resp.Cookies() {
			if c.Name == f.Cookie {
				got.value = c.Value
			} else {
				got.cookies = append(got.cookies, c)
			}
		}
		if got.value == "" {
			return fetched{}, fmt.Errorf("%s %s set no cookie %s", method, f.URL, f.Cookie)
		}
		return got, nil
	}
	if m == nil {
		return fetched{}, fmt.Errorf("%s %s: the answer is not a JSON object", method, f.URL)
	}
	v, ok := m[f.Field].(string)
	if !ok || v == "" {
		return fetched{}, fmt.Errorf("%s %s: the answer has no string field %q", method, f.URL, f.Field)
	}
	got.value = v
	return got, nil
}

// tokenScopes reads the scope claim of a JWT (unverified: the server is
// what verifies it).
func tokenScopes(token string) ([]string, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, false
	}
	var claims struct {
		Scope *string `json:"scope"`
	}
	if json.Unmarshal(raw, &claims) != nil || claims.Scope == nil {
		return nil, false
	}
	return slices.Sorted(slices.Values(strings.Fields(*claims.Scope))), true
}
