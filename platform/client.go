package platform

import (
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/flotilla-go/flotilla/breaker"
	"github.com/flotilla-go/flotilla/discovery"
)

// running is the port map of the service Run is running, for Client.
var running atomic.Pointer[discovery.Registry]

var (
	clientOnce sync.Once
	client     *http.Client
)

// Client returns the process's client for calling sibling services by
// name, as in client.Get("http://agent-geo/geo/8.8.8.8"): the port map's
// transport, a circuit breaker per sibling with retries for idempotent
// requests, and the W3C traceparent of the request's context, so the
// sibling's log row shares the trace id. Pass the handler's context with
// http.NewRequestWithContext. The port map is the one Run uses (options or
// environment), looked up at the first call, so Client may be called before
// Run; names not in it are dialed through normal DNS.
func Client() *http.Client {
	clientOnce.Do(func() {
		client = &http.Client{Transport: Propagate(breaker.NewTransport(&byName{}))}
	})
	return client
}

// NewClient returns a client like Client over the given registry (nil: over
// normal DNS), with the breaker transport's options, such as
// breaker.WithRetries or breaker.WithBreaker(breaker.WithConsecutiveFailures(3)).
func NewClient(reg *discovery.Registry, opts ...breaker.TransportOption) *http.Client {
	var base http.RoundTripper = http.DefaultTransport
	if reg != nil {
		base = reg.Transport(nil)
	}
	return &http.Client{Transport: Propagate(breaker.NewTransport(base, opts...))}
}

// byName dials through the running service's port map, found on first use:
// the one Run loaded, else the one the environment names.
type byName struct {
	once sync.Once
	rt   http.RoundTripper
}

func (b *byName) RoundTrip(req *http.Request) (*http.Response, error) {
	b.once.Do(func() {
		reg := running.Load()
		if reg == nil {
			if c, err := load("", nil); err == nil {
				reg = c.reg
			}
		}
		b.rt = http.DefaultTransport
		if reg != nil {
			b.rt = reg.Transport(nil)
		}
	})
	return b.rt.RoundTrip(req)
}

// Propagate returns a RoundTripper that adds the W3C trace context of each
// request's context (traceparent, and baggage) to its headers, through the
// global propagator Run installs, and the request id of the context (see
// RequestID) as X-Request-ID unless the request has one, then sends it with
// next. Client and NewClient use it; use it for a transport of your own,
// such as a reverse proxy's.
func Propagate(next http.RoundTripper) http.RoundTripper { return propagate{next} }

type propagate struct{ next http.RoundTripper }

func (p propagate) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	carrier := propagation.HeaderCarrier(http.Header{})
	otel.GetTextMapPropagator().Inject(ctx, carrier)
	if id := RequestID(ctx); id != "" && req.Header.Get(echo.HeaderXRequestID) == "" {
		carrier.Set(echo.HeaderXRequestID, id)
	}
	if len(carrier) > 0 {
		req = req.Clone(ctx)
		for k, v := range carrier {
			req.Header[k] = v
		}
	}
	return p.next.RoundTrip(req)
}
