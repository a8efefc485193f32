package platform

import (
	"context"
	"encoding/hex"
	"strings"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// traceContext is the W3C Trace Context propagator (traceparent and
// tracestate, level 2), in place of OpenTelemetry's, which keeps the first
// of two traceparent headers, reads only the first tracestate header, and
// drops a whole tracestate for one duplicated key. Here:
//
//   - a traceparent is used only when there is exactly one, and it is valid
//     by the spec's rules for its version (55 characters for version 00,
//     lowercase hex, ids not all zero, version ff never); otherwise the
//     request starts a new trace;
//   - the sampled and random flags are kept;
//   - every tracestate header is combined, in order; empty members are
//     skipped, a duplicated key keeps its first value, and a member that
//     is not key=value by the grammar, or more than 32 members, discards
//     the tracestate (the traceparent is kept).
//
// The combined tracestate is sent on as it came. It is also the span
// context's TraceState when OpenTelemetry's stricter parser accepts it.
type traceContext struct{}

const (
	traceparentHeader = "traceparent"
	tracestateHeader  = "tracestate"
	maxTraceState     = 32
)

// tracestateKey is the context key of the tracestate received with a trace.
type tracestateKey struct{}

type receivedState struct {
	trace trace.TraceID
	value string
}

func (traceContext) Fields() []string { return []string{traceparentHeader, tracestateHeader} }

func (traceContext) Inject(ctx context.Context, carrier propagation.TextMapCarrier) {
	injectTraceparent(ctx, trace.SpanContextFromContext(ctx), carrier)
}

// injectTraceparent sets the traceparent of span sc, and the tracestate
// received with its trace in ctx, else its own.
func injectTraceparent(ctx context.Context, sc trace.SpanContext, carrier propagation.TextMapCarrier) {
	if !sc.IsValid() {
		return
	}
	var b [55]byte
	copy(b[:], "00-")
	tid, sid := sc.TraceID(), sc.SpanID()
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	hex.Encode(b[53:55], []byte{byte(sc.TraceFlags()) & 0x03})
	carrier.Set(traceparentHeader, string(b[:]))
	state := sc.TraceState().String()
	if r, ok := ctx.Value(tracestateKey{}).(receivedState); ok && r.trace == tid {
		state = r.value
	}
	if state != "" {
		carrier.Set(tracestateHeader, state)
	}
}

// w3c is the propagator Run installs: W3C Trace Context (traceContext)
// and W3C Baggage. Through it, Propagate sends an unrecorded client span
// without a context made to carry the span (injectSpan).
type w3c struct{}

func (w3c) Fields() []string {
	return append(traceContext{}.Fields(), propagation.Baggage{}.Fields()...)
}

func (w3c) Inject(ctx context.Context, carrier propagation.TextMapCarrier) {
	traceContext{}.Inject(ctx, carrier)
	propagation.Baggage{}.Inject(ctx, carrier)
}

func (w3c) Extract(ctx context.Context, carrier propagation.TextMapCarrier) context.Context {
	return propagation.Baggage{}.Extract(traceContext{}.Extract(ctx, carrier), carrier)
}

// injectSpan is Inject with span sc in place of ctx's own.
func (w3c) injectSpan(ctx context.Context, sc trace.SpanContext, carrier propagation.TextMapCarrier) {
	injectTraceparent(ctx, sc, carrier)
	propagation.Baggage{}.Inject(ctx, carrier)
}

func (traceContext) Extract(ctx context.Context, carrier propagation.TextMapCarrier) context.Context {
	parents := headerValues(carrier, traceparentHeader)
	if len(parents) != 1 {
		return ctx // none, or more than one: a new trace
	}
	sc, ok := parseTraceparent(parents[0])
	if !ok {
		return ctx
	}
	if state := combineTracestate(headerValues(carrier, tracestateHeader)); state != "" {
		if ts, err := trace.ParseTraceState(state); err == nil {
			sc = sc.WithTraceState(ts)
		}
		ctx = context.WithValue(ctx, tracestateKey{}, receivedState{trace: sc.TraceID(), value: state})
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc)
}

// headerValues returns every value of key, as separate header lines.
func headerValues(carrier propagation.TextMapCarrier, key string) []string {
	if vg, ok := carrier.(propagation.ValuesGetter); ok {
		return vg.Values(key)
	}
	if v := carrier.Get(key); v != "" {
		return []string{v}
	}
	return nil
}

// parseTraceparent reads a traceparent header by the rules of its version.
func parseTraceparent(s string) (trace.SpanContext, bool) {
	s = strings.Trim(s, " \t")
	if len(s) < 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return trace.SpanContext{}, false
	}
	var version [1]byte
	if !unhex(version[:], s[0:2]) || version[0] == 0xff {
		return trace.SpanContext{}, false
	}
	switch {
	case version[0] == 0 && len(s) != 55:
		return trace.SpanContext{}, false
	case len(s) > 55 && s[55] != '-': // a later version may append fields
		return trace.SpanContext{}, false
	}
	var tid trace.TraceID
	var sid trace.SpanID
	var flags [1]byte
	if !unhex(tid[:], s[3:35]) || !unhex(sid[:], s[36:52]) || !unhex(flags[:], s[53:55]) || !tid.IsValid() || !sid.IsValid() {
		return trace.SpanContext{}, false
	}
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.TraceFlags(flags[0] & 0x03), Remote: true,
	}), true
}

// combineTracestate joins tracestate headers into one list by the rules in
// traceContext's comment, or returns "" when the list is to be discarded.
func combineTracestate(values []string) string {
	var members []string
	seen := map[string]bool{}
	for _, v := range values {
		for _, m := range strings.Split(v, ",") {
			m = strings.Trim(m, " \t")
			if m == "" {
				continue
			}
			key, value, ok := strings.Cut(m, "=")
			if !ok || !validKey(key) || !validValue(value) {
				return ""
			}
			if !seen[key] {
				seen[key] = true
				members = append(members, m)
			}
		}
	}
	if len(members) > maxTraceState {
		return ""
	}
	return strings.Join(members, ",")
}

// validKey: a lowercase letter or digit, then up to 255 of lowercase
// letters, digits, '_', '-', '*', '/' and '@' (a multi-tenant key).
func validKey(k string) bool {
	if len(k) == 0 || len(k) > 256 || !lowerOrDigit(k[0]) {
		return false
	}
	for i := 1; i < len(k); i++ {
		c := k[i]
		if !lowerOrDigit(c) && c != '_' && c != '-' && c != '*' && c != '/' && c != '@' {
			return false
		}
	}
	return true
}

// validValue: 1 to 256 printable ASCII characters but ',' and '=', not
// ending in a space.
func validValue(v string) bool {
	if len(v) == 0 || len(v) > 256 || v[len(v)-1] == ' ' {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c > 0x7e || c == ',' || c == '=' {
			return false
		}
	}
	return true
}

func lowerOrDigit(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// unhex decodes lowercase hex s into dst, which is len(s)/2 long
// (encoding/hex also takes uppercase, which the spec does not).
func unhex(dst []byte, s string) bool {
	for i := range dst {
		hi, ok1 := nibble(s[2*i])
		lo, ok2 := nibble(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func nibble(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
