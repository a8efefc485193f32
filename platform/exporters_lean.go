//go:build flotilla_lean

package platform

import (
	"context"
	"fmt"
	"net/http"
	"os"

	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// LeanBuild reports whether the package was built with -tags
// flotilla_lean, which leaves out the OTLP and Prometheus exporters.
const LeanBuild = true

func otlpSpanExporter(context.Context) (sdktrace.SpanExporter, error) {
	return nil, leanError(exportVariable("TRACES"), "the OTLP exporters")
}

func otlpMetricReader(context.Context) (sdkmetric.Reader, error) {
	return nil, leanError(exportVariable("METRICS"), "the OTLP exporters")
}

func otlpLogProcessor(context.Context) (sdklog.Processor, error) {
	return nil, leanError(exportVariable("LOGS"), "the OTLP exporters")
}

func prometheusReader() (sdkmetric.Reader, http.Handler, error) {
	return nil, nil, fmt.Errorf("%w: /metrics is on (FLOTILLA_METRICS=1 or WithMetrics), but this service was built with -tags flotilla_lean, which leaves the Prometheus exporter out: rebuild it without that tag, or turn /metrics off",
		ErrLeanBuild)
}

func leanError(variable, what string) error {
	return fmt.Errorf("%w: %s is set, but this service was built with -tags flotilla_lean, which leaves %s out: rebuild it without that tag, or unset %[2]s",
		ErrLeanBuild, variable, what)
}

// exportVariable names the variable that turned on the export of signal,
// for errors: OTEL_<SIGNAL>_EXPORTER when set, else the endpoint's.
func exportVariable(signal string) string {
	if v := "OTEL_" + signal + "_EXPORTER"; os.Getenv(v) != "" {
		return v
	}
	return otlpVariable(signal)
}
