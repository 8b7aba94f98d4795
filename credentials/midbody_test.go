package credentials_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/specguard/specguard/credentials"
)

// arriving is a request body whose first read runs during: what happens
// on the server while a client sends its body slowly, once the guard has
// admitted the request on its headers.
type arriving struct {
	r      *strings.Reader
	during func()
	once   sync.Once
}

func (b *arriving) Read(p []byte) (int, error) {
	b.once.Do(b.during)
	return b.r.Read(p)
}

func (e *env) meID(header ...string) string {
	e.t.Helper()
	r := e.do("GET", "/me", "", "", header...)
	if r.code != 200 {
		e.t.Fatalf("GET /me: %d %s", r.code, r.raw)
	}
	return r.body["id"].(string)
}

// A credential that ends while its request's body arrives (a logout
// everywhere, a password change, a disable then an enable) mints no API
// key: one minted at the account's version as it is then would outlive
// what ended the credential, for a year. The same with nothing happening
// meanwhile makes a working key.
func TestNoKeyFromACredentialEndedMidBody(t *testing.T) {
	// The Fragment's key creation takes a fresh bearer token; this one
	// takes a browser session too (which carries no freshness).
	before, after, found := strings.Cut(string(credentials.Fragment), "operationId: createApiKey")
	withCookies := []byte(before + "operationId: createApiKey" + strings.Replace(after, "        - oauth2: [apikeys:manage]\n",
		"        - oauth2: [apikeys:manage]\n        - cookieAuth: [apikeys:manage]\n", 1))
	withCookies = []byte(strings.Replace(string(withCookies), "        - cookieAuth: [apikeys:manage]\n      x-require-fresh: true\n",
		"        - cookieAuth: [apikeys:manage]\n", 1))
	if !found || len(withCookies) == len(credentials.Fragment) {
		t.Fatal("the Fragment's createApiKey security is not where the test looks for it")
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			accounts, keys := b.accounts(t)
			store, lim := b.state(t)
			e := newEnv(t, withCookies, accounts, keys, store, lim)
			for _, c := range []struct {
				name   string
				cookie bool
				during func(subject string) error
			}{
				{"nothing", false, nil},
				{"logout-all", false, func(id string) error { return e.svc.LogoutAll(ctx, id) }},
				{"password change", false, func(id string) error { return e.svc.ChangePassword(ctx, id, "another long password") }},
				{"disable then enable", false, func(id string) error {
					if err := e.svc.Disable(ctx, id); err != nil {
						return err
					}
					return e.svc.Enable(ctx, id)
				}},
				{"logout-all, session cookie", true, func(id string) error { return e.svc.LogoutAll(ctx, id) }},
			} {
				email := strings.NewReplacer(" ", "-", ",", "").Replace(c.name) + "@example.com"
				access, _ := e.register(email, "correct horse battery")
				header := bearer(access)
				if c.cookie {
					cookie, csrf := e.browserLogin(email, "correct horse battery")
					header = []string{"Cookie", cookie, "X-CSRF-Token", csrf}
				}
				id := e.meID(header...)
				ran := false
				body := &arriving{r: strings.NewReader(`{"name":"late","scopes":["apikeys:manage"]}`), during: func() {
					ran = true
					if c.during != nil {
						if err := c.during(id); err != nil {
							t.Errorf("%s: %v", c.name, err)
						}
					}
				}}
				r := e.send("POST", "/api-keys", "application/json", body, header...)
				if !ran {
					t.Fatalf("%s: the body was never read: %d %s", c.name, r.code, r.raw)
				}
				keys, err := e.svc.APIKeys().List(context.Background(), id)
				if err != nil {
					t.Fatal(err)
				}
				if c.during == nil {
					if r.code != 201 || len(keys) != 1 {
						t.Fatalf("%s: %d %s, %d keys; want 201 and one", c.name, r.code, r.raw, len(keys))
					}
					if me := e.do("GET", "/me", "", "", "X-API-Key", r.body["key"].(string)); me.code != 200 {
						t.Errorf("%s: the key on /me: %d %s", c.name, me.code, me.raw)
					}
					continue
				}
				if r.code != 401 || r.body["key"] != nil || len(keys) != 0 {
					t.Errorf("%s while the body arrived: %d %.200s, %d live keys; want 401 and none", c.name, r.code, r.raw, len(keys))
				}
				if key, ok := r.body["key"].(string); ok {
					if me := e.do("GET", "/me", "", "", "X-API-Key", key); me.code != 401 {
						t.Errorf("%s: the key handed out works: %d", c.name, me.code)
					}
				}
			}
		})
	}
}

