package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	openapi_types "github.com/oapi-codegen/runtime/types"

	"github.com/specguard/specguard/e2e/client"
	"github.com/specguard/specguard/internal/keytest"
	"github.com/specguard/specguard/internal/pgtest"
)

// fleetData checks that a fleet (instances on one PostgreSQL and one
// Redis) holds one truth for the app's data and for account state.
func fleetData(t *testing.T, ins []*Instance) {
	name := func(i int) string { return string(rune('A' + i)) }
	admin := func(t *testing.T, c *Client) string {
		t.Helper()
		return login(t, c, "admin@example.com", "admin-password").AccessToken
	}

	t.Run("an account registered on A logs in on B", func(t *testing.T) {
		cs := onEvery(t, ins)
		email, _ := register(t, cs[0])
		login(t, cs[1], email, "correct horse battery")
	})

	t.Run("an API key made on B is listed and works on A and C", func(t *testing.T) {
		cs := onEvery(t, ins)
		_, tok := register(t, cs[1])
		k, _ := cs[1].CreateApiKeyWithResponse(ctx, client.NewApiKey{Name: "from B", Scopes: docTable(t).RoleScopes("user")[:1]}, Bearer(tok.AccessToken))
		want(t, "create an API key on B", k.StatusCode(), 201, k.Body)
		for _, i := range []int{0, 2} {
			r, _ := cs[i].ListApiKeysWithResponse(ctx, Bearer(tok.AccessToken))
			want(t, "GET /api-keys on "+name(i), r.StatusCode(), 200, r.Body)
			if len(*r.JSON200) != 1 || (*r.JSON200)[0].Name != "from B" {
				t.Errorf("keys on %s: %+v", name(i), *r.JSON200)
			}
			me, _ := cs[i].GetMeWithResponse(ctx, Header("X-API-Key", k.JSON201.Key))
			want(t, "the key on "+name(i), me.StatusCode(), 200, me.Body)
		}
	})

	t.Run("a disable on A ends every credential on B and C at the next request", func(t *testing.T) {
		cs := onEvery(t, ins)
		email, tok := register(t, cs[1])
		me, _ := cs[1].GetMeWithResponse(ctx, Bearer(tok.AccessToken))
		want(t, "GET /me", me.StatusCode(), 200, me.Body)
		cookie, _ := sessionCookies(t, cs[2], email, "correct horse battery")
		key, _ := cs[1].CreateApiKeyWithResponse(ctx, client.NewApiKey{Name: "ci", Scopes: docTable(t).RoleScopes("user")[:1]}, Bearer(tok.AccessToken))
		want(t, "create API key", key.StatusCode(), 201, key.Body)
		creds := map[string]client.RequestEditorFn{
			"token": Bearer(tok.AccessToken), "session": Header("Cookie", cookie), "API key": Header("X-API-Key", key.JSON201.Key),
		}
		for cred, edit := range creds {
			for _, i := range []int{1, 2} { // warm every cache
				r, _ := cs[i].GetMeWithResponse(ctx, edit)
				want(t, cred+" on "+name(i)+" before the disable", r.StatusCode(), 200, r.Body)
			}
		}
		d, _ := cs[0].DisableUserWithResponse(ctx, me.JSON200.Id, Bearer(admin(t, cs[0])))
		want(t, "disable on A", d.StatusCode(), 204, d.Body)
		for cred, edit := range creds {
			for _, i := range []int{1, 2} {
				r, _ := cs[i].GetMeWithResponse(ctx, edit)
				want(t, cred+" on "+name(i)+" after the disable", r.StatusCode(), 401, r.Body)
			}
		}
		ref, _ := cs[2].RefreshWithResponse(ctx, client.RefreshRequest{RefreshToken: *tok.RefreshToken})
		want(t, "refresh on C after the disable", ref.StatusCode(), 401, ref.Body)
		l, _ := NewClient(t, ins[2]).LoginWithResponse(ctx, client.LoginRequest{Email: email, Password: "correct horse battery"})
		want(t, "login on C after the disable", l.StatusCode(), 401, l.Body)
	})

	t.Run("a demotion narrows every credential's scopes everywhere", func(t *testing.T) {
		cs := onEvery(t, ins)
		email, tok := register(t, cs[0])
		me, _ := cs[0].GetMeWithResponse(ctx, Bearer(tok.AccessToken))
		moderator, user := client.RoleModerator, client.RoleUser
		up, _ := cs[0].UpdateUserWithResponse(ctx, me.JSON200.Id, client.UserPatch{Role: &moderator}, Bearer(admin(t, cs[0])))
		want(t, "promote on A", up.StatusCode(), 200, up.Body)
		// Each login from an address of its own: the login tier counts
		// every password check per address, whatever the document sets it to.
		mod := login(t, onEvery(t, ins)[1], email, "correct horse battery")
		cookie, _ := sessionCookies(t, onEvery(t, ins)[2], email, "correct horse battery")
		// A key of the scope listing accounts takes, which a moderator has
		// and a user lacks.
		scope := listUsersScope(t)
		if !slices.Contains(docTable(t).RoleScopes("moderator"), scope) || slices.Contains(docTable(t).RoleScopes("user"), scope) {
			t.Fatalf("this test needs the scope listing accounts (%s) to be a moderator's and not a user's", scope)
		}
		key, _ := cs[1].CreateApiKeyWithResponse(ctx, client.NewApiKey{Name: "audit", Scopes: []string{scope}}, Bearer(mod.AccessToken))
		want(t, "create a "+scope+" key", key.StatusCode(), 201, key.Body)
		creds := map[string]client.RequestEditorFn{
			"token": Bearer(mod.AccessToken), "session": Header("Cookie", cookie), "API key": Header("X-API-Key", key.JSON201.Key),
		}
		holds := func(t *testing.T, when string, wantScope bool, wantList int) {
			t.Helper()
			for cred, edit := range creds {
				for i := range cs {
					me, _ := cs[i].GetMeWithResponse(ctx, edit)
					want(t, cred+" GET /me on "+name(i)+" "+when, me.StatusCode(), 200, me.Body)
					if slices.Contains(me.JSON200.Scopes, scope) != wantScope {
						t.Errorf("%s on %s %s holds %v", cred, name(i), when, me.JSON200.Scopes)
					}
					if cred == "session" {
						continue // listUsers does not accept sessions
					}
					r, _ := cs[i].ListUsersWithResponse(ctx, nil, edit)
					want(t, cred+" lists users on "+name(i)+" "+when, r.StatusCode(), wantList, r.Body)
				}
			}
		}
		holds(t, "as a moderator", true, 200)
		down, _ := cs[1].UpdateUserWithResponse(ctx, me.JSON200.Id, client.UserPatch{Role: &user}, Bearer(admin(t, cs[1])))
		want(t, "demote on B", down.StatusCode(), 200, down.Body)
		holds(t, "after the demotion", false, 403)
	})

	t.Run("20 concurrent registrations of one address give one 201", func(t *testing.T) {
		email := fmt.Sprintf("race%d@example.com", userSeq.Add(1))
		var created, conflict atomic.Int64
		var wg sync.WaitGroup
		for i := range 20 {
			c := NewClient(t, ins[i%len(ins)]) // an address each: the register limit is per IP
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := c.RegisterWithResponse(ctx, client.Credentials{Email: openapi_types.Email(email), Password: "correct horse battery"})
				switch {
				case err != nil:
					t.Error(err)
				case r.StatusCode() == 201:
					created.Add(1)
				case r.StatusCode() == 409:
					conflict.Add(1)
				default:
					t.Errorf("register: %d %s", r.StatusCode(), r.Body)
				}
			}()
		}
		wg.Wait()
		if created.Load() != 1 || conflict.Load() != 19 {
			t.Errorf("%d created, %d conflicts; want 1 and 19", created.Load(), conflict.Load())
		}
	})
}

