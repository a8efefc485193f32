package platform

import (
	"context"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/otel/sdk/resource"
)

// The OpenTelemetry SDK's environment variables that the platform reads,
// with what each takes:
//
//   - OTEL_SDK_DISABLED: true turns every exporter off (spans are still
//     made, unrecorded, for the log's trace ids); default false.
//   - OTEL_TRACES_EXPORTER, OTEL_METRICS_EXPORTER: otlp or none. Unset, a
//     signal is exported when an OTLP endpoint for it is set
//     (OTEL_EXPORTER_OTLP_ENDPOINT, or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
//     or ..._METRICS_ENDPOINT for one signal only).
//   - OTEL_LOGS_EXPORTER: otlp sends every request record as a log record
//     too (see recordExporter); unset or none, it does not.
//   - OTEL_EXPORTER_OTLP_PROTOCOL (and its per-signal forms): http/protobuf,
//     the only protocol built in.
//   - OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES: the resource of every
//     span and metric; OTEL_SERVICE_NAME wins over the service's own name
//     there (never in the request log).
//   - OTEL_TRACES_SAMPLER and its argument, read by the SDK.

// exportOn reports whether signal (TRACES or METRICS) is exported over
// OTLP, or a bad value's error.
func exportOn(signal string) (bool, error) {
	disabled, err := envBool("OTEL_SDK_DISABLED")
	if err != nil || disabled {
		return false, err
	}
	for _, v := range []string{"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_" + signal + "_PROTOCOL"} {
		if p := os.Getenv(v); p != "" && p != "http/protobuf" {
			return false, fmt.Errorf("platform: %s=%q: only http/protobuf is built in; unset it or set http/protobuf", v, p)
		}
	}
	v := "OTEL_" + signal + "_EXPORTER"
	switch e := strings.ToLower(strings.TrimSpace(os.Getenv(v))); e {
	case "":
		// Request records are in the shared log already: they go out
		// over OTLP only when asked.
		return signal != "LOGS" && otlpConfigured(signal), nil
	case "otlp":
		return true, nil
	case "none":
		return false, nil
	default:
		return false, fmt.Errorf("platform: %s=%q: give otlp or none", v, os.Getenv(v))
	}
}

// envBool reads a boolean variable of the SDK: true or false, case aside.
func envBool(name string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(os.Getenv(name))) {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	}
	return false, fmt.Errorf("platform: %s=%q: give true or false", name, os.Getenv(name))
}

// envResource is the resource that OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES describe.
func envResource(ctx context.Context) (*resource.Resource, error) {
	res, err := resource.New(ctx, resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("platform: OTEL_RESOURCE_ATTRIBUTES=%q: give key=value pairs separated by commas, values percent-encoded: %w",
			os.Getenv("OTEL_RESOURCE_ATTRIBUTES"), err)
	}
	return res, nil
}
