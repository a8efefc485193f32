package platform

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Any traceparent and tracestate, of any length: the span either continues
// a valid remote trace or starts a new one, and the request never fails.
func FuzzTraceContext(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
	f.Add("00-00000000000000000000000000000000-00f067aa0ba902b7-01", "")
	f.Add("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "foo=1,foo=1")
	f.Add("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-extra", strings.Repeat("k=v,", 100))
	f.Add("\x00", "=\x00")
	prop := w3c{}
	spans := newServerSpans(noop.NewTracerProvider(), false, prop)
	f.Fuzz(func(t *testing.T, traceparent, tracestate string) {
		h := http.Header{}
		h.Set("Traceparent", traceparent)
		h.Set("Tracestate", tracestate)
		ctx := spans.extract(context.Background(), h)
		ctx, span := spans.start(ctx, "GET", "/x")
		defer span.End()
		sc := trace.SpanContextFromContext(ctx)
		if !sc.IsValid() {
			t.Fatalf("no valid span context for traceparent %q", traceparent)
		}
		if remote := trace.SpanContextFromContext(spans.extract(context.Background(), h)); remote.IsValid() && remote.TraceID() != sc.TraceID() {
			t.Fatalf("a valid remote trace %v was not continued: %v", remote.TraceID(), sc.TraceID())
		}
		// What is sent on is well formed, and parses back to the span.
		out := propagation.HeaderCarrier(http.Header{})
		traceContext{}.Inject(ctx, out)
		back, ok := parseTraceparent(out.Get("Traceparent"))
		if !ok || back.TraceID() != sc.TraceID() || back.SpanID() != sc.SpanID() {
			t.Fatalf("sent traceparent %q does not parse back to %v", out.Get("Traceparent"), sc)
		}
		if ts := out.Get("Tracestate"); ts != "" && combineTracestate([]string{ts}) != ts {
			t.Fatalf("sent tracestate %q is not one the parser keeps as it is", ts)
		}
	})
}

// Any X-Request-ID: a sane one is kept as sent, anything else is replaced
// by a fresh one; the same id goes on the request and the response.
func FuzzRequestID(f *testing.F) {
	for _, s := range []string{"", "abc-123", "a b", "\r\nX-Evil: 1", strings.Repeat("x", 200), "é", "id:1.2_3"} {
		f.Add(s)
	}
	e := echo.New()
	h := requestID(func(c echo.Context) error { return nil })
	f.Fuzz(func(t *testing.T, id string) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header["X-Request-Id"] = []string{id}
		rec := httptest.NewRecorder()
		c := e.NewContext(req, rec)
		if err := h(c); err != nil {
			t.Fatal(err)
		}
		got := rec.Header().Get(echo.HeaderXRequestID)
		if !saneID(got) {
			t.Fatalf("unsafe id %q answered for %q", got, id)
		}
		if saneID(id) != (got == id) {
			t.Fatalf("id %q: answered %q", id, got)
		}
		if req.Header.Get(echo.HeaderXRequestID) != got {
			t.Fatalf("request and response ids differ")
		}
	})
}
