package platform

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/flotilla-go/flotilla/breaker"
	"github.com/flotilla-go/flotilla/discovery"
	"github.com/flotilla-go/flotilla/internal/traceid"
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
// Run; names not in it are dialed through normal DNS. The trace context,
// the request id and the deadline budget go to every host it calls: call
// hosts outside the fleet with a client of their own.
func Client() *http.Client {
	clientOnce.Do(func() {
		client = &http.Client{Transport: Propagate(breaker.NewTransport(&byName{}, breaker.WithDeadlineHeader(BudgetHeader)))}
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
	opts = append([]breaker.TransportOption{breaker.WithDeadlineHeader(BudgetHeader)}, opts...)
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

// Propagate returns a RoundTripper that makes a CLIENT span for each call
// whose context is in a trace, as the child of the context's span, and adds
// its W3C trace context (traceparent and tracestate, and baggage) to the
// request's headers through the global propagator Run installs, so the
// sibling's span is the call's child; the request id of the context (see
// RequestID) as X-Request-ID unless the request has one; and what is left
// of the context's deadline as BudgetHeader, which the sibling's platform
// caps its own deadline to. When next is a *breaker.Transport, its attempt
// timeout bounds the budget too (and without a deadline is the budget);
// give that transport breaker.WithDeadlineHeader(BudgetHeader), as Client
// and NewClient do, so that each retry sends what is left for it. Then it
// sends the request with next. When spans are exported the client span is
// recorded with the HTTP conventions' attributes (http.request.method,
// server.address, server.port, url.full without its query,
// http.response.status_code, error.type); otherwise it is only a new span
// id, which costs next to nothing. Client and NewClient use it; use it for
// a transport of your own, such as a reverse proxy's.
func Propagate(next http.RoundTripper) http.RoundTripper { return propagate{next} }

type propagate struct{ next http.RoundTripper }

// clientTracer records client spans when spans are exported; nil otherwise.
var clientTracer atomic.Value // trace.Tracer

// clientDuration records http.client.request.duration when metrics are on;
// nil otherwise.
var clientDuration atomic.Value // metric.Float64Histogram

// spanIDs makes the span ids of unrecorded client spans.
var spanIDs traceid.Generator

func (p propagate) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	var span trace.Span
	var unrecorded trace.SpanContext // the client span when spans are not recorded
	if parent := trace.SpanContextFromContext(ctx); parent.IsValid() {
		if tr, _ := clientTracer.Load().(trace.Tracer); tr != nil {
			ctx, span = tr.Start(ctx, req.Method, trace.WithSpanKind(trace.SpanKindClient))
		} else {
			unrecorded = unrecordedSpan(ctx, parent)
		}
	}
	var start time.Time
	hist, _ := clientDuration.Load().(metric.Float64Histogram)
	if hist != nil {
		start = time.Now()
	}
	res, err := p.send(ctx, unrecorded, req)
	if span != nil {
		endClientSpan(span, req, res, err)
	}
	if hist != nil {
		recordClientCall(ctx, hist, time.Since(start), req, res, err)
	}
	return res, err
}

// unrecordedSpan is the context of a client span that is not recorded:
// parent's, with a new span id.
func unrecordedSpan(ctx context.Context, parent trace.SpanContext) trace.SpanContext {
	return parent.WithSpanID(spanIDs.NewSpanID(ctx, parent.TraceID())).WithRemote(false)
}

// recordClientCall records one call in http.client.request.duration, with
// the conventions' attributes: the method (known ones only), the server's
// address and port, the status, and error.type on failures.
func recordClientCall(ctx context.Context, h metric.Float64Histogram, d time.Duration, req *http.Request, res *http.Response, err error) {
	host, p := serverOf(req.URL)
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", knownMethod(req.Method)),
		attribute.String("server.address", host),
		attribute.Int("server.port", p),
		attribute.String("url.scheme", req.URL.Scheme),
	}
	switch {
	case err != nil:
		attrs = append(attrs, attribute.String("error.type", fmt.Sprintf("%T", err)))
	default:
		attrs = append(attrs, attribute.Int("http.response.status_code", res.StatusCode))
		if res.StatusCode >= 500 {
			attrs = append(attrs, attribute.String("error.type", strconv.Itoa(res.StatusCode)))
		}
	}
	h.Record(ctx, d.Seconds(), metric.WithAttributes(attrs...))
}

// serverOf is the host and port a call goes to, the port from the scheme
// when the URL has none.
func serverOf(u *url.URL) (string, int) {
	if p, err := strconv.Atoi(u.Port()); err == nil {
		return u.Hostname(), p
	}
	if u.Scheme == "https" {
		return u.Hostname(), 443
	}
	return u.Hostname(), 80
}

// endClientSpan sets a recorded client span's attributes and ends it.
func endClientSpan(span trace.Span, req *http.Request, res *http.Response, err error) {
	u := *req.URL
	u.RawQuery, u.Fragment, u.User = "", "", nil
	host, p := serverOf(req.URL)
	span.SetAttributes(
		attribute.String("http.request.method", req.Method),
		attribute.String("server.address", host),
		attribute.Int("server.port", p),
		attribute.String("url.full", u.String()))
	switch {
	case err != nil:
		span.SetAttributes(attribute.String("error.type", fmt.Sprintf("%T", err)))
		span.SetStatus(codes.Error, err.Error())
	default:
		span.SetAttributes(attribute.Int("http.response.status_code", res.StatusCode))
		if res.StatusCode >= 400 {
			span.SetAttributes(attribute.String("error.type", strconv.Itoa(res.StatusCode)))
			span.SetStatus(codes.Error, "")
		}
	}
	span.End()
}

// send sends req with the headers that carry ctx's trace, as of span
// client when it is valid.
func (p propagate) send(ctx context.Context, client trace.SpanContext, req *http.Request) (*http.Response, error) {
	carrier := propagation.HeaderCarrier(http.Header{})
	prop := otel.GetTextMapPropagator()
	if w, ok := prop.(w3c); ok && client.IsValid() {
		w.injectSpan(ctx, client, carrier) // no context made for the span
	} else {
		if client.IsValid() {
			ctx = trace.ContextWithSpanContext(ctx, client)
		}
		prop.Inject(ctx, carrier)
	}
	if id := RequestID(ctx); id != "" && req.Header.Get(echo.HeaderXRequestID) == "" {
		carrier.Set(echo.HeaderXRequestID, id)
	}
	var attempt time.Duration // a breaker transport below bounds each attempt
	if t, ok := p.next.(*breaker.Transport); ok {
		attempt = t.AttemptTimeout()
	}
	if left, ok := breaker.AttemptBudget(ctx, attempt); ok {
		carrier.Set(BudgetHeader, strconv.FormatInt(left.Milliseconds(), 10))
	}
	if len(carrier) > 0 {
		req = req.Clone(ctx)
		for k, v := range carrier {
			req.Header[k] = v
		}
	}
	return p.next.RoundTrip(req)
}
