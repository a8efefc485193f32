package breaker_test

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
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
// the request copy that a per-attempt deadline needs; and the transport
// once more for a request whose context can end, as a handler's can, which
// the attempt then has to watch.
func BenchmarkTransport(b *testing.B) {
	req, _ := http.NewRequest(http.MethodGet, "http://agent-geo/geo/1.1.1.1", nil)
	handlerCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, tc := range []struct {
		name string
		rt   http.RoundTripper
		req  *http.Request
	}{
		{"base", canned{}, req},
		{"base+request-copy", withContext{canned{}, context.Background()}, req},
		{"breaker", breaker.NewTransport(canned{}), req},
		{"breaker-cancelable-context", breaker.NewTransport(canned{}), req.WithContext(handlerCtx)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				res, err := tc.rt.RoundTrip(tc.req)
				if err != nil {
					b.Fatal(err)
				}
				res.Body.Close()
			}
		})
	}
}

// BenchmarkTransportOverhead is BenchmarkTransport's comparison made to
// hold on a noisy machine: 40 rounds, each timing 50,000 calls through the
// RoundTripper alone, behind the request copy, and through the breaker
// transport, in turn (in reverse order every other round, so that one's
// garbage is collected during each of the others alike). The figures are
// medians over the rounds: of each, and of each round's difference to the
// RoundTripper alone. Run it with -benchtime 1x.
func BenchmarkTransportOverhead(b *testing.B) {
	const rounds, calls = 40, 50_000
	req, _ := http.NewRequest(http.MethodGet, "http://agent-geo/geo/1.1.1.1", nil)
	rts := []http.RoundTripper{canned{}, withContext{canned{}, context.Background()}, breaker.NewTransport(canned{})}
	per := alternate(b, rts, req, rounds, calls)
	over := func(k int) []float64 {
		d := make([]float64, len(per[k]))
		for r := range d {
			d[r] = per[k][r] - per[0][r]
		}
		return d
	}
	b.ReportMetric(median(per[0]), "base-ns")
	b.ReportMetric(median(per[2]), "breaker-ns")
	b.ReportMetric(median(over(2)), "overhead-ns")
	b.ReportMetric(median(over(1)), "request-copy-ns")
	b.ReportMetric(0, "ns/op") // one iteration is the whole run: its time says nothing
}

// alternate times calls round trips of req through each of rts in turn,
// rounds times (in reverse order every other round, so that one's garbage
// is collected during each of the others alike), b.N times over, and
// returns the nanoseconds per call of each, by round. Bodies are read to
// the end and closed.
func alternate(b *testing.B, rts []http.RoundTripper, req *http.Request, rounds, calls int) [][]float64 {
	per := make([][]float64, len(rts))
	for range b.N {
		for r := range rounds {
			for k := range rts {
				if r%2 == 1 {
					k = len(rts) - 1 - k
				}
				start := time.Now()
				for range calls {
					res, err := rts[k].RoundTrip(req)
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
				per[k] = append(per[k], float64(time.Since(start).Nanoseconds())/float64(calls))
			}
		}
	}
	return per
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkTransportLoopback puts the breaker transport's overhead beside
// what it wraps in a fleet: a real HTTP round trip over loopback to a
// handler that answers at once, for a request whose context can be
// canceled, as a handler's is. 40 rounds of 2,000 calls, alternating a
// plain http.Transport, the breaker transport over another one of the
// same settings, and the same without an attempt timeout; the figures are
// medians over the rounds. Run it with
// -benchtime 1x.
func BenchmarkTransportLoopback(b *testing.B) {
	const rounds, calls = 40, 2_000
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) }))
	defer srv.Close()
	plain := func() *http.Transport {
		return &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}
	}
	rts := []http.RoundTripper{plain(), breaker.NewTransport(plain()), breaker.NewTransport(plain(), breaker.WithAttemptTimeout(0))}
	// A handler's context, which a sibling call carries: it can end, so
	// the plain transport watches it too.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/", nil)
	per := alternate(b, rts, req, rounds, calls)
	diff, untimed := make([]float64, rounds*b.N), make([]float64, rounds*b.N)
	for r := range diff {
		diff[r] = per[1][r] - per[0][r]
		untimed[r] = per[2][r] - per[0][r]
	}
	b.ReportMetric(median(per[0]), "roundtrip-ns")
	b.ReportMetric(median(per[1]), "with-breaker-ns")
	b.ReportMetric(median(diff), "overhead-ns")
	b.ReportMetric(100*median(diff)/median(per[0]), "overhead-%")
	b.ReportMetric(100*median(untimed)/median(per[0]), "no-attempt-timeout-overhead-%")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkRetryBudget calls a sibling that fails half of its calls at
// random (503 at once), 2,000 GETs one after another with up to 2 retries,
// with the default retry budget and with none (a ratio that allows every
// retry), and reports the attempts per call of each. Run it with
// -benchtime 1x.
func BenchmarkRetryBudget(b *testing.B) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		if rand.IntN(2) == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	const calls = 2000
	for _, tc := range []struct {
		name string
		opts []breaker.TransportOption
	}{
		{"budget", nil},
		{"no-budget", []breaker.TransportOption{breaker.WithRetryBudget(10, 0)}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for range b.N {
				hits.Store(0)
				opts := append([]breaker.TransportOption{breaker.WithRetries(2), breaker.WithRetryBackoff(time.Microsecond, time.Microsecond),
					breaker.WithBreaker(breaker.WithConsecutiveFailures(0))}, tc.opts...)
				c := breaker.NewClient(&http.Transport{}, opts...)
				for range calls {
					if res, err := c.Get(srv.URL); err == nil {
						io.Copy(io.Discard, res.Body)
						res.Body.Close()
					}
				}
				b.ReportMetric(float64(hits.Load())/calls, "attempts/call")
			}
		})
	}
}
