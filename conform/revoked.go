package conform

// The revoked family: a credential used, ended the way the document
// provides (its credential operations, x-credential), and used again must
// be refused (401). Only credentials made for the case, or marked retire
// in the credentials file, are ended before the rate-limit cases; logout
// everywhere runs after them, on the first credential that may call it.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/specguard/specguard/policy"
)

// revokedBefore runs the cases that end credentials the rate-limit cases
// do without: an API key made for the case, a session, a refresh token
// reused, a logout, an account disabled (and enabled again).
func (r *runner) revokedBefore(ctx context.Context) {
	if !r.wants("revoked") {
		return
	}
	me := r.credentialOp("me")
	if me == nil {
		return // nothing to use a credential on that every kind may call
	}
	r.revokedKey(ctx, me)
	r.revokedSession(ctx, me)
	r.revokedRefresh(ctx, me)
	r.revokedLogout(ctx, me)
}

// revokedAfter ends a whole account (logout everywhere) once nothing else
// needs its credentials. Besides the credential that calls it, another
// login of its account (made again as the credentials file makes it) and
// every other live token or session known to be the account's must be
// refused after it: a server that ended only the calling token must fail.
func (r *runner) revokedAfter(ctx context.Context) {
	const name = "revoked:logout-all"
	op := r.credentialOp("logout-all")
	if op == nil || !r.wants(name) {
		return
	}
	c := r.may(op, func(c *credential) bool { return kind(c.scheme) == "bearer" })
	if c == nil {
		r.report(op, name, Skip, "no configured bearer credential may call it")
		return
	}
	second, err := r.anotherLogin(ctx, c)
	if second == nil {
		r.report(op, name, Skip, "no other login of %s's account could be made to check logging out everywhere against (%v)", c.name, err)
		return
	}
	others := []*credential{second}
	for _, o := range r.live() {
		if o != c && o.account != "" && o.account == c.account && (kind(o.scheme) == "bearer" || o.scheme.Type == policy.SchemeAPIKeyCookie) {
			others = append(others, o)
		}
	}
	resp, err := r.send(ctx, name, op, c, nil, nil)
	if err != nil || resp.status/100 != 2 {
		r.report(op, name, Fail, "logging out everywhere as %s: %v %v", c.name, resp, err)
		return
	}
	for _, o := range r.creds {
		if o.account != "" && o.account == c.account {
			o.retired = true
		}
	}
	c.retired = true
	// The same request again, its refresh token, and the account's other
	// logins: each is refused now. The rate-limit cases spent their tiers
	// (a refused credential counts as anonymous), so each waits the little
	// it takes to be admitted.
	again, err := patiently(ctx, func() (*response, error) { return r.send(ctx, name, op, c, nil, nil) })
	msg := r.refused(again, err, c.name+" after logging out everywhere")
	if msg == "" && c.refresh != "" {
		if refresh := r.credentialOp("refresh"); refresh != nil {
			resp, err := patiently(ctx, func() (*response, error) { return r.refreshWith(ctx, name, refresh, c.refresh) })
			msg = r.refused(resp, err, "its refresh token after logging out everywhere")
		}
	}
	me := r.credentialOp("me")
	var names []string
	for _, o := range others {
		if msg != "" {
			break
		}
		use := op
		if me != nil && may(o, me) {
			use = me
		} else if !may(o, op) {
			continue
		}
		resp, err := patiently(ctx, func() (*response, error) { return r.send(ctx, name, use, o, nil, nil) })
		msg = r.refused(resp, err, o.name+" (the same account) after "+c.name+" logged out everywhere")
		names = append(names, o.name)
	}
	r.verdict(op, name, msg, "%s refused after logging out everywhere, and so are %s", c.name, strings.Join(names, ", "))
}

