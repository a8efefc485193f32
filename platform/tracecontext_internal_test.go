package platform

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

const validParent = "00-12345678901234567890123456789012-1234567890123456-01"

// sent returns what traceContext sends on for a request with headers h:
// its traceparent (empty when it starts a new trace) and tracestate.
func sent(h http.Header) (string, string) {
	ctx := traceContext{}.Extract(context.Background(), propagation.HeaderCarrier(h))
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return "", ""
	}
	out := propagation.HeaderCarrier(http.Header{})
	traceContext{}.Inject(ctx, out)
	return out.Get("Traceparent"), out.Get("Tracestate")
}

func TestTraceContext_Traceparent(t *testing.T) {
	for value, want := range map[string]string{
		validParent:               validParent,
		" \t" + validParent + " ": validParent,
		"00-12345678901234567890123456789012-1234567890123456-03":      "00-12345678901234567890123456789012-1234567890123456-03", // random flag kept
		"00-12345678901234567890123456789012-1234567890123456-ff":      "00-12345678901234567890123456789012-1234567890123456-03",
		"cc-12345678901234567890123456789012-1234567890123456-01-what": "00-12345678901234567890123456789012-1234567890123456-01", // a later version
		"cc-12345678901234567890123456789012-1234567890123456-01.what": "",
		"00-12345678901234567890123456789012-1234567890123456-01-what": "", // version 00 has exactly 55
		"ff-12345678901234567890123456789012-1234567890123456-01":      "",
		"00-1234567890123456789012345678901A-1234567890123456-01":      "", // uppercase
		"00-00000000000000000000000000000000-1234567890123456-01":      "",
		"00-12345678901234567890123456789012-0000000000000000-01":      "",
		"00-12345678901234567890123456789012-1234567890123456-0":       "",
		"": "",
	} {
		got, _ := sent(http.Header{"Traceparent": {value}})
		assert.Equal(t, want, got, "%q", value)
	}
	got, _ := sent(http.Header{"Traceparent": {validParent, validParent}})
	assert.Empty(t, got, "two traceparent headers start a new trace")
}

func TestTraceContext_Tracestate(t *testing.T) {
	many := func(n int) string {
		var m []string
		for i := range n {
			m = append(m, fmt.Sprintf("k%d=%d", i, i))
		}
		return strings.Join(m, ",")
	}
	for _, tc := range []struct {
		headers []string
		want    string
	}{
		{[]string{"foo=1,bar=2", "rojo=1,congo=2", "baz=3"}, "foo=1,bar=2,rojo=1,congo=2,baz=3"},
		{[]string{"foo=1,foo=2"}, "foo=1"},
		{[]string{"foo=1", "foo=2"}, "foo=1"},
		{[]string{"", "foo=1", " , "}, "foo=1"},
		{[]string{"foo@=1 ,\tbar=2"}, "foo@=1,bar=2"},
		{[]string{"@foo=1,bar=2"}, ""},
		{[]string{"foo=1", strings.Repeat("z", 256) + "=1"}, "foo=1," + strings.Repeat("z", 256) + "=1"},
		{[]string{"foo=1", strings.Repeat("z", 257) + "=1"}, ""},
		{[]string{"foo=bar=baz"}, ""},
		{[]string{"foo=1 "}, "foo=1"}, // OWS, not part of the value
		{[]string{many(32)}, many(32)},
		{[]string{many(33)}, ""},
	} {
		_, got := sent(http.Header{"Traceparent": {validParent}, "Tracestate": tc.headers})
		assert.Equal(t, tc.want, got, "%q", tc.headers)
	}
	_, got := sent(http.Header{"Tracestate": {"foo=1"}})
	assert.Empty(t, got, "no tracestate without a traceparent")
}
