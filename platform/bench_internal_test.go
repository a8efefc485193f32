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
	"go.opentelemetry.io/otel"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/trace"

	"github.com/flotilla-go/flotilla/breaker"
	"github.com/flotilla-go/flotilla/internal/traceid"
	"github.com/flotilla-go/flotilla/logger"
)

// BenchmarkChain serves a hello-world route through the full platform
// middleware chain (request ID, recover, tracing, request log into a real
// file, body limit, timeout) and through bare echo, in one run. The
// throughput ratio is bare ns/op divided by chain ns/op.
func BenchmarkChain(b *testing.B) {
	hello := func(c echo.Context) error { return c.String(http.StatusOK, "hello") }
	run := func(b *testing.B, e *echo.Echo, flush func()) {
		req := httptest.NewRequest(http.MethodGet, "/hello/world", nil)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			if flush != nil && i%4096 == 4095 {
				b.StopTimer()
				flush()
				b.StartTimer()
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	}
	b.Run("bare", func(b *testing.B) {
		e := echo.New()
		e.GET("/hello/:name", hello)
		run(b, e, nil)
	})
	b.Run("platform", func(b *testing.B) {
		e, inst := benchApp(b, hello)
		run(b, e, func() { inst.rl.Store().Flush(context.Background()) })
		if d := inst.rl.Store().Stats().Dropped; d > 0 {
			b.Fatalf("%d records dropped", d)
		}
	})
}

// BenchmarkChainHTTP is BenchmarkChain over real loopback HTTP with
// keep-alive, as a service is called: the chain's cost next to a request's.
func BenchmarkChainHTTP(b *testing.B) {
	hello := func(c echo.Context) error { return c.String(http.StatusOK, "hello") }
	run := func(b *testing.B, h http.Handler) {
		srv := httptest.NewServer(h)
		defer srv.Close()
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		defer client.CloseIdleConnections()
		url := srv.URL + "/hello/world"
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				res, err := client.Get(url)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		})
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	}
	b.Run("bare", func(b *testing.B) {
		e := echo.New()
		e.GET("/hello/:name", hello)
		run(b, e)
	})
	b.Run("platform", func(b *testing.B) {
		e, _ := benchApp(b, hello)
		run(b, e)
	})
}

// benchApp returns an app with the full platform chain around hello,
// logging into a file of its own, closed when the benchmark ends.
func benchApp(b *testing.B, hello echo.HandlerFunc) (*echo.Echo, *instance) {
	b.Helper()
	c, err := load("bench", []Option{WithRegistry(""), WithDB(filepath.Join(b.TempDir(), "f.db")), WithListen(":1")})
	if err != nil {
		b.Fatal(err)
	}
	e := echo.New()
	e.GET("/hello/:name", hello)
	inst, err := prepare(context.Background(), e, c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		inst.rl.Close(context.Background())
		inst.tel.Shutdown(context.Background())
	})
	return e, inst
}

// BenchmarkSiblingCall measures what the breaker transport adds to a call
// made inside a handler, whose context can end: with the platform's request
// context, which the breaker's attempt registers with directly, and with a
// context.WithTimeout on the connection's context, as a handler gets
// elsewhere; and Propagate over the breaker for a traced request, as
// platform.Client sends it, through the propagator Run installs. base is
// the RoundTripper alone, recordRT, which answers at once without a
// network.
func BenchmarkSiblingCall(b *testing.B) {
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(w3c{}) // as Run does
	defer otel.SetTextMapPropagator(prev)
	conn, cancel := context.WithCancel(context.Background())
	defer cancel()
	rc := newRequestContext(conn, "id", 30*time.Second)
	defer rc.cancel()
	withTimeout, cancelTimeout := context.WithTimeout(conn, 30*time.Second)
	defer cancelTimeout()
	// A traced request's context, as the tracing middleware leaves it when
	// nothing is exported: the call through Propagate gets a client span.
	tid, sid := traceid.Generator{}.NewIDs(rc)
	traced := trace.ContextWithSpanContext(rc, trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
	for _, tc := range []struct {
		name string
		ctx  context.Context
		rt   http.RoundTripper
	}{
		{"base", rc, &recordRT{}},
		{"breaker/request-context", rc, breaker.NewTransport(&recordRT{})},
		{"breaker/context.WithTimeout", withTimeout, breaker.NewTransport(&recordRT{})},
		{"propagate+breaker/traced", traced, Propagate(breaker.NewTransport(&recordRT{}, breaker.WithDeadlineHeader(BudgetHeader)))},
	} {
		req, _ := http.NewRequestWithContext(tc.ctx, http.MethodGet, "http://agent-geo/geo/1.1.1.1", nil)
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

// discardLogs is a log exporter that drops what it gets.
type discardLogs struct{}

func (discardLogs) Export(context.Context, []sdklog.Record) error { return nil }
func (discardLogs) Shutdown(context.Context) error                { return nil }
func (discardLogs) ForceFlush(context.Context) error              { return nil }

// BenchmarkRecordExport is what sending request records as OTLP logs
// costs: on the request path ("request"), queueing the record for the
// exporter's goroutine, which here is drained between rounds, so none is
// dropped; in that goroutine ("emit"), turning it into a log record and
// handing it to the SDK's batch processor, whose exporter here drops them
// (the network is further off).
func BenchmarkRecordExport(b *testing.B) {
	tid, sid := traceid.Generator{}.NewIDs(context.Background())
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	r := logger.Record{Time: time.Now(), Service: "agent-geo", Method: "GET", Path: "/geo/1.1.1.1", Route: "/geo/:ip", Status: 200,
		Duration: time.Millisecond, IP: "127.0.0.1", UserAgent: "bench", RequestID: "abc", TraceID: tid.String()}
	b.Run("request", func(b *testing.B) {
		e := &recordExporter{queue: make(chan exportedRecord, exportQueue)} // no goroutine: the bench drains it
		b.ReportAllocs()
		for i := range b.N {
			if i%exportQueue == exportQueue-1 {
				b.StopTimer()
				for len(e.queue) > 0 {
					<-e.queue
				}
				b.StartTimer()
			}
			e.observe(ctx, r)
		}
		if n := e.dropped.Load(); n > 0 {
			b.Fatalf("%d records dropped", n)
		}
	})
	b.Run("emit", func(b *testing.B) {
		lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewBatchProcessor(discardLogs{})))
		defer lp.Shutdown(context.Background())
		e := &recordExporter{l: lp.Logger("bench")}
		b.ReportAllocs()
		for range b.N {
			e.emit(exportedRecord{r, sc})
		}
	})
}

// BenchmarkClientSpan is what an unrecorded client span adds to a sibling
// call: a new span id in the request's span context, which Propagate
// sends in place of the request's own (the rest of the call is the same
// with or without it).
func BenchmarkClientSpan(b *testing.B) {
	tid, sid := traceid.Generator{}.NewIDs(context.Background())
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
	var sc trace.SpanContext
	b.ReportAllocs()
	for range b.N {
		sc = unrecordedSpan(ctx, trace.SpanContextFromContext(ctx))
	}
	if !sc.IsValid() {
		b.Fatal("no client span")
	}
}