// anotherLogin makes another login of c's account: c made again as the
// credentials file makes it, or else another credential the file makes
// (not with another) that turns out to be of c's account. The rate-limit
// cases spent the tiers of the operations that make them: each waits what
// it takes to be admitted, up to a minute. It returns the last error when
// none could be made.
func (r *runner) anotherLogin(ctx context.Context, c *credential) (*credential, error) {
	account := r.account(ctx, c)
	err := fmt.Errorf("%s is given as a value, and no other credential of its account is made by the credentials file", c.name)
	logout, me := r.credentialOp("logout-all"), r.credentialOp("me")
	for i, o := range append([]*credential{c}, r.creds...) {
		if i > 0 && o == c || o.from == nil || o.from.With != "" || kind(o.scheme) != "bearer" && o.scheme.Type != policy.SchemeAPIKeyCookie ||
			o != c && (account == "" || o.account != "" && o.account != account) {
			continue
		}
		made, e := r.again(ctx, o, 60)
		if e != nil {
			err = fmt.Errorf("making %s again: %v", o.name, e)
			continue
		}
		// It must be of c's account, and be sent where its refusal shows.
		if (o == c || r.account(ctx, made) == account) && (me != nil && may(made, me) || may(made, logout)) {
			return made, nil
		}
	}
	return nil, err
}

// revokedKey: an API key made for the case, revoked.
func (r *runner) revokedKey(ctx context.Context, me *policy.Operation) {
	create, del := r.credentialOp("create-api-key"), r.credentialOp("delete-api-key")
	if create == nil || del == nil {
		return
	}
	const name = "revoked:api-key"
	if !r.wants(name) {
		return
	}
	maker := r.may(create, func(c *credential) bool { return c.known && len(c.scopes) > 0 })
	if maker == nil {
		r.report(del, name, Skip, "no configured credential whose scopes are known may make an API key")
		return
	}
	key, id, err := r.makeKey(ctx, create, maker)
	if err != nil {
		r.report(del, name, Skip, "could not make an API key as %s: %v", maker.name, err)
		return
	}
	msg := r.usedThenRefused(ctx, name, me, key, func() (*response, error) {
		return r.sendBody(ctx, name, del, maker, nil, id)
	})
	r.verdict(del, name, msg, "an API key refused once revoked")
}

// makeKey makes an API key as maker holding one of its scopes: the key as
// a credential, and its id.
func (r *runner) makeKey(ctx context.Context, create *policy.Operation, maker *credential) (*credential, string, error) {
	body, _ := json.Marshal(map[string]any{"name": "conform", "scopes": maker.scopes[:1]})
	resp, err := r.sendBody(ctx, "revoked:api-key", create, maker, body, "")
	if err != nil {
		return nil, "", err
	}
	var made struct{ Key, ID string }
	if resp.status/100 != 2 || json.Unmarshal(resp.body, &made) != nil || made.Key == "" {
		return nil, "", fmt.Errorf("%s answered %s", create.ID, resp)
	}
	var scheme *policy.Scheme
	for _, s := range r.table.Schemes {
		if s.Type == policy.SchemeAPIKeyHeader && (scheme == nil || s.Name < scheme.Name) {
			scheme = s
		}
	}
	if scheme == nil {
		return nil, "", fmt.Errorf("the document has no API key scheme")
	}
	return &credential{name: "an API key of " + maker.name, scheme: scheme, value: made.Key, account: maker.account}, made.ID, nil
}

// revokedSession: a session (a retire cookie credential) deleted from
// the account's list of sessions, or, without those operations, logged
// out.
func (r *runner) revokedSession(ctx context.Context, me *policy.Operation) {
	list, del, logout := r.credentialOp("list-sessions"), r.credentialOp("delete-session"), r.credentialOp("logout")
	end := del
	if list == nil || del == nil {
		end = logout
	}
	const name = "revoked:session"
	if end == nil || !r.wants(name) {
		return
	}
	c := r.retiring(func(c *credential) bool { return c.scheme.Type == policy.SchemeAPIKeyCookie && c.csrf != "" })
	if c == nil {
		r.report(end, name, Skip, "no configured session cookie marked retire (with its CSRF token)")
		return
	}
	csrf := func(req *http.Request) { req.Header.Set("X-CSRF-Token", c.csrf) }
	how := "logged out"
	msg := r.usedThenRefused(ctx, name, me, c, func() (*response, error) {
		if end == logout {
			return r.send(ctx, name, logout, c, nil, csrf)
		}
		// Which of the account's sessions this one is: the list says.
		resp, err := r.send(ctx, name, list, c, nil, nil)
		if err != nil || resp.status != http.StatusOK {
			return resp, err
		}
		type session struct {
			ID, Kind string
			Current  bool
		}
		var sessions []session
		_ = json.Unmarshal(resp.body, &sessions)
		i := slices.IndexFunc(sessions, func(s session) bool { return s.Current && s.Kind == "cookie" })
		if i < 0 {
			return nil, fmt.Errorf("%s does not list the session making the request (current)", list.ID)
		}
		how = "deleted from the list of sessions"
		param, err := lastParam(del)
		if err != nil {
			return nil, err
		}
		v := &violation{path: map[string]string{param: sessions[i].ID}}
		return r.send(ctx, name, del, c, v, csrf)
	})
	c.retired = true
	r.verdict(end, name, msg, "%s refused once its session was %s", c.name, how)
}

