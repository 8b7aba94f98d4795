package credentials_test

import (
	"strings"
	"testing"

	"github.com/specguard/specguard/credentials"
)

// A browser session whose account is disabled while its key creation's
// body arrives is refused 401 as the guard refuses a session: with the
// Cookie challenge naming the session cookie (and as this service does
// itself when the session is logged out meanwhile). It was a Bearer one,
// of a credential the request never presented.
func TestCallerRefusedWithItsSchemesChallenge(t *testing.T) {
	before, after, found := strings.Cut(string(credentials.Fragment), "operationId: createApiKey")
	withCookies := before + "operationId: createApiKey" + strings.Replace(after, "        - oauth2: [apikeys:manage]\n",
		"        - oauth2: [apikeys:manage]\n        - cookieAuth: [apikeys:manage]\n", 1)
	withCookies = strings.Replace(withCookies, "        - cookieAuth: [apikeys:manage]\n      x-require-fresh: true\n",
		"        - cookieAuth: [apikeys:manage]\n", 1)
	if !found || len(withCookies) == len(credentials.Fragment) {
		t.Fatal("the Fragment's createApiKey security is not where the test looks for it")
	}
	b := backends[0] // memory
	accounts, keys := b.accounts(t)
	store, lim := b.state(t)
	e := newEnv(t, []byte(withCookies), accounts, keys, store, lim)
	for _, c := range []struct {
		name   string
		during func(id string) error
	}{
		{"logout-all", func(id string) error { return e.svc.LogoutAll(ctx, id) }},
		{"disable", func(id string) error { return e.svc.Disable(ctx, id) }},
	} {
		email := c.name + "@example.com"
		e.register(email, "correct horse battery")
		cookie, csrf := e.browserLogin(email, "correct horse battery")
		header := []string{"Cookie", cookie, "X-CSRF-Token", csrf}
		id := e.meID(header...)
		body := &arriving{r: strings.NewReader(`{"name":"late","scopes":["apikeys:manage"]}`), during: func() {
			if err := c.during(id); err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
		}}
		r := e.send("POST", "/api-keys", "application/json", body, header...)
		got := r.header.Get("WWW-Authenticate")
		if r.code != 401 || !strings.HasPrefix(got, `Cookie realm="specguard", cookie="__Host-session", error="invalid_token"`) {
			t.Errorf("%s while the body arrived, by a session cookie: %d, WWW-Authenticate %q; want 401 with the session cookie's challenge", c.name, r.code, got)
		}
	}
}
