package breaker_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-go/flotilla/breaker"
)

var errBench = errors.New("failed")

func ok(context.Context) error { return nil }

// BenchmarkExecute measures the breaker's own cost around a call that does
// nothing: closed with the default rule, closed with the failure-rate
// window and slow-call timing, and open (fast fail).
func BenchmarkExecute(b *testing.B) {
	ctx := context.Background()
	run := func(b *testing.B, br *breaker.Breaker, fn func(context.Context) error) {
		b.ReportAllocs()
		b.Run("serial", func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				br.Execute(ctx, fn)
			}
		})
		b.Run("parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					br.Execute(ctx, fn)
				}
			})
		})
	}
	b.Run("closed-consecutive", func(b *testing.B) { run(b, breaker.New(), ok) })
	b.Run("closed-window-slow", func(b *testing.B) {
		run(b, breaker.New(breaker.WithFailureRate(0.5), breaker.WithSlowCalls(time.Second, 0.5)), ok)
	})
	b.Run("open", func(b *testing.B) {
		br := breaker.New(breaker.WithConsecutiveFailures(1), breaker.WithOpenTimeout(time.Hour, time.Hour))
		br.Execute(ctx, func(context.Context) error { return errBench })
		run(b, br, ok)
	})
}

// canned is a RoundTripper that answers at once without a network.
type canned struct{}

func (canned) RoundTrip(*http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(""))}, nil
}

// withContext is canned behind the one copy of the request that any
// per-attempt deadline costs: a context is set on a request only by
// copying it (http.Request.WithContext).
type withContext struct {
	next http.RoundTripper
	ctx  context.Context
}

func (w withContext) RoundTrip(req *http.Request) (*http.Response, error) {
	return w.next.RoundTrip(req.WithContext(w.ctx))
}

// BenchmarkTransport measures the per-host transport's own overhead with
// default options (per-attempt timeout included) over a RoundTripper that
// answers at once, against that RoundTripper alone, and against it behind
// the request copy that a per-attempt deadline needs.
func BenchmarkTransport(b *testing.B) {
	req, _ := http.NewRequest(http.MethodGet, "http://agent-geo/geo/1.1.1.1", nil)
	for _, tc := range []struct {
		name string
		rt   http.RoundTripper
	}{
		{"base", canned{}},
		{"base+request-copy", withContext{canned{}, context.Background()}},
		{"breaker", breaker.Transport(canned{})},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				res, err := tc.rt.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				res.Body.Close()
			}
		})
	}
}
