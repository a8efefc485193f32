package logger

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/trace"

	"github.com/flotilla-go/flotilla/internal/upgrade"
)

// A MiddlewareOption changes a default of Middleware.
type MiddlewareOption func(*middlewareOptions)

type middlewareOptions struct {
	skip    func(echo.Context) bool
	traceID func(echo.Context) string
	observe func(context.Context, Record)
}

// WithObserver also hands each record, with its request's context (and so
// its span), to observe, after the sink has it: for an exporter that sends
// request records elsewhere as well, such as OpenTelemetry logs. observe
// runs on the request's goroutine and must not block.
func WithObserver(observe func(ctx context.Context, r Record)) MiddlewareOption {
	return func(o *middlewareOptions) { o.observe = observe }
}

// WithSkipper makes Middleware leave out the requests for which skip returns
// true (default: none are left out).
func WithSkipper(skip func(c echo.Context) bool) MiddlewareOption {
	return func(o *middlewareOptions) { o.skip = skip }
}

// WithTraceID sets how the trace id of a request is found (default: the
// OpenTelemetry span context of the request's context, when valid).
func WithTraceID(f func(c echo.Context) string) MiddlewareOption {
	return func(o *middlewareOptions) { o.traceID = f }
}

func otelTraceID(c echo.Context) string {
	sc := trace.SpanContextFromContext(c.Request().Context())
	if !sc.HasTraceID() {
		return ""
	}
	return sc.TraceID().String()
}

// Middleware returns echo middleware that logs every request to sink as the
// named service, after the handler returns.
//
// The status logged is the status sent. An error returned by the handler is
// given to the app's HTTPErrorHandler here, as echo's RequestLogger does with
// HandleError, so the response is written before the record is made; the
// error then does not travel further up the chain. A panic that passes
// through is logged as 500 with its value and re-raised; place echo's Recover
// middleware after this one to turn panics into 500 responses. Durations use
// the monotonic clock; the client IP comes from echo's Context.RealIP, so it
// follows the app's IPExtractor. Without one, echo believes any client's
// X-Forwarded-For: set one (echo.ExtractIPDirect, or
// echo.ExtractIPFromXFFHeader with the proxies you trust), as the platform
// package does.
//
// A request whose client went away before the answer, so that the handler
// returned the request context's context.Canceled, is logged as 499
// (StatusClientClosedRequest, as nginx does), not as a server error.
//
// A request that asks to upgrade its connection (a WebSocket handshake) and
// whose handler takes the connection over is logged as 101 Switching
// Protocols when the handler returns, with the whole session as its
// duration and the error the handler returned, if any (nothing more can be
// sent on that connection, so the error goes no further).
//
// Only the URL path is stored: never the query string, and no header other
// than User-Agent and X-Request-ID (from the response, else the request). The
// request id is the one set by a request-id middleware placed before this
// one.
func Middleware(sink Sink, service string, opts ...MiddlewareOption) echo.MiddlewareFunc {
	o := middlewareOptions{traceID: otelTraceID}
	for _, opt := range opts {
		opt(&o)
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if o.skip != nil && o.skip(c) {
				return next(c)
			}
			start := time.Now()
			defer logPanic(c, sink, service, start, &o)
			var watch *upgrade.Watch
			if upgrade.Requested(c.Request().Header) {
				res := c.Response()
				// echo resets the writer for the next request.
				watch = &upgrade.Watch{ResponseWriter: res.Writer}
				res.Writer = watch
			}
			err := next(c)
			hijacked := watch != nil && watch.Hijacked
			var text string
			gone := false
			if err != nil {
				text = err.Error()
				gone = clientGone(c, err)
				if !hijacked && !gone { // nothing can be sent on a connection the handler took, or to a client that left
					c.Error(err)
				}
			}
			status := c.Response().Status
			switch {
			case hijacked:
				// The handler answered on the connection itself.
				status = http.StatusSwitchingProtocols
			case gone:
				status = StatusClientClosedRequest
			case status == 0:
				status = http.StatusOK
			}
			r := record(c, service, start, status, text, &o)
			sink.Log(r)
			if o.observe != nil {
				o.observe(c.Request().Context(), r)
			}
			return nil
		}
	}
}

// logPanic, deferred, logs a panic passing through as a 500 and re-raises
// it. It is a plain function rather than a closure so that the request path
// allocates nothing for it.
func logPanic(c echo.Context, sink Sink, service string, start time.Time, o *middlewareOptions) {
	p := recover()
	if p == nil {
		return
	}
	r := record(c, service, start, http.StatusInternalServerError, fmt.Sprintf("panic: %v", p), o)
	sink.Log(r)
	if o.observe != nil {
		o.observe(c.Request().Context(), r)
	}
	panic(p)
}

func record(c echo.Context, service string, start time.Time, status int, errText string, o *middlewareOptions) Record {
	req := c.Request()
	res := c.Response()
	// Direct map reads with canonical keys: Header.Get would canonicalize
	// the key on every request.
	id := first(res.Header()[headerRequestID])
	if id == "" {
		id = first(req.Header[headerRequestID])
	}
	in := req.ContentLength
	if in < 0 {
		in = 0
	}
	return Record{
		Time:      start,
		Service:   service,
		Method:    req.Method,
		Path:      req.URL.Path,
		Route:     c.Path(),
		Status:    status,
		Duration:  time.Since(start),
		BytesIn:   in,
		BytesOut:  res.Size,
		IP:        c.RealIP(),
		UserAgent: first(req.Header[headerUserAgent]),
		RequestID: id,
		TraceID:   o.traceID(c),
		Error:     errText,
	}
}

// StatusClientClosedRequest (499, nginx's code) is the status logged for a
// request whose client went away before it was answered: the handler
// returned the request context's context.Canceled, and nothing was sent.
// It is a 4xx, so it counts against no server error rate.
const StatusClientClosedRequest = 499

// clientGone reports whether err is the handler giving up because the
// client closed the request, before anything was sent.
func clientGone(c echo.Context, err error) bool {
	if c.Response().Committed || !errors.Is(err, context.Canceled) {
		return false
	}
	ctx := c.Request().Context()
	// A context canceled with a deadline as its cause ended on the
	// server's timeout, not by the client.
	return errors.Is(ctx.Err(), context.Canceled) && !errors.Is(context.Cause(ctx), context.DeadlineExceeded)
}

// Canonical header keys, as net/http stores them.
var (
	headerRequestID = http.CanonicalHeaderKey(echo.HeaderXRequestID)
	headerUserAgent = http.CanonicalHeaderKey("User-Agent")
)

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}
