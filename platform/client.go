package platform

import (
	"net/http"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/flotilla-go/flotilla/breaker"
	"github.com/flotilla-go/flotilla/discovery"
)

var (
	clientOnce sync.Once
	client     *http.Client
)

// Client returns the process's client for calling sibling services by
// name, as in client.Get("http://agent-geo/geo/8.8.8.8"): the port map's
// transport (FLOTILLA_REGISTRY, or flotilla.toml in the working directory),
// a circuit breaker per sibling with retries for idempotent requests, and
// the W3C traceparent of the request's context, so the sibling's log row
// shares the trace id. Pass the handler's context with
// http.NewRequestWithContext. Names not in the port map are dialed through
// normal DNS.
func Client() *http.Client {
	clientOnce.Do(func() {
		var base http.RoundTripper = http.DefaultTransport
		if c, err := load("", nil); err == nil && c.reg != nil {
			base = c.reg.Transport(nil)
		}
		client = &http.Client{Transport: propagate{breaker.Transport(base)}}
	})
	return client
}

// NewClient returns a client like Client over the given registry, with
// breaker options.
func NewClient(reg *discovery.Registry, opts ...breaker.Option) *http.Client {
	var base http.RoundTripper = http.DefaultTransport
	if reg != nil {
		base = reg.Transport(nil)
	}
	return &http.Client{Transport: propagate{breaker.Transport(base, opts...)}}
}

// propagate injects the trace context of each request's context.
type propagate struct{ next http.RoundTripper }

func (p propagate) RoundTrip(req *http.Request) (*http.Response, error) {
	prop := otel.GetTextMapPropagator()
	carrier := propagation.HeaderCarrier(http.Header{})
	prop.Inject(req.Context(), carrier)
	if len(carrier) > 0 {
		req = req.Clone(req.Context())
		for k, v := range carrier {
			req.Header[k] = v
		}
	}
	return p.next.RoundTrip(req)
}
