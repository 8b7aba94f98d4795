package limits_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/specguard/specguard/limits"
)

func TestClientIP(t *testing.T) {
	c, err := limits.NewClientIP([]string{"10.0.0.0/8", "192.0.2.10"}, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, remote string
		headers      map[string]string
		want         string
	}{
		{"socket peer", "198.51.100.1:5555", nil, "198.51.100.1"},
		{"spoofed XFF from an untrusted peer is ignored", "198.51.100.1:5555", map[string]string{"X-Forwarded-For": "203.0.113.9"}, "198.51.100.1"},
		{"XFF from a trusted proxy", "10.1.2.3:80", map[string]string{"X-Forwarded-For": "203.0.113.9"}, "203.0.113.9"},
		{"chain walked from the right past trusted hops", "10.1.2.3:80", map[string]string{"X-Forwarded-For": "6.6.6.6, 203.0.113.9, 10.9.9.9"}, "203.0.113.9"},
		{"a forged leftmost entry is never reached", "10.1.2.3:80", map[string]string{"X-Forwarded-For": "1.1.1.1, 203.0.113.9"}, "203.0.113.9"},
		{"single trusted address", "192.0.2.10:80", map[string]string{"X-Forwarded-For": "203.0.113.5"}, "203.0.113.5"},
		{"a client's own Forwarded header is never read", "10.1.2.3:80", map[string]string{"Forwarded": `for=203.0.113.7;proto=https, for="[2001:db8::1]:443"`, "X-Forwarded-For": "6.6.6.6"}, "6.6.6.6"},
		{"only Forwarded, X-Forwarded-For named: the proxy itself", "10.1.2.3:80", map[string]string{"Forwarded": "for=203.0.113.7"}, "10.1.2.3"},
		{"garbage hop: the proxy itself", "10.1.2.3:80", map[string]string{"X-Forwarded-For": "203.0.113.9, not-an-ip"}, "10.1.2.3"},
		{"every hop trusted: the proxy itself", "10.1.2.3:80", map[string]string{"X-Forwarded-For": "10.0.0.1, 10.0.0.2"}, "10.1.2.3"},
		{"IPv6 peer", "[2001:db8::2]:443", nil, "2001:db8::2"},
		// A zone names an interface of the host that wrote it, not a
		// client: one address under many zones is one client.
		{"a zone a trusted proxy passes on is dropped", "10.1.2.3:80", map[string]string{"X-Forwarded-For": "fe80::1%eth0"}, "fe80::1"},
		{"a zoned peer counts without its zone", "[fe80::2%eth1]:443", nil, "fe80::2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			if got := c.Of(r).String(); got != tc.want {
				t.Fatalf("client IP = %s, want %s", got, tc.want)
			}
		})
	}
	if _, err := limits.NewClientIP([]string{"10.0.0.0/33"}, ""); err == nil {
		t.Error("bad CIDR accepted")
	}
	// A range wider than any private one trusts clients themselves:
	// trusting 0.0.0.0/0, an IPv6 address a client wrote was its own.
	for _, wide := range []string{"0.0.0.0/0", "::/0", "128.0.0.0/1", "2000::/3", "::ffff:0.0.0.0/96", "::ffff:0.0.0.0/95"} {
		if _, err := limits.NewClientIP([]string{"10.0.0.0/8", wide}, ""); err == nil || !strings.Contains(err.Error(), "spans") {
			t.Errorf("trusting %s: %v, want it refused", wide, err)
		}
	}
	for _, narrow := range []string{"10.0.0.0/8", "fc00::/7", "172.16.0.0/12", "::1", "::ffff:10.0.0.0/104"} {
		c, err := limits.NewClientIP([]string{narrow}, "")
		if err != nil {
			t.Errorf("trusting %s: %v", narrow, err)
			continue
		}
		// An IPv4 range written IPv4-mapped is that range.
		if narrow == "::ffff:10.0.0.0/104" {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr, r.Header["X-Forwarded-For"] = "10.1.2.3:80", []string{"203.0.113.9"}
			if got := c.Of(r); got.String() != "203.0.113.9" {
				t.Errorf("trusting %s, a proxy at 10.1.2.3 names the client %s, want 203.0.113.9", narrow, got)
			}
		}
	}
}

// The operator names the one header the proxy writes; every other is
// ignored.
func TestClientIPHeader(t *testing.T) {
	for _, tc := range []struct {
		header  string
		headers map[string]string
		want    string
	}{
		{"Forwarded", map[string]string{"Forwarded": `for=203.0.113.7;proto=https, for="[2001:db8::1]:443"`, "X-Forwarded-For": "6.6.6.6"}, "2001:db8::1"},
		{"forwarded", map[string]string{"Forwarded": `for=203.0.113.7, for=10.0.0.9`}, "203.0.113.7"},
		{"X-Real-IP", map[string]string{"X-Real-IP": "203.0.113.8", "X-Forwarded-For": "6.6.6.6"}, "203.0.113.8"},
		{"CF-Connecting-IP", map[string]string{"X-Forwarded-For": "6.6.6.6"}, "10.1.2.3"},
	} {
		c, err := limits.NewClientIP([]string{"10.0.0.0/8"}, tc.header)
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "10.1.2.3:80"
		for k, v := range tc.headers {
			r.Header.Set(k, v)
		}
		if got := c.Of(r).String(); got != tc.want {
			t.Errorf("header %s: client IP = %s, want %s", tc.header, got, tc.want)
		}
	}
}
