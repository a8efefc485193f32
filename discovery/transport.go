package discovery

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Defaults of Registry.Transport, sized for a fleet of services that call
// each other often.
const (
	// DefaultMaxIdleConnsPerHost is how many idle keep-alive connections
	// are kept per service (Go's default is 2).
	DefaultMaxIdleConnsPerHost = 64
	// DefaultMaxIdleConns bounds idle connections over all services.
	DefaultMaxIdleConns = 1024
	// DefaultIdleConnTimeout closes a keep-alive connection idle this long.
	DefaultIdleConnTimeout = 90 * time.Second
	// DefaultDialTimeout bounds one dial.
	DefaultDialTimeout = 5 * time.Second
)

// A TransportOption changes a default of Registry.Transport.
type TransportOption func(*transportOptions)

type transportOptions struct {
	strict bool
	srv    *SRVResolver
}

// WithStrictNames refuses hosts that are not in the registry instead of
// dialing them through normal DNS, so that a gateway built on the transport
// cannot be made into an open proxy. Off by default.
func WithStrictNames() TransportOption { return func(o *transportOptions) { o.strict = true } }

// WithSRV sets the resolver for services whose endpoint is an SRV name.
func WithSRV(r *SRVResolver) TransportOption { return func(o *transportOptions) { o.srv = r } }

// Transport returns a clone of base (nil: a transport with this package's
// defaults) whose dialer maps the host of a URL such as
// http://agent-geo/geo/8.8.8.8 to that service's endpoint in the registry, a
// unix socket, a port or an SRV name, as the registry is at dial time (so
// Reload and Watch apply to new connections). Connections are pooled per
// service name. Hosts not in the registry are dialed through normal DNS
// unless WithStrictNames is given.
func (r *Registry) Transport(base *http.Transport, opts ...TransportOption) *http.Transport {
	var o transportOptions
	for _, opt := range opts {
		opt(&o)
	}
	var t *http.Transport
	if base != nil {
		t = base.Clone()
	} else {
		t = &http.Transport{
			Proxy:                 nil, // siblings are never reached through a proxy
			MaxIdleConns:          DefaultMaxIdleConns,
			MaxIdleConnsPerHost:   DefaultMaxIdleConnsPerHost,
			IdleConnTimeout:       DefaultIdleConnTimeout,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		}
	}
	d := &net.Dialer{Timeout: DefaultDialTimeout, KeepAlive: 30 * time.Second}
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		s, ok := r.Service(host)
		if !ok {
			if o.strict {
				return nil, fmt.Errorf("discovery: %w %q: this transport only dials services in %s", ErrUnknownService, host, r.path)
			}
			return d.DialContext(ctx, network, addr)
		}
		return dialEndpoint(ctx, d, o.srv, s.Endpoint)
	}
	return t
}

func dialEndpoint(ctx context.Context, d *net.Dialer, srv *SRVResolver, ep Endpoint) (net.Conn, error) {
	switch ep.Network {
	case "unix", "tcp":
		return d.DialContext(ctx, ep.Network, ep.Address)
	case "srv":
		return dialSRV(ctx, d, srv, ep.Address)
	}
	return nil, fmt.Errorf("discovery: cannot dial %s", ep)
}
