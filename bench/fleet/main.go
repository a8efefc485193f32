// Command fleet measures the demo fleet (package launch, as
// go run ./examples/fleet runs it): the time from starting every service
// at once to every /health passing, the fleet's memory, restarts of all of
// them at once, and requests per second through nginx → gateway →
// agent-geo with wrk. It prints what it does, and the figures as one JSON
// object on its last line. It exits 1 when a service crashed or a request
// sent is missing from the shared log.
//
//	cd bench && go run ./fleet -restart-all 10          # 45 services, built lean
//	cd bench && go run ./fleet -restart-all 10 -full    # built with their exporters
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/flotilla-go/flotilla/examples/fleet/launch"
)

// Report is the fleet's figures.
type Report struct {
	Services         int     `json:"services"`
	Lean             bool    `json:"lean,omitempty"`
	StartToHealthy   float64 `json:"start_to_healthy_ms"`
	TotalRSSMB       float64 `json:"total_rss_mb"`
	MedianRSSMB      float64 `json:"median_rss_mb"`
	TotalPSSMB       float64 `json:"total_pss_mb"`
	Restarts         int     `json:"restarts"`
	RestartHealthyMS float64 `json:"restart_to_healthy_ms,omitempty"`
	Crashes          int     `json:"crashes"`
	LostRows         int     `json:"lost_rows"`
	WrkRPS           float64 `json:"wrk_rps,omitempty"`
	WrkP99MS         float64 `json:"wrk_p99_ms,omitempty"`
	WrkErrors        int     `json:"wrk_non_2xx,omitempty"`
	Requests         int     `json:"requests"`
}

func main() {
	n := flag.Int("n", 45, "fleet size")
	dir := flag.String("dir", filepath.Join(os.TempDir(), "flotilla-fleet-bench"), "the fleet's folder")
	restarts := flag.Int("restart-all", 0, "restart every service at once this many times")
	full := flag.Bool("full", false, "build the services with the OTLP and Prometheus exporters")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := measure(ctx, *dir, *n, *restarts, !*full)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
	line, _ := json.Marshal(r)
	fmt.Println(string(line))
	if r.Crashes > 0 || r.LostRows > 0 {
		os.Exit(1)
	}
}

func measure(ctx context.Context, dir string, n, restarts int, lean bool) (Report, error) {
	r := Report{Lean: lean}
	opts := []launch.Option{launch.ForLoad()}
	if lean {
		opts = append(opts, launch.Lean())
	}
	f, err := launch.Start(ctx, dir, n, os.Stdout, opts...)
	if err != nil {
		return r, err
	}
	defer f.Stop()
	r.Services = f.Size()
	up := func() (float64, error) {
		began := time.Now()
		if err := f.Launch(); err != nil {
			return 0, err
		}
		if err := f.WaitHealthy(ctx); err != nil {
			return 0, err
		}
		ms := float64(time.Since(began).Microseconds()) / 1000
		sent, err := f.Traffic(ctx)
		r.Requests += sent
		return ms, err
	}
	if r.StartToHealthy, err = up(); err != nil {
		return r, err
	}
	fmt.Printf("%d services healthy %.0f ms after they were started together\n", r.Services, r.StartToHealthy)
	r.TotalRSSMB, r.MedianRSSMB, r.TotalPSSMB = memory(f.PIDs())
	fmt.Printf("memory: %.0f MB RSS in all (%.0f MB PSS, counting shared executable pages once), median %.1f MB per service\n", r.TotalRSSMB, r.TotalPSSMB, r.MedianRSSMB)

	var restartMS []float64
	for i := 1; i <= restarts; i++ {
		f.Stop()
		ms, err := up()
		if err != nil {
			return r, err
		}
		restartMS = append(restartMS, ms)
		r.Restarts = i
		fmt.Printf("restart %d of %d: all %d healthy again in %.0f ms, %d crashes so far\n", i, restarts, r.Services, ms, f.Crashes())
	}
	if len(restartMS) > 0 {
		slices.Sort(restartMS)
		r.RestartHealthyMS = restartMS[len(restartMS)/2]
	}
	if err := throughput(ctx, f, dir, &r); err != nil {
		return r, err
	}
	f.Stop()
	r.Crashes = f.Crashes()
	if r.LostRows, err = f.LostRows(); err != nil {
		return r, err
	}
	fmt.Printf("stopped: %d crashes, %d lost log rows\n", r.Crashes, r.LostRows)
	return r, nil
}

// memory returns the total and median resident memory (RSS) of the
// processes and their proportional set size (PSS, which counts pages shared
// between processes, such as one executable's code, once), in MB.
func memory(pids []int) (total, median, pss float64) {
	var all []float64
	for _, pid := range pids {
		if kb, ok := procField(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:"); ok {
			all = append(all, kb/1024)
		}
		if kb, ok := procField(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:"); ok {
			pss += kb / 1024
		}
	}
	if len(all) == 0 {
		return 0, 0, 0
	}
	slices.Sort(all)
	for _, v := range all {
		total += v
	}
	return total, all[len(all)/2], pss
}

// procField reads a "Name: N kB" line of a /proc file.
func procField(path, name string) (float64, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == name {
			kb, err := strconv.ParseFloat(f[1], 64)
			return kb, err == nil
		}
	}
	return 0, false
}
