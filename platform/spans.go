package platform

import (
	"context"
	"net/http"
	"net/textproto"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/flotilla-go/flotilla/internal/traceid"
)

// serverSpans starts the server span of each request.
//
// When no span is ever recorded (nothing is exported and no sampler is
// set, so the tracer provider samples with ParentBased(NeverSample)), it
// makes only the span's context, as that sampler would decide it: a new
// trace id for a root span, the parent's trace id, flags and trace state
// for a child, a new span id for either. That is a fraction of the SDK's
// cost for a span that goes nowhere, and the trace id still goes into the
// log row and the traceparent of calls to siblings.
type serverSpans struct {
	tracer  trace.Tracer // nil when no span is ever recorded
	ids     traceid.Generator
	prop    propagation.TextMapPropagator
	headers []string // the canonical names of the headers prop reads
}

func newServerSpans(tp trace.TracerProvider, recorded bool, prop propagation.TextMapPropagator) *serverSpans {
	s := &serverSpans{prop: prop}
	if recorded {
		s.tracer = tp.Tracer("github.com/flotilla-go/flotilla/platform")
	}
	for _, f := range prop.Fields() {
		s.headers = append(s.headers, textproto.CanonicalMIMEHeaderKey(f))
	}
	return s
}

// extract returns ctx with what the propagator reads from h (the remote
// span context, baggage), and ctx itself when h has none of its headers.
func (s *serverSpans) extract(ctx context.Context, h http.Header) context.Context {
	for _, k := range s.headers {
		if _, ok := h[k]; ok {
			return s.prop.Extract(ctx, propagation.HeaderCarrier(h))
		}
	}
	return ctx
}

// start starts the server span named "METHOD route" ("METHOD" when no route
// matched) as the child of the span context in ctx, if any.
func (s *serverSpans) start(ctx context.Context, method, route string) (context.Context, trace.Span) {
	if s.tracer != nil {
		return s.tracer.Start(ctx, spanName(method, route), trace.WithSpanKind(trace.SpanKindServer))
	}
	parent := trace.SpanContextFromContext(ctx)
	cfg := trace.SpanContextConfig{TraceFlags: parent.TraceFlags(), TraceState: parent.TraceState()}
	if parent.IsValid() {
		cfg.TraceID, cfg.SpanID = parent.TraceID(), s.ids.NewSpanID(ctx, parent.TraceID())
	} else {
		cfg.TraceID, cfg.SpanID = s.ids.NewIDs(ctx)
	}
	ctx = trace.ContextWithSpanContext(ctx, trace.NewSpanContext(cfg))
	return ctx, trace.SpanFromContext(ctx)
}