// writer is a registered account with a client of its own address.
type writer struct {
	c     *Client
	token string
}

// newUsers registers n accounts on in.
func newUsers(t *testing.T, in *Instance, n int) []writer {
	t.Helper()
	var out []writer
	for range n {
		c := NewClient(t, in)
		_, tok := register(t, c)
		out = append(out, writer{c, tok.AccessToken})
	}
	return out
}

// The embedded default (SQLite) keeps every write it acknowledged through a
// kill -9 in the middle of a write load.
func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	in := Start(t)
	users := newUsers(t, in, 6)
	scopes := docTable(t).RoleScopes("user")[:1]
	var mu sync.Mutex
	var keys []string     // acknowledged API keys
	var accounts []string // acknowledged registrations
	acked := make(chan struct{}, 1000)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, u := range users {
		wg.Add(2)
		go func() { // API keys: records in the database, as an app's are
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				r, err := u.c.CreateApiKeyWithResponse(ctx, client.NewApiKey{Name: fmt.Sprintf("crash %d.%d", i, n), Scopes: scopes}, Bearer(u.token))
				if err != nil {
					return // the process is gone
				}
				if r.StatusCode() == 201 {
					mu.Lock()
					keys = append(keys, r.JSON201.Key)
					mu.Unlock()
					acked <- struct{}{}
				}
			}
		}()
		go func() { // registrations, each from an address of its own
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				email := fmt.Sprintf("crash%d@example.com", userSeq.Add(1))
				r, err := NewClient(t, in).RegisterWithResponse(ctx, client.Credentials{Email: openapi_types.Email(email), Password: "correct horse battery"})
				if err != nil {
					return
				}
				if r.StatusCode() == 201 {
					mu.Lock()
					accounts = append(accounts, email)
					mu.Unlock()
					acked <- struct{}{}
				}
			}
		}()
	}
	for {
		<-acked
		mu.Lock()
		enough := len(keys) >= 30 && len(accounts) >= 3
		mu.Unlock()
		if enough {
			break
		}
	}
	in.Kill(t) // in the middle of the load
	close(stop)
	wg.Wait()
	in.Restart(t)

	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d API keys and %d accounts acknowledged before kill -9", len(keys), len(accounts))
	for i, key := range keys {
		r, _ := NewClient(t, in).GetMeWithResponse(ctx, Header("X-API-Key", key))
		want(t, fmt.Sprintf("acknowledged API key %d after the restart", i), r.StatusCode(), 200, r.Body)
	}
	c := NewClient(t, in)
	have := map[string]bool{}
	for _, u := range everyUser(t, c, Bearer(login(t, c, "admin@example.com", "admin-password").AccessToken)) {
		have[u.Email] = true
	}
	for _, email := range accounts {
		if !have[email] {
			t.Errorf("acknowledged registration of %s is gone after the restart", email)
		}
	}
}

