package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"runtime"
	"time"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/flotilla-go/flotilla/internal/upgrade"
)

// maxRequestIDLen bounds an incoming X-Request-ID that is kept.
const maxRequestIDLen = 128

// requestID keeps an incoming X-Request-ID made of 1 to 128 letters, digits,
// '-', '_', '.' or ':', and otherwise makes one (32 hex digits); it sets it
// on the request and the response.
func requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		id := req.Header.Get(echo.HeaderXRequestID)
		if !saneID(id) {
			id = newID()
			// On the request too, so that a handler that forwards the
			// request's headers (a proxy) passes it on.
			req.Header.Set(echo.HeaderXRequestID, id)
		}
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		return next(c)
	}
}

type requestIDKey struct{}

// RequestID returns the request id (X-Request-ID) of the request whose
// context ctx is, or "" outside a request. Client and Propagate send it on
// with calls made with that context, so the sibling's log row carries the
// same id.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// newID returns 32 random hex digits. Request ids correlate log lines; they
// are not secrets, so the fast runtime generator serves.
func newID() string {
	var b [32]byte
	const digits = "0123456789abcdef"
	for i, v := 0, rand.Uint64(); i < 16; i, v = i+1, v>>4 {
		b[i] = digits[v&15]
	}
	for i, v := 16, rand.Uint64(); i < 32; i, v = i+1, v>>4 {
		b[i] = digits[v&15]
	}
	return string(b[:])
}

func saneID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		switch {
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9', ch == '-', ch == '_', ch == '.', ch == ':':
		default:
			return false
		}
	}
	return true
}

// recoverer turns a panic into a 500 and logs it with its stack.
func recoverer(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				p := recover()
				if p == nil {
					return
				}
				if p == http.ErrAbortHandler {
					panic(p)
				}
				stack := make([]byte, 16<<10)
				stack = stack[:runtime.Stack(stack, false)]
				RequestLogger(c, log).Error("panic", "panic", fmt.Sprint(p), "stack", string(stack))
				err = nil
				c.Error(echo.NewHTTPError(http.StatusInternalServerError).SetInternal(fmt.Errorf("panic: %v", p)))
			}()
			return next(c)
		}
	}
}

// RequestLogger returns log with the request's trace_id and request_id, for
// a handler's own log lines.
func RequestLogger(c echo.Context, log *slog.Logger) *slog.Logger {
	args := []any{"request_id", c.Response().Header().Get(echo.HeaderXRequestID)}
	if sc := trace.SpanContextFromContext(c.Request().Context()); sc.HasTraceID() {
		args = append(args, "trace_id", sc.TraceID().String())
	}
	return log.With(args...)
}

// tracing starts a server span per request, named "METHOD /route", as the
// child of an incoming W3C traceparent (see serverSpans). Attributes are
// set only on spans that are recorded (sampled and exported), so an
// unexported trace costs a trace id and little else.
//
// It also gives the request's context its deadline (timeout) and its
// request id (see RequestID), so that one request copy serves all three,
// in a requestContext, which costs little until something waits on it;
// timeoutErrors, innermost, turns a handler's deadline error into a 503.
// The context of an upgrade request loses its deadline when the handler
// takes the connection over (see streams).
func tracing(spans *serverSpans, timeout time.Duration, st *streams) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			route := c.Path()
			ctx, span := spans.start(spans.extract(req.Context(), req.Header), knownMethod(req.Method), route)
			id := c.Response().Header().Get(echo.HeaderXRequestID)
			var cancel func()
			if upgrade.Requested(req.Header) {
				ctx, cancel = st.begin(c.Response(), context.WithValue(ctx, requestIDKey{}, id), timeout)
			} else {
				rc := newRequestContext(ctx, id, requestTimeout(req, timeout))
				ctx, cancel = rc, rc.cancel
			}
			defer cancel()
			c.SetRequest(req.WithContext(ctx))
			var err error
			defer func() { // also when the handler panics: recover, outside, answers 500
				if span.IsRecording() {
					status := statusOf(c)
					p := recover()
					if p != nil {
						status = http.StatusInternalServerError
					}
					span.SetAttributes(serverAttributes(req, route, c.RealIP(), status)...)
					if status >= 500 {
						span.SetStatus(codes.Error, http.StatusText(status))
					}
					if err != nil {
						span.RecordError(err)
					}
					span.End()
					if p != nil {
						panic(p)
					}
				}
			}()
			err = next(c)
			return err
		}
	}
}

// statusOf is the status a request was answered with: 101 Switching
// Protocols for an upgrade request whose handler took the connection over
// (as the request log says too), else the response's. Only upgrade requests
// have a watch on their writer, so the watch alone tells.
func statusOf(c echo.Context) int {
	if upgrade.Hijacked(c.Response().Writer) {
		return http.StatusSwitchingProtocols
	}
	return c.Response().Status
}

// timeoutErrors answers 503 Service Unavailable when a handler fails
// because its request's deadline passed. (The context of an upgrade request
// ends on its timeout as canceled, with DeadlineExceeded as the cause.)
func timeoutErrors(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := next(c)
		if err == nil {
			return nil
		}
		ctx := c.Request().Context()
		ctxErr := ctx.Err()
		if ctxErr != nil && errors.Is(err, ctxErr) &&
			(errors.Is(ctxErr, context.DeadlineExceeded) || errors.Is(context.Cause(ctx), context.DeadlineExceeded)) {
			return echo.ErrServiceUnavailable.WithInternal(err)
		}
		return err
	}
}
