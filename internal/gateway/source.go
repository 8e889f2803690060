package gateway

import (
	"net/http"
	"net/netip"
	"strings"
)

// maxForwardedHops bounds how many X-Forwarded-For entries are read.
const maxForwardedHops = 32

// source returns the address a request comes from: the connection's peer,
// unless the peer is a trusted proxy, in which case it is the right-most
// X-Forwarded-For address that is not itself a trusted proxy (the
// left-most if all are). Only addresses appended by trusted proxies are
// believed: whatever a client put further left is its own claim.
//
// A request from a trusted proxy whose X-Forwarded-For cannot be read (a
// malformed entry, too many hops) has no known source: the zero Addr,
// which a token limited to source networks is refused for. A request from
// a trusted proxy without the header comes from the proxy itself.
func source(r *http.Request, trusted []netip.Prefix) netip.Addr {
	p := peer(r.RemoteAddr)
	if !isTrusted(p, trusted) {
		return p
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		for h := range strings.SplitSeq(v, ",") {
			hops = append(hops, h)
			if len(hops) > maxForwardedHops {
				return netip.Addr{}
			}
		}
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.Trim(hops[i], " \t"))
		if err != nil || a.Zone() != "" {
			return netip.Addr{}
		}
		a = a.Unmap()
		if i == 0 || !isTrusted(a, trusted) {
			return a
		}
	}
	return p
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peer returns the address of the connection's peer, or the zero Addr.
func peer(remote string) netip.Addr {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
