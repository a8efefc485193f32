package platform

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/trace"
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
			var b [16]byte
			rand.Read(b[:])
			id = hex.EncodeToString(b[:])
			req.Header.Set(echo.HeaderXRequestID, id)
		}
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		return next(c)
	}
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
