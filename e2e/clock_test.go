package e2e

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/specguard/specguard/e2e/client"
	"github.com/specguard/specguard/internal/keytest"
)

// Two instances whose clocks are twelve hours apart share one Redis: their
// rate-limit decisions are the same as one instance's, because the Lua
// script reads Redis TIME and never the app server's clock.
func TestSkewedClocksDecideIdentically(t *testing.T) {
	url, key := Redis(t), keytest.File(t)
	early := Start(t, "SPECGUARD_REDIS_URL="+url, "SPECGUARD_SIGNING_KEY_FILE="+key, "SPECGUARD_TEST_CLOCK_OFFSET=-6h")
	late := Start(t, "SPECGUARD_REDIS_URL="+url, "SPECGUARD_SIGNING_KEY_FILE="+key, "SPECGUARD_TEST_CLOCK_OFFSET=6h")
	ip := NewIP()
	ce, cl := NewClientFrom(t, early, ip), NewClientFrom(t, late, ip)

	// The clocks really differ: a token the early instance mints expired
	// hours ago by the late instance's clock.
	tok := login(t, NewClient(t, early), "user@example.com", "user-password")
	me, _ := NewClient(t, late).GetMeWithResponse(ctx, Bearer(tok.AccessToken))
	want(t, "early token on the late instance", me.StatusCode(), 401, me.Body)

	admitted := 0
	var retry []int
	n, waits := wrongLogins(t)
	for i := range n + 7 {
		c := ce
		if i%2 == 1 {
			c = cl
		}
		r, err := c.LoginWithResponse(ctx, client.LoginRequest{Email: "nobody@example.com", Password: "wrong-password"})
		if err != nil {
			t.Fatal(err)
		}
		switch r.StatusCode() {
		case 401:
			admitted++
		case 429:
			n, _ := strconv.Atoi(r.HTTPResponse.Header.Get("Retry-After"))
			retry = append(retry, n)
		default:
			t.Fatalf("attempt %d: %d", i+1, r.StatusCode())
		}
	}
	if admitted != n {
		t.Fatalf("admitted %d with clocks 12h apart, want %d", admitted, n)
	}
	// Each about one of the waits (whole seconds, rounded up), as long
	// from one instance as from the other.
	for _, r := range retry {
		s := time.Duration(r) * time.Second
		if !slices.ContainsFunc(waits, func(w time.Duration) bool { return s >= w-10*time.Second && s <= w+time.Second }) {
			t.Fatalf("Retry-After values %v: want about one of %v from both instances", retry, waits)
		}
	}
}
