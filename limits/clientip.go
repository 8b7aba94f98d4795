package limits

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/realclientip/realclientip-go"
)

// ClientIP finds the client address of a request: the socket peer, unless
// the peer is a trusted proxy, in which case the one header that proxy
// writes is read: X-Forwarded-For or Forwarded (RFC 7239) from the right,
// skipping trusted proxies, to the first address that is not one; any
// other header (X-Real-IP, say) as the single address it holds. A header
// from an untrusted peer, and any header but the named one, is never read:
// proxies that append to X-Forwarded-For pass a client's own Forwarded
// header through untouched.
//
// Parsing the headers is realclientip-go's (its rightmost-trusted-range and
// single-IP-header strategies).
type ClientIP struct {
	trusted  []netip.Prefix
	header   string
	strategy realclientip.Strategy
}

// DefaultClientIPHeader is the header read from trusted proxies when none
// is named: what nginx ($proxy_add_x_forwarded_for), HAProxy and AWS ALB write.
const DefaultClientIPHeader = "X-Forwarded-For"

// NewClientIP parses a list of CIDRs (or single addresses) of trusted
// proxies and the header they write (DefaultClientIPHeader when empty).
func NewClientIP(cidrs []string, header string) (*ClientIP, error) {
	c := &ClientIP{header: http.CanonicalHeaderKey(strings.TrimSpace(header))}
	if c.header == "" {
		c.header = DefaultClientIPHeader
	}
	var nets []net.IPNet
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
		if p.Addr().Is4In6() {
			// ::ffff:10.0.0.0/104 is 10.0.0.0/8, as peers are unmapped;
			// one shorter than /96 would span every IPv4 address.
			if p.Bits() < 96 {
				return nil, fmt.Errorf("trusted proxy %q spans every IPv4 address and more: list the proxies' own addresses", s)
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		p = p.Masked()
		if p.Bits() < widest(p.Addr()) {
			return nil, fmt.Errorf("trusted proxy %q spans more than any private range (/%d): any client in it could name its own address; list the proxies' own addresses", s, widest(p.Addr()))
		}
		c.trusted = append(c.trusted, p)
		nets = append(nets, net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())})
	}
	var err error
	switch c.header {
	case "X-Forwarded-For", "Forwarded":
		c.strategy, err = realclientip.NewRightmostTrustedRangeStrategy(c.header, nets)
	default:
		c.strategy, err = realclientip.NewSingleIPHeaderStrategy(c.header)
	}
	if err != nil {
		return nil, fmt.Errorf("client IP header %q: %v", header, err)
	}
	return c, nil
}

// widest is the shortest prefix a trusted range of a's family may have:
// that of its widest private range (10.0.0.0/8; fc00::/7). A wider one,
// 0.0.0.0/0 above all, trusts clients: one that trusts every IPv4
// address took any IPv6 address a client wrote in X-Forwarded-For for its
// own, a fresh per-IP budget each request.
func widest(a netip.Addr) int {
	if a.Is4() {
		return 8
	}
	return 7
}

// Header is the header read from trusted proxies.
func (c *ClientIP) Header() string { return c.header }

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
// cannot be parsed. When a trusted proxy sent no usable address, it is the
// proxy's. An IPv6 zone is dropped: it names an interface of the host that
// wrote it, and one address under many zones is one client (a bucket keyed
// by the zone too would let a caller behind a proxy that passes zones on
// take a fresh one per request).
func (c *ClientIP) Of(r *http.Request) netip.Addr {
	peer := parseHostPort(r.RemoteAddr)
	if !peer.IsValid() || len(c.trusted) == 0 || !c.isTrusted(peer) {
		return peer
	}
	if s := c.strategy.ClientIP(r.Header, r.RemoteAddr); s != "" {
		if a, err := netip.ParseAddr(s); err == nil {
			return a.Unmap().WithZone("")
		}
	}
	return peer
}

func parseHostPort(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		host = s
	}
	a, err := netip.ParseAddr(strings.Trim(host, "[]"))
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}