// PostgreSQL restarted under load: requests that need it get 503 (never
// 500) while it is down, specguard recovers without a restart, and every
// write it acknowledged is there.
func TestPostgresRestartUnderLoad(t *testing.T) {
	pg := pgtest.Start(t)
	in := Start(t, "SPECGUARD_DATABASE_URL="+pg.New(t), "SPECGUARD_SIGNING_KEY_FILE="+keytest.File(t))
	users := newUsers(t, in, 4)
	scopes := docTable(t).RoleScopes("user")[:1]
	var mu sync.Mutex
	statuses := map[int]int{}
	var keys []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				var status int
				if n%4 == 0 { // an account holds 50 keys at most
					r, err := u.c.CreateApiKeyWithResponse(ctx, client.NewApiKey{Name: fmt.Sprintf("pg %d.%d", i, n), Scopes: scopes}, Bearer(u.token))
					if err != nil {
						t.Error(err)
						return
					}
					if status = r.StatusCode(); status == 201 {
						mu.Lock()
						keys = append(keys, r.JSON201.Key)
						mu.Unlock()
					}
				} else {
					r, err := u.c.ListApiKeysWithResponse(ctx, Bearer(u.token))
					if err != nil {
						t.Error(err)
						return
					}
					status = r.StatusCode()
				}
				mu.Lock()
				statuses[status]++
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	count := func(status int) int { mu.Lock(); defer mu.Unlock(); return statuses[status] }
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("%s: statuses so far %v", what, statuses)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("load before the restart", func() bool { return count(200) > 10 })
	pg.Stop()
	waitFor("503s while PostgreSQL is down", func() bool { return count(503) > 10 })
	ready, _ := NewClient(t, in).ReadyzWithResponse(ctx)
	want(t, "/readyz with PostgreSQL down", ready.StatusCode(), 503, ready.Body)
	if got := (*ready.JSON503.Checks)["database"]; got != "unavailable" {
		t.Errorf("/readyz checks %v, want database unavailable", *ready.JSON503.Checks)
	}
	pg.Restart(t)
	before := count(200)
	waitFor("recovery after PostgreSQL returned", func() bool { return count(200) > before+10 })
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	t.Logf("statuses %v; %d API keys acknowledged", statuses, len(keys))
	for status := range statuses {
		if status >= 500 && status != http.StatusServiceUnavailable {
			t.Errorf("%d answers of status %d", statuses[status], status)
		}
	}
	for i, key := range keys {
		r, _ := NewClient(t, in).GetMeWithResponse(ctx, Header("X-API-Key", key))
		want(t, fmt.Sprintf("acknowledged API key %d after the restart", i), r.StatusCode(), 200, r.Body)
	}
}

