// Command fleet runs the demo fleet: it builds the example services,
// writes a port map for N of them (the examples plus generated svc-NN
// echo services, half on unix sockets, half on ports), starts them all at
// the same instant as separate processes, waits until every /health
// passes, sends a little traffic through the gateway, and prints where
// things are. Ctrl-C stops them all gracefully, and it says whether every
// request sent is in the shared log.
//
//	go run ./examples/fleet              # 45 services
//	go run ./examples/fleet -n 10
//
// The services are built with -tags flotilla_lean, without the OTLP and
// Prometheus exporters, since the fleet exports nothing, unless -full is
// given or the environment asks for an exporter. The figures of this fleet
// (memory, restarts, throughput) come from the bench module's fleet
// command, which runs it the same way (package launch).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/flotilla-go/flotilla/examples/fleet/launch"
)

func main() {
	n := flag.Int("n", 45, fmt.Sprintf("fleet size (at least %d: the example services)", launch.MinServices))
	dir := flag.String("dir", filepath.Join(os.TempDir(), "flotilla-fleet"), "where the port map, sockets, logs and the shared log go")
	full := flag.Bool("full", false, "build the services with the OTLP and Prometheus exporters (the default when OTEL_EXPORTER_OTLP_*ENDPOINT or FLOTILLA_METRICS is set)")
	flag.Parse()
	if *n < launch.MinServices {
		fmt.Fprintf(os.Stderr, "fleet: -n %d: the fleet needs at least %d services\n", *n, launch.MinServices)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *dir, *n, !*full && !exportAsked()); err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dir string, n int, lean bool) error {
	var opts []launch.Option
	if lean {
		opts = append(opts, launch.Lean())
	}
	f, err := launch.Start(ctx, dir, n, os.Stdout, opts...)
	if err != nil {
		return err
	}
	began := time.Now()
	err = f.Launch()
	if err == nil {
		err = f.WaitHealthy(ctx)
	}
	if err == nil {
		fmt.Printf("%d services healthy %d ms after they were started together\n", f.Size(), time.Since(began).Milliseconds())
		_, err = f.Traffic(ctx)
	}
	if err != nil {
		f.Stop()
		return err
	}
	reg := f.Registry()
	fmt.Printf("gateway:    %s (POST /api/keys/create, then /v1/<service>/... with Authorization: Bearer <key>)\n", f.Gateway())
	if ep, err := reg.Lookup("dashboard"); err == nil {
		fmt.Printf("dashboard:  http://%s/\n", ep.Address)
	}
	fmt.Printf("port map:   %s\nshared log: %s\nlogs:       %s\n", reg.Path(), filepath.Join(dir, "flotilla.db"), filepath.Join(dir, "logs"))
	fmt.Printf("operate:    go run ./cmd/flotilla --registry %s ps   (or top, logs -f, restart --all)\n", reg.Path())
	fmt.Println("Ctrl-C stops the fleet.")
	<-ctx.Done()
	f.Stop()
	lost, err := f.LostRows()
	if err != nil {
		return err
	}
	fmt.Printf("stopped: %d crashes, %d lost log rows\n", f.Crashes(), lost)
	if f.Crashes() > 0 || lost > 0 {
		return fmt.Errorf("%d crashes, %d lost log rows", f.Crashes(), lost)
	}
	return nil
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
