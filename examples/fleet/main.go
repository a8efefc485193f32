// Command fleet runs the demo fleet: it builds the example services,
// writes a port map for N of them (the examples plus generated svc-NN
// echo services, half on unix sockets, half on ports), starts them all at
// the same instant as separate processes, waits until every /health
// passes, sends a little traffic through the gateway, and prints where
// things are. Ctrl-C stops them all gracefully.
//
//	go run ./examples/fleet                    # 45 services
//	go run ./examples/fleet -n 10 -restart-all 2
//	go run ./examples/fleet -bench             # one JSON line of figures
//	go run ./examples/fleet -bench -full       # the same, services built with their exporters
//
// The services are built with -tags flotilla_lean, without the OTLP and
// Prometheus exporters, since the fleet exports nothing, unless -full is
// given or the environment asks for an exporter. A full build uses gRPC's
// grpcnotrace tag, as the README advises.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

func main() {
	cfg := config{}
	flag.IntVar(&cfg.n, "n", 45, "fleet size (at least 6: the example services)")
	flag.StringVar(&cfg.dir, "dir", filepath.Join(os.TempDir(), "flotilla-fleet"), "where the port map, sockets, logs and the shared log file go")
	flag.IntVar(&cfg.restartAll, "restart-all", 0, "restart every service at once this many times, then report crashes and lost log rows")
	flag.BoolVar(&cfg.bench, "bench", false, "measure the fleet, stop it, and print one JSON object as the last line")
	full := flag.Bool("full", false, "build the services with the OTLP and Prometheus exporters (the default when OTEL_EXPORTER_OTLP_*ENDPOINT or FLOTILLA_METRICS is set)")
	flag.Parse()
	// The fleet exports nothing unless the environment asks: build lean.
	cfg.lean = !*full && !exportAsked()
	if cfg.n < len(examples) {
		fmt.Fprintf(os.Stderr, "fleet: -n %d: the fleet needs at least %d services\n", cfg.n, len(examples))
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	f, err := start(ctx, cfg, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
	report, err := f.exercise(ctx)
	if err != nil {
		f.stopAll()
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
	if cfg.restartAll == 0 && !cfg.bench {
		fmt.Println("Ctrl-C stops the fleet.")
		<-ctx.Done()
	}
	if err := f.finish(&report); err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
	}
	if cfg.bench || cfg.restartAll > 0 {
		line, _ := json.Marshal(report)
		fmt.Println(string(line))
	}
	if report.Crashes > 0 || report.LostRows > 0 {
		os.Exit(1)
	}
}

// exportAsked reports whether the environment turns on an exporter that a
// lean build leaves out.
func exportAsked() bool {
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if v != "" && (k == "FLOTILLA_METRICS" && v != "0" && v != "false" ||
			strings.HasPrefix(k, "OTEL_EXPORTER_OTLP_") && strings.HasSuffix(k, "ENDPOINT")) {
			return true
		}
	}
	return false
}