// A login racing a disable on another instance: whatever credential comes
// back is refused at its first use. The race is run many times so that the
// disable lands before, during and after the password check.
func TestDisableRacingLogin(t *testing.T) {
	ins := fleet(t, 2, Redis(t))
	adminC := NewClient(t, ins[1])
	adminTok := login(t, adminC, "admin@example.com", "admin-password").AccessToken
	issued := 0
	for round := range 12 {
		a := NewClient(t, ins[0])
		email, tok := register(t, a)
		me, _ := a.GetMeWithResponse(ctx, Bearer(tok.AccessToken))
		want(t, "GET /me", me.StatusCode(), 200, me.Body)
		var got *client.LoginResponse
		done := make(chan struct{})
		go func() {
			defer close(done)
			got, _ = NewClient(t, ins[0]).LoginWithResponse(ctx, client.LoginRequest{Email: email, Password: "correct horse battery"})
		}()
		time.Sleep(time.Duration(round*8) * time.Millisecond) // bcrypt takes ~50-100ms
		d, _ := adminC.DisableUserWithResponse(ctx, me.JSON200.Id, Bearer(adminTok))
		want(t, "disable", d.StatusCode(), 204, d.Body)
		<-done
		if got == nil {
			t.Fatal("login failed")
		}
		switch got.StatusCode() {
		case 401:
		case 200:
			issued++
			for i, in := range ins {
				r, _ := NewClient(t, in).GetMeWithResponse(ctx, Bearer(got.JSON200.AccessToken))
				want(t, fmt.Sprintf("round %d: token issued during the disable, on instance %d", round, i), r.StatusCode(), 401, r.Body)
			}
		default:
			t.Fatalf("login: %d %s", got.StatusCode(), got.Body)
		}
	}
	t.Logf("%d of 12 logins returned a token before seeing the disable; every one was refused", issued)
}

// everyUser lists every account, page by page.
func everyUser(t *testing.T, c *Client, edit client.RequestEditorFn) []client.User {
	t.Helper()
	var all []client.User
	limit, after := 100, ""
	for {
		page, err := c.ListUsersWithResponse(t.Context(), &client.ListUsersParams{Limit: &limit, After: &after}, edit)
		if err != nil {
			t.Fatalf("list users after %q: %v", after, err)
		}
		if page.JSON200 == nil {
			t.Fatalf("list users after %q: %d %s", after, page.StatusCode(), page.Body)
		}
		all = append(all, *page.JSON200...)
		if len(*page.JSON200) < limit {
			return all
		}
		after = all[len(all)-1].Email
	}
}
