package platform_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildHello builds testdata/hello, the smallest service, with build tags.
func buildHello(b *testing.B, tags string) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "hello")
	out, err := exec.Command("go", "build", "-tags", tags, "-o", bin, "./testdata/hello").CombinedOutput()
	if err != nil {
		b.Fatalf("build: %v: %s", err, out)
	}
	return bin
}

// startHello starts the service on a free port and returns once /health
// passes, with the time that took.
func startHello(b *testing.B, bin, dir string) (*exec.Cmd, string, time.Duration) {
	b.Helper()
	port := strconv.Itoa(freePortB(b))
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "PORT="+port, "FLOTILLA_DB="+filepath.Join(dir, "flotilla.db"), "FLOTILLA_REGISTRY=")
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	url := "http://127.0.0.1:" + port + "/health"
	client := &http.Client{Timeout: time.Second}
	for {
		res, err := client.Get(url)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return cmd, "http://127.0.0.1:" + port, time.Since(start)
			}
		}
		if time.Since(start) > 20*time.Second {
			cmd.Process.Kill()
			b.Fatalf("not healthy: %v", err)
		}
		time.Sleep(500 * time.Microsecond)
	}
}

func stopHello(b *testing.B, cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
}

// BenchmarkProcess measures, for the built hello service: the median time
// from process start to the first passing /health over 20 starts, and the
// resident memory of one idle service after a few requests; built in full,
// in full with gRPC's grpcnotrace tag (which leaves out golang.org/x/net/trace
// and so lets the linker drop unused methods), and with -tags flotilla_lean
// (no OTLP or Prometheus exporters).
func BenchmarkProcess(b *testing.B) {
	b.Run("full", func(b *testing.B) { benchProcess(b, "") })
	b.Run("full-grpcnotrace", func(b *testing.B) { benchProcess(b, "grpcnotrace") })
	b.Run("lean", func(b *testing.B) { benchProcess(b, "flotilla_lean") })
}

func benchProcess(b *testing.B, tags string) {
	bin := buildHello(b, tags)
	dir := b.TempDir()
	var times []time.Duration
	var rss float64
	for range b.N {
		times = times[:0]
		for range 20 {
			cmd, _, d := startHello(b, bin, dir)
			times = append(times, d)
			stopHello(b, cmd)
		}
		cmd, base, _ := startHello(b, bin, dir)
		for range 20 {
			res, err := http.Get(base + "/hello")
			if err != nil {
				b.Fatal(err)
			}
			res.Body.Close()
		}
		rss = rssMB(b, cmd.Process.Pid)
		stopHello(b, cmd)
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "start-to-healthy-ms")
	b.ReportMetric(rss, "idle-rss-MB")
}

func rssMB(b *testing.B, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			return float64(kb) / 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

func freePortB(b *testing.B) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
