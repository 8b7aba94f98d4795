package conform

// The method and csrf cases: a path called with a method it does not
// declare is 405 with Allow; a write authenticated by a session cookie
// without its CSRF token, or with a wrong one, is 403.

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/specguard/specguard/policy"
)

// methodCase sends op's path a method no operation of the path declares:
// 405, with Allow naming every declared one. It runs once per path (ops
// are sorted by path).
func (r *runner) methodCase(ctx context.Context, op *policy.Operation, declared []string) {
	var method string
	for _, m := range []string{http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodPost, http.MethodGet} {
		if !slices.Contains(declared, m) {
			method = m
			break
		}
	}
	if method == "" {
		r.report(op, "method", Skip, "the path declares every method tried")
		return
	}
	resp, err := r.sendMethod(ctx, op, method)
	switch {
	case err != nil:
		r.report(op, "method", Fail, "%v", err)
	case resp.status != http.StatusMethodNotAllowed:
		r.report(op, "method", Fail, "%s %s: want 405, got %s", method, op.Path, resp)
	default:
		allow := strings.Split(strings.ReplaceAll(resp.header.Get("Allow"), " ", ""), ",")
		for _, m := range declared {
			if !slices.Contains(allow, m) {
				r.report(op, "method", Fail, "%s %s: 405, but Allow is %q, without %s", method, op.Path, resp.header.Get("Allow"), m)
				return
			}
		}
		r.report(op, "method", Pass, "%s %s: 405 with Allow: %s", method, op.Path, resp.header.Get("Allow"))
	}
}

// sendMethod sends op's path (its parameters valid) with another method,
// without credentials or body.
func (r *runner) sendMethod(ctx context.Context, op *policy.Operation, method string) (*response, error) {
	other, spec := *op, *op.Spec
	spec.RequestBody = nil
	other.Method, other.Spec = method, &spec
	// No operation answers it: the answer is this case's alone to check.
	return r.send(ctx, "", &other, nil, nil, nil)
}

// csrfCase: an unsafe operation a session cookie may call, sent the cookie
// without its CSRF token, with a wrong one, and with one the caller chose
// in both the CSRF cookie and the header (a double submit not bound to the
// session passes it): 403 each time. The request
// breaks the schema too, so that a server without the check still changes
// nothing (validation refuses it after).
func (r *runner) csrfCase(ctx context.Context, op *policy.Operation) {
	if safeMethod(op.Method) {
		return
	}
	var cookie *credential
	var scheme *policy.Scheme
	for _, c := range r.live() {
		if c.scheme.Type != policy.SchemeAPIKeyCookie {
			continue
		}
		for _, alt := range op.Security.Alternatives {
			if satisfies(c, alt) {
				cookie, scheme = c, alt[0].Scheme
				break
			}
		}
		if cookie != nil {
			break
		}
	}
	if cookie == nil {
		return // no cookie scheme here, or no configured session for it
	}
	name := "csrf:" + scheme.Name
	v := violate(op)
	if v == nil {
		r.report(op, name, Skip, "%s with nothing the document constrains: a server without the check would carry it out", op.Method)
		return
	}
	tokens := []string{"", "conform-wrong-token"}
	// The cookie the session's CSRF token came in: the one whose value is
	// the token the login answered with, else one named for it (XSRF-TOKEN,
	// __Host-csrf), when there is one.
	csrfCookie := ""
	for _, ck := range cookie.cookies {
		if cookie.csrf != "" && ck.Value == cookie.csrf {
			csrfCookie = ck.Name
		}
	}
	for _, ck := range cookie.cookies {
		if n := strings.ToLower(ck.Name); csrfCookie == "" && (strings.Contains(n, "csrf") || strings.Contains(n, "xsrf")) {
			csrfCookie = ck.Name
		}
	}
	if csrfCookie != "" {
		tokens = append(tokens, "conform-planted")
	}
	for _, token := range tokens {
		resp, err := r.send(ctx, name, op, cookie, v, func(req *http.Request) {
			if token == "conform-planted" {
				// A token of the attacker's choosing in the session's
				// CSRF cookie too (a sibling domain may set cookies):
				// equal to the header, but not the session's.
				req.Header.Del("Cookie")
				req.AddCookie(&http.Cookie{Name: cookie.scheme.Param, Value: cookie.value})
				for _, ck := range cookie.cookies {
					if ck.Name == csrfCookie {
						ck = &http.Cookie{Name: ck.Name, Value: token}
					}
					req.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
				}
			}
			if token != "" {
				req.Header.Set("X-CSRF-Token", token)
			}
		})
		what := "without its CSRF token"
		switch token {
		case "conform-wrong-token":
			what = "with a wrong CSRF token"
		case "conform-planted":
			what = "with a CSRF token of the caller's choosing in both its cookie and its header"
		}
		switch {
		case err != nil:
			r.report(op, name, Fail, "%v", err)
			return
		case resp.status == http.StatusTooManyRequests:
			r.report(op, name, Skip, "rate limited before the case ran (%s)", strings.Join(violated(resp), ", "))
			return
		case resp.status != http.StatusForbidden:
			r.report(op, name, Fail, "a session cookie %s: want 403, got %s", what, resp)
			return
		}
	}
	if csrfCookie == "" {
		r.report(op, name, Pass, "403 without the CSRF token and with a wrong one (no cookie holds the token the login answered with, nor is named for one: none planted)")
		return
	}
	r.report(op, name, Pass, "403 without the CSRF token, with a wrong one, and with one planted in cookie and header")
}
