// Command otelcol is an OpenTelemetry Collector built from the official
// core modules, with only what the platform's tests need: the OTLP
// receiver, the OTLP/HTTP exporter and the debug exporter. CI builds it
// (.ci/run) and the platform tests run it between a service and a
// receiver of their own. It lives in a module of its own, so the
// library's go.mod stays clean.
package main

import (
	"log"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/debugexporter"
	"go.opentelemetry.io/collector/exporter/otlphttpexporter"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"
)

func main() {
	set := otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{Command: "otelcol", Description: "OpenTelemetry Collector for flotilla's tests", Version: "test"},
		Factories: func() (otelcol.Factories, error) {
			r := otlpreceiver.NewFactory()
			e, d := otlphttpexporter.NewFactory(), debugexporter.NewFactory()
			return otelcol.Factories{
				Receivers: map[component.Type]receiver.Factory{r.Type(): r},
				Exporters: map[component.Type]exporter.Factory{e.Type(): e, d.Type(): d},
				Telemetry: otelconftelemetry.NewFactory(),
			}, nil
		},
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				ProviderFactories: []confmap.ProviderFactory{fileprovider.NewFactory()},
				DefaultScheme:     "file",
			},
		},
	}
	if err := otelcol.NewCommand(set).Execute(); err != nil {
		log.Fatal(err)
	}
}
