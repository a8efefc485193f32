package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestExportAsked(t *testing.T) {
	for _, k := range []string{"FLOTILLA_METRICS", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"} {
		t.Setenv(k, "")
	}
	assert.False(t, exportAsked(), "nothing asked: the fleet builds lean")
	t.Setenv("FLOTILLA_METRICS", "0")
	assert.False(t, exportAsked())
	t.Setenv("FLOTILLA_METRICS", "1")
	assert.True(t, exportAsked(), "/metrics needs the Prometheus exporter")
	t.Setenv("FLOTILLA_METRICS", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/v1/traces")
	assert.True(t, exportAsked(), "OTLP export needs the OTLP exporters")
}
