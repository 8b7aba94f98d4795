package limits_test

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/specguard/specguard/limits"
)

// fuzzTrusted are the trusted proxies of FuzzClientIP: IPv4 and IPv6
// ranges, single addresses, and link-local space so zones get exercised.
var fuzzTrusted = []string{"10.0.0.0/8", "192.0.2.10", "2001:db8::/32", "::1", "fe80::/10"}

// FuzzClientIP feeds arbitrary RemoteAddr, X-Forwarded-For and Forwarded
// values (one header line per "\n"-separated part) to ClientIP.Of.
func FuzzClientIP(f *testing.F) {
	trusting, err := limits.NewClientIP(fuzzTrusted, "")
	if err != nil {
		f.Fatal(err)
	}
	direct, err := limits.NewClientIP(nil, "") // trusts no one: always the peer
	if err != nil {
		f.Fatal(err)
	}
	var trusted []netip.Prefix
	for _, s := range fuzzTrusted {
		if p, err := netip.ParsePrefix(s); err == nil {
			trusted = append(trusted, p)
		} else {
			trusted = append(trusted, netip.PrefixFrom(netip.MustParseAddr(s), netip.MustParseAddr(s).BitLen()))
		}
	}
	isTrusted := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}

	for _, s := range []struct{ remote, xff, fwd string }{
		{"", "", ""},
		{"198.51.100.1:5555", "203.0.113.9", ""},
		{"10.1.2.3:80", "203.0.113.9", ""},
		{"10.1.2.3:80", "6.6.6.6, 203.0.113.9, 10.9.9.9", ""},
		{"10.1.2.3:80", ",,, ,", ""},
		{"10.1.2.3:80", "203.0.113.9,,10.0.0.1", ""},
		{"10.1.2.3:80", "203.0.113.9\n10.0.0.1", ""},
		{"10.1.2.3:80", "not-an-ip, 203.0.113.9", ""},
		{"10.1.2.3:80", "6.6.6.6", `for=203.0.113.7;proto=https, for="[2001:db8::1]:443"`},
		{"10.1.2.3:80", "", `for="[::1]:80"`},
		{"10.1.2.3:80", "", `for=[::1]`},
		{"10.1.2.3:80", "", `FOR=unknown`},
		{"10.1.2.3:80", "", `for="_hidden", for=203.0.113.7`},
		{"10.1.2.3:80", "", `for=203.0.113.7;for=10.0.0.1`},
		{"10.1.2.3:80", "", `by=10.0.0.1`},
		{"10.1.2.3:80", "", `for="`},
		{"10.1.2.3:80", "", "for=203.0.113.7\nfor=10.0.0.2"},
		{"10.1.2.3:80", "::ffff:203.0.113.9", ""},
		{"10.1.2.3:80", "[2001:db8::9]:1234, [fe80::1%eth0]:80", ""},
		{"[::1]:443", "fe80::1%25eth0", ""},
		{"[fe80::1%eth0]:80", "203.0.113.9", ""},
		{"[::ffff:10.1.2.3]:80", "203.0.113.9", ""},
		{"[2001:db8::2]:443", "", ""},
		{"2001:db8::2", "203.0.113.9", ""},
		{"10.1.2.3", "203.0.113.9", ""},
		{"[10.1.2.3]", "203.0.113.9", ""},
		{"[[::1]]:80", "203.0.113.9", ""},
		{"@", "", ""},
		{"10.1.2.3:80", "１０.0.0.1", ""},
		{"10.1.2.3:80", strings.Repeat("10.0.0.1,", 1000), ""},
		{"10.1.2.3:80", "", strings.Repeat("for=10.0.0.1;", 200) + strings.Repeat(",", 200)},
	} {
		f.Add(s.remote, s.xff, s.fwd)
	}

	f.Fuzz(func(t *testing.T, remote, xff, fwd string) {
		r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/"}, RemoteAddr: remote, Header: http.Header{}}
		if xff != "" {
			r.Header["X-Forwarded-For"] = strings.Split(xff, "\n")
		}
		if fwd != "" {
			r.Header["Forwarded"] = strings.Split(fwd, "\n")
		}
		got := trusting.Of(r)
		peer := direct.Of(r)

		// Where RemoteAddr is unambiguous, the peer is that address,
		// without a zone.
		if ap, err := netip.ParseAddrPort(remote); err == nil && peer != ap.Addr().Unmap().WithZone("") {
			t.Fatalf("peer of RemoteAddr %q = %v, want %v", remote, peer, ap.Addr().Unmap().WithZone(""))
		}
		if a, err := netip.ParseAddr(remote); err == nil && peer != a.Unmap().WithZone("") {
			t.Fatalf("peer of RemoteAddr %q = %v, want %v", remote, peer, a.Unmap().WithZone(""))
		}
		if !peer.IsValid() {
			if got.IsValid() {
				t.Fatalf("RemoteAddr %q does not parse, yet the client is %v", remote, got)
			}
			return
		}
		if !got.IsValid() {
			t.Fatalf("RemoteAddr %q parses as %v, yet the client is the invalid Addr", remote, peer)
		}
		if got.Is4In6() {
			t.Fatalf("client %v is an IPv4-mapped IPv6 address: one client, two keys", got)
		}
		if got.Zone() != "" {
			t.Fatalf("client %v has a zone: one client, a key per zone", got)
		}
		if !isTrusted(peer) && got != peer {
			t.Fatalf("untrusted peer %v: client %v read from the headers", peer, got)
		}
		if xff == "" && got != peer {
			t.Fatalf("no X-Forwarded-For (the header named): client %v, want the peer %v", got, peer)
		}
	})
}