// lastParam is the name of the last parameter of op's path template, or
// an error naming op when its path has none (a document may put the id
// in the query).
func lastParam(op *policy.Operation) (string, error) {
	i, j := strings.LastIndex(op.Path, "{"), strings.LastIndex(op.Path, "}")
	if i < 0 || j < i {
		return "", fmt.Errorf("%s %s (%s) has no path parameter to give the id in", op.Method, op.Path, op.ID)
	}
	return op.Path[i+1 : j], nil
}

// revokedRefresh: a refresh token rotated, then the spent one presented
// again: the whole login is refused, the token the rotation gave too.
func (r *runner) revokedRefresh(ctx context.Context, me *policy.Operation) {
	refresh := r.credentialOp("refresh")
	if refresh == nil {
		return
	}
	const name = "revoked:refresh-reuse"
	if !r.wants(name) {
		return
	}
	c := r.retiring(func(c *credential) bool { return kind(c.scheme) == "bearer" && c.refresh != "" })
	if c == nil {
		r.report(refresh, name, Skip, "no configured bearer credential marked retire came with a refresh token")
		return
	}
	c.retired = true
	resp, err := r.refreshWith(ctx, name, refresh, c.refresh)
	var pair struct {
		Access string `json:"access_token"`
	}
	if err != nil || resp.status != http.StatusOK || json.Unmarshal(resp.body, &pair) != nil || pair.Access == "" {
		r.report(refresh, name, Fail, "refreshing %s's login: %v %v", c.name, resp, err)
		return
	}
	again, err := r.refreshWith(ctx, name, refresh, c.refresh)
	msg := r.refused(again, err, "the spent refresh token")
	if msg == "" {
		rotated := *c
		rotated.value = pair.Access
		resp, err := r.send(ctx, name, me, &rotated, nil, nil)
		msg = r.refused(resp, err, "the access token the rotation gave, once the spent refresh token came back")
	}
	r.verdict(refresh, name, msg, "the spent refresh token refused, and every token of its login with it")
}

// revokedLogout: a login ended by logout; then its account disabled by an
// admin, which ends the API key made with it, and enabled again.
func (r *runner) revokedLogout(ctx context.Context, me *policy.Operation) {
	logout := r.credentialOp("logout")
	if logout == nil {
		return
	}
	const name = "revoked:logout"
	// The disable case uses this one's account: either may run alone.
	wantLogout, wantDisabled := r.wants(name), r.wants("revoked:disabled")
	if !wantLogout && !wantDisabled {
		return
	}
	c := r.retiring(func(c *credential) bool { return kind(c.scheme) == "bearer" })
	if c == nil {
		r.report(logout, name, Skip, "no configured bearer credential marked retire is left")
		return
	}
	// A key of the same account, for the disable case.
	var key *credential
	if create := r.credentialOp("create-api-key"); wantDisabled && create != nil && c.known && len(c.scopes) > 0 && r.account(ctx, c) != "" && may(c, create) {
		key, _, _ = r.makeKey(ctx, create, c)
	}
	if wantLogout {
		msg := r.usedThenRefused(ctx, name, me, c, func() (*response, error) { return r.send(ctx, name, logout, c, nil, nil) })
		c.retired = true
		r.verdict(logout, name, msg, "%s refused once logged out", c.name)
	}
	if key != nil {
		r.revokedDisabled(ctx, me, key)
		c.retired = true // disabling its account ended it too
	}
}

