//go:build !flotilla_lean

package platform

import (
	"context"
	"net/http"

	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/prometheus"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// LeanBuild reports whether the package was built with -tags
// flotilla_lean, which leaves out the OTLP and Prometheus exporters.
const LeanBuild = false

// otlpSpanExporter is the official OTLP/HTTP span exporter, configured by
// the OTEL_EXPORTER_OTLP_* variables.
func otlpSpanExporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	return otlptracehttp.New(ctx)
}

// otlpLogProcessor batches log records to the official OTLP/HTTP log
// exporter.
func otlpLogProcessor(ctx context.Context) (sdklog.Processor, error) {
	exp, err := otlploghttp.New(ctx)
	if err != nil {
		return nil, err
	}
	return sdklog.NewBatchProcessor(exp), nil
}

// otlpMetricReader sends metrics with the official OTLP/HTTP exporter.
func otlpMetricReader(ctx context.Context) (sdkmetric.Reader, error) {
	exp, err := otlpmetrichttp.New(ctx)
	if err != nil {
		return nil, err
	}
	return sdkmetric.NewPeriodicReader(exp), nil
}

// prometheusReader is OpenTelemetry's Prometheus exporter and the handler
// that serves what it collects in the Prometheus text format.
func prometheusReader() (sdkmetric.Reader, http.Handler, error) {
	reg := promclient.NewRegistry()
	exp, err := prometheus.New(prometheus.WithRegisterer(reg))
	if err != nil {
		return nil, nil, err
	}
	return exp, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), nil
}