// An admin's write whose admin is disabled or demoted while its body
// arrives is refused, and changes nothing.
func TestAdminWriteOfAnAdminEndedMidBody(t *testing.T) {
	for _, b := range backends[:2] {
		t.Run(b.name, func(t *testing.T) {
			e := onBackend(t, b)
			for _, c := range []struct {
				name   string
				during func(admin string) error
				want   int
			}{
				{"nothing", nil, 200},
				{"disabled", func(id string) error { return e.svc.Disable(ctx, id) }, 401},
				{"demoted", func(id string) error { return e.svc.SetRole(ctx, id, "user") }, 403},
			} {
				adminEmail := c.name + "-admin@example.com"
				if err := e.svc.Seed(ctx, []credentials.SeedAccount{{Email: adminEmail, Password: "admin password!", Role: "admin"}}, nil); err != nil {
					t.Fatal(err)
				}
				admin, _ := e.login(adminEmail, "admin password!")
				adminID := e.meID(bearer(admin)...)
				user, _ := e.register(c.name+"-user@example.com", "correct horse battery")
				userID := e.meID(bearer(user)...)
				body := &arriving{r: strings.NewReader(`{"role":"admin"}`), during: func() {
					if c.during != nil {
						if err := c.during(adminID); err != nil {
							t.Errorf("%s: %v", c.name, err)
						}
					}
				}}
				r := e.send("PATCH", "/admin/users/"+userID, "application/json", body, bearer(admin)...)
				if r.code != c.want {
					t.Errorf("PATCH by an admin %s while its body arrived: %d %.200s, want %d", c.name, r.code, r.raw, c.want)
				}
				// Refused as the guard refuses: with a challenge saying why.
				if want := map[int]string{401: `error="invalid_token"`, 403: `error="insufficient_scope"`}[c.want]; want != "" {
					if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer ") || !strings.Contains(got, want) {
						t.Errorf("PATCH by an admin %s: WWW-Authenticate %q, want a Bearer challenge with %s", c.name, got, want)
					}
				}
				got, err := e.accounts.Account(ctx, userID)
				if err != nil {
					t.Fatal(err)
				}
				if want := map[bool]string{true: "admin", false: "user"}[c.want == 200]; got.Role != want {
					t.Errorf("PATCH by an admin %s: the user's role is %q, want %q", c.name, got.Role, want)
				}
			}
		})
	}
}

// An admin demoted while the body of its key creation arrives gets no key
// holding a scope the role no longer grants: bounded while the owner is a
// user, such a key minted after the demotion would hold users:admin whole
// again once the role came back. What the new role grants is still made.
func TestNoKeyOfScopesADemotionTookMidBody(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := onBackend(t, b)
			for _, c := range []struct {
				scopes     string
				want, made int // the status, and the keys made
			}{
				{`["users:admin","apikeys:manage"]`, 403, 0},
				{`["apikeys:manage"]`, 201, 1},
			} {
				email := fmt.Sprintf("demoted-%d@example.com", c.want)
				if err := e.svc.Seed(ctx, []credentials.SeedAccount{{Email: email, Password: "admin password!", Role: "admin"}}, nil); err != nil {
					t.Fatal(err)
				}
				admin, _ := e.login(email, "admin password!")
				id := e.meID(bearer(admin)...)
				body := &arriving{r: strings.NewReader(`{"name":"k","scopes":` + c.scopes + `}`), during: func() {
					if err := e.svc.SetRole(ctx, id, "user"); err != nil {
						t.Errorf("demote: %v", err)
					}
				}}
				r := e.send("POST", "/api-keys", "application/json", body, bearer(admin)...)
				keys, err := e.svc.APIKeys().List(context.Background(), id)
				if err != nil {
					t.Fatal(err)
				}
				if r.code != c.want || len(keys) != c.made {
					t.Errorf("POST /api-keys %s by an admin demoted while it arrived: %d %.200s, %d live keys; want %d", c.scopes, r.code, r.raw, len(keys), c.want)
				}
				if err := e.svc.SetRole(ctx, id, "admin"); err != nil {
					t.Fatal(err)
				}
				if key, ok := r.body["key"].(string); ok {
					if _, p, err := e.svc.APIKeys().Verify(ctx, key); err != nil || slices.Contains(p.Scopes, "users:admin") {
						t.Errorf("the key made after the demotion, its role back: %v %v", p, err)
					}
				}
			}
		})
	}
}