// revokedDisabled: an account disabled by an admin: its API key is
// refused; then it is enabled again, as it was.
func (r *runner) revokedDisabled(ctx context.Context, me *policy.Operation, key *credential) {
	disable, update := r.credentialOp("disable-user"), r.credentialOp("update-user")
	if disable == nil {
		return
	}
	const name = "revoked:disabled"
	if update == nil {
		r.report(disable, name, Skip, "no operation enables an account again (x-credential: update-user): the case would leave it disabled")
		return
	}
	admin := r.may(disable, func(c *credential) bool { return may(c, update) && r.account(ctx, c) != key.account })
	if admin == nil {
		r.report(disable, name, Skip, "no configured credential of another account may disable accounts and enable them again")
		return
	}
	msg := r.usedThenRefused(ctx, name, me, key, func() (*response, error) {
		return r.sendBody(ctx, name, disable, admin, nil, key.account)
	})
	// Enabled again whatever: an interrupted run must not leave the
	// account disabled.
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	resp, err := r.sendBody(uctx, name, update, admin, []byte(`{"disabled":false}`), key.account)
	if err != nil || resp.status/100 != 2 {
		msg = strings.TrimSpace(msg + fmt.Sprintf("; enabling the account again: %v %v", resp, err))
	}
	r.verdict(disable, name, msg, "an API key refused once its account was disabled (enabled again since)")
}

// usedThenRefused uses c on op (2xx), ends it with end (2xx), and uses it
// again: "" when it is refused then (401), else what went otherwise.
func (r *runner) usedThenRefused(ctx context.Context, name string, op *policy.Operation, c *credential, end func() (*response, error)) string {
	resp, err := r.send(ctx, name, op, c, nil, nil)
	if err != nil || resp.status/100 != 2 {
		return fmt.Sprintf("%s before it ended: want 2xx, got %v %v", c.name, resp, err)
	}
	resp, err = end()
	if err != nil || resp.status/100 != 2 {
		return fmt.Sprintf("ending %s: want 2xx, got %v %v", c.name, resp, err)
	}
	resp, err = r.send(ctx, name, op, c, nil, nil)
	return r.refused(resp, err, c.name+" once ended")
}

// patiently sends with send and, while a tier refuses it for a few
// seconds at most (Retry-After up to 5), waits and sends again, three
// times at most.
func patiently(ctx context.Context, send func() (*response, error)) (*response, error) {
	return waiting(ctx, 5, send)
}

// waiting is patiently with Retry-After up to most seconds. It stops
// waiting when ctx ends (an interrupted run), with ctx's error.
func waiting(ctx context.Context, most int, send func() (*response, error)) (*response, error) {
	resp, err := send()
	for try := 0; try < 3 && err == nil && resp.status == http.StatusTooManyRequests; try++ {
		wait, _ := strconv.Atoi(resp.header.Get("Retry-After"))
		if wait < 1 || wait > most {
			break
		}
		timer := time.NewTimer(time.Duration(wait) * time.Second)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-timer.C:
		}
		resp, err = send()
	}
	return resp, err
}

// refused is "" when resp is a 401, else what it is.
func (r *runner) refused(resp *response, err error, what string) string {
	switch {
	case err != nil:
		return err.Error()
	case resp.status == http.StatusTooManyRequests:
		return fmt.Sprintf("%s: rate limited (%s) before the server said whether it is refused", what, strings.Join(violated(resp), ", "))
	case resp.status != http.StatusUnauthorized:
		return fmt.Sprintf("%s: want 401, got %s", what, resp)
	}
	return ""
}

func (r *runner) verdict(op *policy.Operation, name, msg, format string, args ...any) {
	if msg != "" {
		r.report(op, name, Fail, "%s", msg)
	} else {
		r.report(op, name, Pass, format, args...)
	}
}

// refreshWith presents a refresh token to the refresh operation.
func (r *runner) refreshWith(ctx context.Context, name string, op *policy.Operation, token string) (*response, error) {
	body, _ := json.Marshal(map[string]string{"refresh_token": token})
	return r.sendBody(ctx, name, op, nil, body, "")
}

// may is the first live credential that may call op and passes want.
func (r *runner) may(op *policy.Operation, want func(*credential) bool) *credential {
	for _, c := range r.live() {
		if may(c, op) && (want == nil || want(c)) {
			return c
		}
	}
	return nil
}

// retiring is the first live credential marked retire that passes want.
func (r *runner) retiring(want func(*credential) bool) *credential {
	i := slices.IndexFunc(r.creds, func(c *credential) bool { return c.retire && !c.retired && want(c) })
	if i < 0 {
		return nil
	}
	return r.creds[i]
}

// may reports whether c satisfies an alternative of op and may be sent to
// it.
func may(c *credential, op *policy.Operation) bool {
	return usable(c, op) && slices.ContainsFunc(op.Security.Alternatives, func(a policy.Requirement) bool { return satisfies(c, a) })
}
