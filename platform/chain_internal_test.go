package platform

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// The request's context carries the request timeout; a handler that fails
// on it answers 503, and the request ID is on the response.
func TestChain_RequestTimeout(t *testing.T) {
	c, err := load("timeouts", []Option{WithRegistry(""), WithDB(filepath.Join(t.TempDir(), "f.db")),
		WithListen(":1"), WithRequestTimeout(20 * time.Millisecond)})
	require.NoError(t, err)
	e := echo.New()
	var deadline time.Time
	e.GET("/wait", func(c echo.Context) error {
		ctx := c.Request().Context()
		deadline, _ = ctx.Deadline()
		<-ctx.Done()
		return ctx.Err()
	})
	inst, err := prepare(context.Background(), e, c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	defer inst.tel.Shutdown(context.Background())
	defer inst.rl.Close(context.Background())

	start := time.Now()
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/wait", nil))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.False(t, deadline.IsZero(), "the handler's context has a deadline")
	assert.False(t, deadline.Before(start.Add(20*time.Millisecond)), "not sooner than the timeout")
	assert.True(t, deadline.Before(time.Now()), "and it passed")
	assert.Regexp(t, "^[0-9a-f]{32}$", rec.Header().Get(echo.HeaderXRequestID))
}

// An upgrade request whose handler does not take the connection over is
// bounded by the request timeout like any other, and answers 503 on it.
func TestChain_UpgradeRequestTimeout(t *testing.T) {
	c, err := load("timeouts", []Option{WithRegistry(""), WithDB(filepath.Join(t.TempDir(), "f.db")),
		WithListen(":1"), WithRequestTimeout(20 * time.Millisecond)})
	require.NoError(t, err)
	e := echo.New()
	var cause error
	e.GET("/ws", func(c echo.Context) error {
		ctx := c.Request().Context()
		<-ctx.Done()
		cause = context.Cause(ctx)
		return ctx.Err()
	})
	inst, err := prepare(context.Background(), e, c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	defer inst.tel.Shutdown(context.Background())
	defer inst.rl.Close(context.Background())

	req := httptest.NewRequest(http.MethodGet, "/ws", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.ErrorIs(t, cause, context.DeadlineExceeded)
	assert.Zero(t, inst.streams.wait(context.Background()), "a request that kept its connection is not a stream")
}

type recordRT struct{ got *http.Request }

func (r *recordRT) RoundTrip(req *http.Request) (*http.Response, error) {
	r.got = req
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: req}, nil
}

func TestPropagate_RequestID(t *testing.T) {
	rec := &recordRT{}
	rt := Propagate(rec)
	ctx := context.WithValue(context.Background(), requestIDKey{}, "abc-123")
	assert.Equal(t, "abc-123", RequestID(ctx))
	assert.Equal(t, "", RequestID(context.Background()))

	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent-geo/geo/1.1.1.1", nil)
	_, err := rt.RoundTrip(req)
	require.NoError(t, err)
	assert.Equal(t, "abc-123", rec.got.Header.Get(echo.HeaderXRequestID))
	assert.Empty(t, req.Header.Get(echo.HeaderXRequestID), "the caller's request is not changed")

	req.Header.Set(echo.HeaderXRequestID, "own")
	_, err = rt.RoundTrip(req)
	require.NoError(t, err)
	assert.Equal(t, "own", rec.got.Header.Get(echo.HeaderXRequestID), "a request's own id is kept")
}

// A call in a trace whose spans are not recorded sends a client span of
// its own: the trace id and flags of the request's span, a new span id,
// the tracestate the trace came with and the baggage, the same through
// the propagator Run installs as through any other.
func TestPropagate_UnrecordedClientSpan(t *testing.T) {
	prev := otel.GetTextMapPropagator()
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })
	in := propagation.HeaderCarrier(http.Header{})
	in.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	in.Set("tracestate", "vendor=x,other=y")
	in.Set("baggage", "tenant=acme")
	ctx := w3c{}.Extract(context.Background(), in)
	parent := trace.SpanContextFromContext(ctx)
	require.True(t, parent.IsValid())

	for _, prop := range []propagation.TextMapPropagator{w3c{}, propagation.NewCompositeTextMapPropagator(traceContext{}, propagation.Baggage{})} {
		otel.SetTextMapPropagator(prop)
		rec := &recordRT{}
		seen := map[string]bool{}
		for range 2 {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent-geo/geo/1.1.1.1", nil)
			_, err := Propagate(rec).RoundTrip(req)
			require.NoError(t, err)
			tp := rec.got.Header.Get("traceparent")
			require.Len(t, tp, 55, "%T", prop)
			assert.Equal(t, "00-4bf92f3577b34da6a3ce929d0e0e4736-", tp[:36], "the request's trace")
			assert.Equal(t, "-01", tp[52:], "its flags")
			assert.NotEqual(t, parent.SpanID().String(), tp[36:52], "a span id of the call's own")
			seen[tp[36:52]] = true
			assert.Equal(t, "vendor=x,other=y", rec.got.Header.Get("tracestate"))
			assert.Equal(t, "tenant=acme", rec.got.Header.Get("baggage"))
		}
		assert.Len(t, seen, 2, "each call its own span")
	}
}
