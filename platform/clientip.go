package platform

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/labstack/echo/v4"
)

// trustedProxies are the peers whose X-Forwarded-For and X-Real-IP a
// service believes. Loopback and unix-socket peers (nginx on the same
// machine) always are; FLOTILLA_TRUSTED_PROXIES or WithTrustedProxies adds
// networks.
type trustedProxies []netip.Prefix

// parseTrustedProxies reads a comma-separated list of CIDRs or addresses.
func parseTrustedProxies(v string) (trustedProxies, error) {
	var out trustedProxies
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR (10.0.0.0/8) nor an address", f)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func (t trustedProxies) trusts(a netip.Addr) bool {
	a = a.Unmap()
	if a.IsLoopback() {
		return true
	}
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// extractor returns the echo IPExtractor of the service: the peer's
// address, unless the peer is a trusted proxy; then the address that the
// proxies say sent the request, the right-most one of X-Forwarded-For that
// is not itself a trusted proxy (or X-Real-IP). A header that is not a
// list of addresses is not believed.
func (t trustedProxies) extractor() echo.IPExtractor {
	return func(r *http.Request) string {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		var peer netip.Addr
		if err == nil {
			peer, err = netip.ParseAddr(host)
		}
		switch {
		case err != nil && r.RemoteAddr != "" && r.RemoteAddr[0] != '@':
			return r.RemoteAddr // neither an address nor a unix peer
		case err == nil && !t.trusts(peer):
			return peer.Unmap().String()
		}
		// A trusted proxy, or a peer on a unix socket.
		fallback := ""
		if err == nil {
			fallback = peer.Unmap().String()
		}
		if xff := r.Header.Values(echo.HeaderXForwardedFor); len(xff) > 0 {
			all := strings.Join(xff, ",")
			for all != "" {
				i := strings.LastIndexByte(all, ',')
				f := strings.TrimSpace(all[i+1:])
				all = all[:max(i, 0)]
				a, err := netip.ParseAddr(f)
				if err != nil {
					return fallback // not an address: believe none of it
				}
				fallback = a.Unmap().String()
				if !t.trusts(a) {
					return fallback
				}
			}
			return fallback
		}
		if v := r.Header.Get(echo.HeaderXRealIP); v != "" {
			if a, err := netip.ParseAddr(strings.TrimSpace(v)); err == nil {
				return a.Unmap().String()
			}
		}
		return fallback
	}
}
