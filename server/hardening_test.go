package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// Regression tests of the white-box review's defects, each through HTTP.

// Behind a proxy that appends X-Forwarded-For, a client's own Forwarded
// header passes through untouched: reading it let 12 wrong logins with
// one X-Forwarded-For and a varying Forwarded go unlimited.
func TestClientIPSpoofedForwardedHeader(t *testing.T) {
	in := start(t, map[string]string{"SPECGUARD_TRUSTED_PROXIES": "127.0.0.1/32"})
	limited := 0
	for i := range 12 {
		resp, _ := in.do(t, "POST", "/auth/login", `{"email":"user@example.com","password":"wrong-password"}`,
			"X-Forwarded-For", "203.0.113.50", "Forwarded", fmt.Sprintf("for=198.51.100.%d", i+1))
		switch resp.StatusCode {
		case 401:
		case 429:
			limited++
		default:
			t.Fatalf("attempt %d: %d", i+1, resp.StatusCode)
		}
	}
	if limited < 7 {
		t.Fatalf("%d of 12 wrong logins from one client were limited; want every one after the 5th", limited)
	}

	// The operator who names Forwarded gets Forwarded, and X-Forwarded-For
	// is the one ignored.
	fw := start(t, map[string]string{"SPECGUARD_TRUSTED_PROXIES": "127.0.0.1/32", "SPECGUARD_CLIENT_IP_HEADER": "Forwarded"})
	for i := range 8 {
		resp, _ := fw.do(t, "POST", "/auth/login", `{"email":"user@example.com","password":"wrong-password"}`,
			"Forwarded", "for=203.0.113.60", "X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i+1))
		if want := map[bool]int{true: 401, false: 429}[i < 5]; resp.StatusCode != want {
			t.Fatalf("Forwarded named, attempt %d: %d, want %d", i+1, resp.StatusCode, want)
		}
	}
}

// IPv6 clients were limited per address: anyone with a /64 had 2^64
// buckets. They are counted per /64 by default, per SPECGUARD_IPV6_PREFIX.
func TestIPv6LimitedPerAddress(t *testing.T) {
	attempt := func(in *instance, i int) int {
		resp, _ := in.do(t, "POST", "/auth/login", `{"email":"user@example.com","password":"wrong-password"}`,
			"X-Forwarded-For", fmt.Sprintf("2001:db8:5:6::%x", i+1))
		return resp.StatusCode
	}
	in := start(t, map[string]string{"SPECGUARD_TRUSTED_PROXIES": "127.0.0.1/32"})
	for i := range 7 {
		if want := map[bool]int{true: 401, false: 429}[i < 5]; attempt(in, i) != want {
			t.Fatalf("address %d of one /64: want %d", i+1, want)
		}
	}
	per128 := start(t, map[string]string{"SPECGUARD_TRUSTED_PROXIES": "127.0.0.1/32", "SPECGUARD_IPV6_PREFIX": "128"})
	for i := range 7 {
		if got := attempt(per128, i); got != 401 {
			t.Fatalf("SPECGUARD_IPV6_PREFIX=128, address %d: %d, want 401 (a bucket each)", i+1, got)
		}
	}
}

// Responses that carry a token, a session or an API key could be cached by
// a proxy or the browser (RFC 6749 section 5.1 wants no-store).
func TestCredentialResponsesCacheable(t *testing.T) {
	in := start(t, nil)
	tok := login(t, in, "user@example.com", "user-password")
	resp, body := in.do(t, "POST", "/auth/login", `{"email":"user@example.com","password":"user-password"}`)
	var refresh string
	if s, ok := body["refresh_token"].(string); ok {
		refresh = s
	}
	for _, tc := range []struct {
		name string
		resp *http.Response
	}{
		{"login", resp},
		{"token", func() *http.Response {
			req, _ := http.NewRequest("POST", in.base+"/auth/token", strings.NewReader("grant_type=password&username=user@example.com&password=user-password"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
			return r
		}()},
		{"refresh", func() *http.Response {
			r, _ := in.do(t, "POST", "/auth/refresh", `{"refresh_token":"`+refresh+`"}`)
			return r
		}()},
		{"session", func() *http.Response {
			r, _ := in.do(t, "POST", "/auth/session", `{"email":"user@example.com","password":"user-password"}`)
			return r
		}()},
		{"API key", func() *http.Response {
			r, _ := in.do(t, "POST", "/api-keys", `{"name":"ci","scopes":["posts:read"]}`, "Authorization", "Bearer "+tok)
			return r
		}()},
	} {
		if tc.resp.StatusCode/100 != 2 {
			t.Errorf("%s: %d", tc.name, tc.resp.StatusCode)
		}
		if got := tc.resp.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", tc.name, got)
		}
	}
	if resp, _ := in.do(t, "GET", "/posts", ""); resp.Header.Get("Cache-Control") == "no-store" {
		t.Errorf("a public list is marked no-store too: only credentials need it")
	}
}
