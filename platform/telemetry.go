package platform

import (
	"context"
	"errors"
	"net/http"
	"os"
	"time"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/flotilla-go/flotilla/internal/traceid"
)

// telemetry holds the process's OpenTelemetry providers.
type telemetry struct {
	records  *recordExporter // request records as OTLP logs, when on
	tp       *sdktrace.TracerProvider
	recorded bool // spans may be recorded: exported, or a sampler set
	mp       *sdkmetric.MeterProvider
	metrics  http.Handler // /metrics, when on
	shutdown []func(context.Context) error
}

// ErrLeanBuild is wrapped by the error of Run when the configuration asks
// for an exporter that a service built with -tags flotilla_lean leaves out.
var ErrLeanBuild = errors.New("exporter not built in")

func otlpConfigured(signal string) bool { return otlpVariable(signal) != "" }

// otlpVariable returns the name of the set variable that turns on OTLP
// export of signal (TRACES or METRICS), or "".
func otlpVariable(signal string) string {
	for _, v := range []string{"OTEL_EXPORTER_OTLP_" + signal + "_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
		if os.Getenv(v) != "" {
			return v
		}
	}
	return ""
}

// newTelemetry sets up tracing, which always runs so that every request has
// a trace id for its log row, and exports spans over OTLP/HTTP only when the
// SDK's variables say so (see exportOn); sampling follows
// OTEL_TRACES_SAMPLER. Metrics are collected when /metrics is on or they
// are exported.
func newTelemetry(ctx context.Context, c *config) (*telemetry, error) {
	attrs := []attribute.KeyValue{attribute.String("service.name", c.service)}
	if c.version != "" { // an empty version says nothing
		attrs = append(attrs, attribute.String("service.version", c.version))
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attrs...))
	if err != nil {
		return nil, err
	}
	fromEnv, err := envResource(ctx)
	if err != nil {
		return nil, err
	}
	if res, err = resource.Merge(res, fromEnv); err != nil { // the environment's say wins
		return nil, err
	}
	traces, err := exportOn("TRACES")
	if err != nil {
		return nil, err
	}
	metricsOut, err := exportOn("METRICS")
	if err != nil {
		return nil, err
	}
	logsOut, err := exportOn("LOGS")
	if err != nil {
		return nil, err
	}
	t := &telemetry{}
	if logsOut {
		proc, err := otlpLogProcessor(ctx)
		if err != nil {
			return nil, err
		}
		lp := sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithProcessor(proc))
		t.records = newRecordExporter(lp.Logger("github.com/flotilla-go/flotilla/platform"))
		t.shutdown = append(t.shutdown, t.records.flush, lp.Shutdown)
	}
	// Trace ids begin with the time, so the request log's trace index
	// grows at its end (see internal/traceid).
	topts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res), sdktrace.WithIDGenerator(traceid.Generator{})}
	t.recorded = traces || os.Getenv("OTEL_TRACES_SAMPLER") != ""
	if traces {
		exp, err := otlpSpanExporter(ctx)
		if err != nil {
			return nil, err
		}
		topts = append(topts, sdktrace.WithBatcher(exp))
	} else if !t.recorded {
		// Nothing leaves the process: spans are not recorded, but each
		// still gets a trace id, which the log rows and the traceparent
		// sent to siblings carry.
		topts = append(topts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())))
	}
	t.tp = sdktrace.NewTracerProvider(topts...)
	t.shutdown = append(t.shutdown, t.tp.Shutdown)
	otel.SetTracerProvider(t.tp)
	otel.SetTextMapPropagator(w3c{})
	if t.recorded {
		clientTracer.Store(t.tp.Tracer("github.com/flotilla-go/flotilla/platform"))
	}

	var readers []sdkmetric.Option
	if c.metrics {
		r, h, err := prometheusReader()
		if err != nil {
			return nil, err
		}
		readers = append(readers, sdkmetric.WithReader(r))
		t.metrics = h
	}
	if metricsOut {
		r, err := otlpMetricReader(ctx)
		if err != nil {
			return nil, err
		}
		readers = append(readers, sdkmetric.WithReader(r))
	}
	if len(readers) > 0 {
		t.mp = sdkmetric.NewMeterProvider(append(readers, sdkmetric.WithResource(res))...)
		t.shutdown = append(t.shutdown, t.mp.Shutdown)
		otel.SetMeterProvider(t.mp)
		h, err := t.mp.Meter("github.com/flotilla-go/flotilla/platform").Float64Histogram("http.client.request.duration",
			metric.WithUnit("s"), metric.WithDescription("Duration of HTTP calls to siblings, by host and status."),
			metric.WithExplicitBucketBoundaries(durationBuckets...))
		if err != nil {
			return nil, err
		}
		clientDuration.Store(h)
	}
	return t, nil
}

func (t *telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for _, f := range t.shutdown {
		errs = append(errs, f(ctx))
	}
	return errors.Join(errs...)
}

// requestMetrics records http.server.request.duration by route and status,
// and registers the request log's queue depth and drops as gauges.
func (t *telemetry) requestMetrics(rl *requestLog, shed func() uint64) (echo.MiddlewareFunc, error) {
	m := t.mp.Meter("github.com/flotilla-go/flotilla/platform")
	dur, err := m.Float64Histogram("http.server.request.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of HTTP server requests, by route and status."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	if err != nil {
		return nil, err
	}
	queue, err := m.Int64ObservableGauge("flotilla.requestlog.queue", metric.WithUnit("{record}"),
		metric.WithDescription("Records waiting to be written to the shared request log."))
	if err != nil {
		return nil, err
	}
	dropped, err := m.Int64ObservableCounter("flotilla.requestlog.dropped", metric.WithUnit("{record}"),
		metric.WithDescription("Records lost: queue full, or the log unavailable."))
	if err != nil {
		return nil, err
	}
	shedC, err := m.Int64ObservableCounter("flotilla.requests.shed", metric.WithUnit("{request}"),
		metric.WithDescription("Requests answered 503 at once because the concurrency limit was reached."))
	if err != nil {
		return nil, err
	}
	exportDropped, err := m.Int64ObservableCounter("flotilla.requestlog.export.dropped", metric.WithUnit("{record}"),
		metric.WithDescription("Request records not sent as OTLP log records: their queue was full."))
	if err != nil {
		return nil, err
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(shedC, int64(shed()))
		if t.records != nil {
			o.ObserveInt64(exportDropped, int64(t.records.dropped.Load()))
		}
		var q, d int64
		if s := rl.Store(); s != nil {
			st := s.Stats()
			q, d = int64(st.Queued), int64(st.Dropped)
		}
		o.ObserveInt64(queue, q)
		o.ObserveInt64(dropped, d+int64(rl.lost.Load()))
		return nil
	}, queue, dropped, shedC, exportDropped)
	if err != nil {
		return nil, err
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			defer func() {
				status := statusOf(c)
				p := recover()
				if p != nil { // recover, outside, answers 500
					status = http.StatusInternalServerError
				}
				attrs := requestAttributes(c.Request(), c.Path(), status)
				dur.Record(c.Request().Context(), time.Since(start).Seconds(), metric.WithAttributes(attrs...))
				if p != nil {
					panic(p)
				}
			}()
			return next(c)
		}
	}, nil
}
