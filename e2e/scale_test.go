package e2e

import (
	"strings"
	"testing"

	"github.com/specguard/specguard/e2e/client"
	"github.com/specguard/specguard/internal/keytest"
	"github.com/specguard/specguard/internal/redistest"
)

// fleet starts n instances sharing one Redis (or Redis Cluster), one
// PostgreSQL database and one signing key.
func fleet(t *testing.T, n int, redisURL string) []*Instance {
	t.Helper()
	shared := Shared(redisURL, Postgres(t), keytest.File(t))
	out := make([]*Instance, n)
	for i := range out {
		out[i] = Start(t, shared...)
	}
	return out
}

// onEvery returns one client per instance, all speaking from the same IP,
// as a load balancer would deliver one client's requests.
func onEvery(t *testing.T, ins []*Instance) []*Client {
	t.Helper()
	out := make([]*Client, len(ins))
	ip := NewIP()
	for i, in := range ins {
		out[i] = NewClientFrom(t, in, ip)
	}
	return out
}

func TestFleetOnRedis(t *testing.T) {
	ins := fleet(t, 3, Redis(t))
	fleetJourney(t, ins)
	fleetData(t, ins)
}

func TestFleetOnRedisCluster(t *testing.T) {
	cl := redistest.StartCluster(t)
	ins := fleet(t, 3, cl.URL)
	fleetJourney(t, ins)
	fleetData(t, ins)
	for _, in := range ins {
		if s := in.logs.String(); !strings.Contains(s, `"store":"redis-cluster"`) {
			t.Fatalf("%s is not in cluster mode:\n%s", in.Base, s)
		}
		if s := in.logs.String(); strings.Contains(s, "CROSSSLOT") {
			t.Fatalf("CROSSSLOT in the logs of %s:\n%s", in.Base, s)
		}
	}
}

func fleetJourney(t *testing.T, ins []*Instance) {
	t.Run("one rate limit whichever instance requests land on", func(t *testing.T) {
		cs := onEvery(t, ins)
		n, _ := wrongLogins(t)
		admitted := 0
		for i := range n + 10 {
			r, err := cs[i%len(cs)].LoginWithResponse(ctx, client.LoginRequest{Email: "nobody@example.com", Password: "wrong-password"})
			if err != nil {
				t.Fatal(err)
			}
			switch r.StatusCode() {
			case 401:
				admitted++
			case 429:
			default:
				t.Fatalf("login attempt %d: %d %s", i+1, r.StatusCode(), r.Body)
			}
		}
		if admitted != n {
			t.Fatalf("%d attempts admitted across %d instances, want %d (one tier, and one budget, for them all)", admitted, len(ins), n)
		}
	})
	t.Run("logout on one instance is honoured by the others", func(t *testing.T) {
		cs := onEvery(t, ins)
		tok := login(t, cs[0], "user@example.com", "user-password")
		for i, c := range cs {
			r, _ := c.GetMeWithResponse(ctx, Bearer(tok.AccessToken))
			want(t, "GET /me on instance "+string(rune('A'+i)), r.StatusCode(), 200, r.Body)
		}
		out, _ := cs[1].LogoutWithResponse(ctx, Bearer(tok.AccessToken))
		want(t, "logout on B", out.StatusCode(), 204, out.Body)
		for i, c := range cs {
			r, _ := c.GetMeWithResponse(ctx, Bearer(tok.AccessToken))
			want(t, "GET /me after logout on instance "+string(rune('A'+i)), r.StatusCode(), 401, r.Body)
		}
	})
	t.Run("refresh reuse kills the family on every instance", func(t *testing.T) {
		cs := onEvery(t, ins)
		tok := login(t, cs[0], "moderator@example.com", "moderator-password")
		ref, _ := cs[1].RefreshWithResponse(ctx, client.RefreshRequest{RefreshToken: *tok.RefreshToken})
		want(t, "refresh on B", ref.StatusCode(), 200, ref.Body)
		reuse, _ := cs[2].RefreshWithResponse(ctx, client.RefreshRequest{RefreshToken: *tok.RefreshToken})
		want(t, "reuse on C", reuse.StatusCode(), 401, reuse.Body)
		for i, c := range cs {
			r, _ := c.GetMeWithResponse(ctx, Bearer(ref.JSON200.AccessToken))
			want(t, "newest token after reuse on instance "+string(rune('A'+i)), r.StatusCode(), 401, r.Body)
		}
	})
	t.Run("sessions and API keys work on every instance", func(t *testing.T) {
		cs := onEvery(t, ins)
		cookie, csrf := sessionCookies(t, cs[0], "admin@example.com", "admin-password")
		tok := login(t, cs[1], "admin@example.com", "admin-password")
		key, _ := cs[2].CreateApiKeyWithResponse(ctx, client.NewApiKey{Name: "fleet", Scopes: []string{listUsersScope(t)}}, Bearer(tok.AccessToken))
		want(t, "create key on C", key.StatusCode(), 201, key.Body)
		for i, c := range cs {
			r, _ := c.GetMeWithResponse(ctx, Header("Cookie", cookie))
			want(t, "session on instance "+string(rune('A'+i)), r.StatusCode(), 200, r.Body)
			u, _ := c.ListUsersWithResponse(ctx, nil, Header("X-API-Key", key.JSON201.Key))
			want(t, "API key on instance "+string(rune('A'+i)), u.StatusCode(), 200, u.Body)
		}
		out, _ := cs[1].LogoutWithResponse(ctx, Header("Cookie", cookie), Header("X-CSRF-Token", csrf))
		want(t, "cookie write (logout) with CSRF on B", out.StatusCode(), 204, out.Body)
		gone, _ := cs[2].GetMeWithResponse(ctx, Header("Cookie", cookie))
		want(t, "the session on C after its logout on B", gone.StatusCode(), 401, gone.Body)
	})
}
