package platform

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/baggage"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/flotilla-go/flotilla/internal/traceid"
)

// spanOf returns the span context s gives a request with headers h.
func spanOf(s *serverSpans, h http.Header) trace.SpanContext {
	ctx, _ := s.start(s.extract(context.Background(), h), http.MethodGet, "/geo/:ip")
	return trace.SpanContextFromContext(ctx)
}

// Without recording, the span's context is what the SDK's
// ParentBased(NeverSample) sampler makes: the same trace id, flags and
// trace state for children, a new span id for all.
func TestServerSpans_AsTheSDKWouldDecide(t *testing.T) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())),
		sdktrace.WithIDGenerator(traceid.Generator{}))
	defer tp.Shutdown(context.Background())
	sdk := newServerSpans(tp, true, w3c{})
	lean := newServerSpans(tp, false, w3c{})
	require.Nil(t, lean.tracer)

	for name, h := range map[string]http.Header{
		"root":      {},
		"sampled":   {"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, "Tracestate": {"vendor=x"}},
		"unsampled": {"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}},
	} {
		t.Run(name, func(t *testing.T) {
			want, got := spanOf(sdk, h), spanOf(lean, h)
			require.True(t, got.IsValid())
			assert.False(t, got.IsRemote())
			assert.Equal(t, want.TraceFlags(), got.TraceFlags())
			assert.Equal(t, want.TraceState().String(), got.TraceState().String())
			if name == "root" {
				assert.NotEqual(t, want.TraceID(), got.TraceID())
				assert.WithinDuration(t, time.Now(), traceid.Time(got.TraceID()), time.Minute, "made by the platform's generator")
			} else {
				assert.Equal(t, want.TraceID(), got.TraceID())
				assert.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", got.TraceID().String())
				assert.NotEqual(t, "00f067aa0ba902b7", got.SpanID().String(), "a span of its own")
			}
		})
	}
}

func TestServerSpans_NotRecordedSpan(t *testing.T) {
	s := newServerSpans(nil, false, w3c{})
	_, span := s.start(context.Background(), http.MethodGet, "/")
	assert.False(t, span.IsRecording())
	assert.True(t, span.SpanContext().IsValid())
	span.End() // harmless
}

func TestServerSpans_Recorded(t *testing.T) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	defer tp.Shutdown(context.Background())
	s := newServerSpans(tp, true, w3c{})
	_, span := s.start(context.Background(), http.MethodGet, "/geo/:ip")
	defer span.End()
	require.True(t, span.IsRecording())
	ro, ok := span.(sdktrace.ReadOnlySpan)
	require.True(t, ok)
	assert.Equal(t, "GET /geo/:ip", ro.Name())
	assert.Equal(t, trace.SpanKindServer, ro.SpanKind())
}

func TestServerSpans_Extract(t *testing.T) {
	s := newServerSpans(nil, false, w3c{})
	ctx := context.Background()
	assert.Equal(t, ctx, s.extract(ctx, http.Header{"User-Agent": {"x"}}), "nothing to read: the same context")
	got := s.extract(ctx, http.Header{"Baggage": {"tenant=acme"}})
	assert.Equal(t, "acme", baggage.FromContext(got).Member("tenant").Value(), "baggage alone is read")
	got = s.extract(ctx, http.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}})
	assert.True(t, trace.SpanContextFromContext(got).IsRemote())
}
