package limits

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientIP finds the client address of a request: the socket peer, unless
// the peer is a trusted proxy, in which case the forwarded chain
// (Forwarded, else X-Forwarded-For) is walked from the right, skipping
// trusted proxies, to the first address that is not one. A forged header
// from an untrusted peer is never read.
type ClientIP struct{ trusted []netip.Prefix }

// NewClientIP parses a list of CIDRs (or single addresses) of trusted proxies.
func NewClientIP(cidrs []string) (*ClientIP, error) {
	c := &ClientIP{}
	for _, s := range cidrs {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("trusted proxy %q is not a CIDR or an IP address", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		c.trusted = append(c.trusted, p.Masked())
	}
	return c, nil
}

func (c *ClientIP) isTrusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Of returns the client address of r, or the invalid Addr when RemoteAddr
// cannot be parsed.
func (c *ClientIP) Of(r *http.Request) netip.Addr {
	peer := parseHostPort(r.RemoteAddr)
	if !peer.IsValid() || len(c.trusted) == 0 || !c.isTrusted(peer) {
		return peer
	}
	hops := forwardedChain(r)
	for i := len(hops) - 1; i >= 0; i-- {
		a := hops[i]
		if !a.IsValid() {
			// An unparseable hop: stop at the last address we can trust.
			return peer
		}
		if !c.isTrusted(a) {
			return a
		}
		peer = a
	}
	return peer
}

func parseHostPort(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		host = s
	}
	a, err := netip.ParseAddr(strings.Trim(host, "[]"))
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// forwardedChain returns the client addresses of the Forwarded header
// (RFC 7239 for= parameters), or of X-Forwarded-For when there is no
// Forwarded header, leftmost first. Unparseable entries are invalid Addrs.
func forwardedChain(r *http.Request) []netip.Addr {
	var out []netip.Addr
	if fw := r.Header.Values("Forwarded"); len(fw) > 0 {
		for _, line := range fw {
			for _, elem := range strings.Split(line, ",") {
				var hop netip.Addr
				for _, pair := range strings.Split(elem, ";") {
					k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
					if ok && strings.EqualFold(k, "for") {
						hop = parseHostPort(strings.Trim(v, `"`))
					}
				}
				out = append(out, hop)
			}
		}
		return out
	}
	for _, line := range r.Header.Values("X-Forwarded-For") {
		for _, part := range strings.Split(line, ",") {
			out = append(out, parseHostPort(strings.TrimSpace(part)))
		}
	}
	return out
}
