package platform_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/flotilla-go/flotilla/health"
	"github.com/flotilla-go/flotilla/internal/testport"
	"github.com/flotilla-go/flotilla/internal/testwait"
	"github.com/flotilla-go/flotilla/logger"
	"github.com/flotilla-go/flotilla/platform"
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
	port := strconv.Itoa(testport.Free(b))
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

// BenchmarkRestartFleet starts 100 hello services, then SIGHUPs every one of
// them at once, three times. It reports how long the slowest old process
// took to exit after its signal, and how many outlived the shutdown timeout
// (DefaultShutdownTimeout); each round also sends one request to every
// service while the successors start, so that every old process has a
// connection to drain.
func BenchmarkRestartFleet(b *testing.B) {
	const services, rounds = 100, 3
	bin := buildHello(b, "")
	dir := b.TempDir()
	for range b.N {
		pids := make([]int, services)
		bases := make([]string, services)
		logs := make([]*testwait.Buffer, services)
		for i := range services {
			logs[i] = &testwait.Buffer{}
			cmd, base := startHelloLogged(b, bin, dir, logs[i])
			go cmd.Wait() // reap the first generation
			pids[i], bases[i] = cmd.Process.Pid, base
		}
		var slowest time.Duration
		late := 0
		for round := range rounds {
			began := time.Now()
			for _, pid := range pids {
				syscall.Kill(pid, syscall.SIGHUP)
			}
			for _, base := range bases {
				if res, err := http.Get(base + "/hello"); err == nil {
					res.Body.Close()
				}
			}
			for i, old := range pids {
				succ := waitHandedOver(b, logs[i], old, round)
				for alive(old) {
					if time.Since(began) > 2*platform.DefaultShutdownTimeout {
						b.Fatalf("round %d: old process %d still alive after %v", round, old, time.Since(began))
					}
					time.Sleep(time.Millisecond)
				}
				if d := time.Since(began); d > slowest {
					slowest = d
				}
				if time.Since(began) > platform.DefaultShutdownTimeout {
					late++
				}
				pids[i] = succ
			}
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGTERM)
		}
		for _, pid := range pids {
			for alive(pid) {
				time.Sleep(time.Millisecond)
			}
		}
		b.ReportMetric(slowest.Seconds(), "slowest-old-exit-s")
		b.ReportMetric(float64(late), "over-timeout")
	}
}

func startHelloLogged(b *testing.B, bin, dir string, log *testwait.Buffer) (*exec.Cmd, string) {
	b.Helper()
	port := strconv.Itoa(testport.Free(b))
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "PORT="+port, "FLOTILLA_DB="+filepath.Join(dir, "flotilla.db"), "FLOTILLA_REGISTRY=")
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	base := "http://127.0.0.1:" + port
	untilOK(b, http.DefaultClient, base+"/health", 30*time.Second, log.String)
	return cmd, base
}

// untilOK polls url with c until it answers 200, and fails b if it does
// not within d; details, read only then, say more.
func untilOK(b *testing.B, c *http.Client, url string, d time.Duration, details ...func() string) {
	b.Helper()
	testwait.Until(b, d, func() bool {
		res, err := c.Get(url)
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	}, url+" to answer 200", details...)
}

var handedOver = regexp.MustCompile(`"msg":"handed over to pid (\d+)"`)

// waitHandedOver returns the successor's pid from the round-th hand-over
// line of a service's log.
func waitHandedOver(b *testing.B, log *testwait.Buffer, old, round int) int {
	deadline := time.Now().Add(60 * time.Second)
	for {
		if m := handedOver.FindAllStringSubmatch(log.String(), -1); len(m) > round {
			pid, _ := strconv.Atoi(m[round][1])
			return pid
		}
		if time.Now().After(deadline) {
			b.Fatalf("pid %d: no hand-over in round %d:\n%s", old, round, log.String())
		}
		time.Sleep(time.Millisecond)
	}
}

// alive reports whether pid runs: it exists and is not a zombie.
func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// BenchmarkOverload offers a service with a CPU-bound handler (/cpu, about
// 2 ms of CPU) four times its measured capacity, open loop, for 15 s: with
// the adaptive concurrency limit, and with it off, in one run. Capacity is
// measured first with 4 clients in a closed loop, on a process with no
// limit; the unloaded p99 with one client, on the process under test. The
// load generator runs on the same cores. It reports the limit /health
// gives at the end of the overload, and the CPUs the service and the
// generator (this process) each kept busy during it. Run it with -benchtime 1x.
// OVERLOAD_MODES (default "auto off") lists the FLOTILLA_CONCURRENCY values
// to compare, OVERLOAD_GOMAXPROCS sets the service's GOMAXPROCS, and
// OVERLOAD_CPUS pins the service to those CPUs (taskset -c); run the
// benchmark itself under taskset on the others to give the generator cores
// of its own.
func BenchmarkOverload(b *testing.B) {
	modes := strings.Fields(os.Getenv("OVERLOAD_MODES"))
	if len(modes) == 0 {
		modes = []string{"auto", "off"}
	}
	for range b.N {
		for _, mode := range modes {
			b.Run(mode, func(b *testing.B) { overload(b, mode) })
		}
	}
}

func overload(b *testing.B, mode string) {
	// At most 4,000 connections, so that a service without a limit, which
	// holds every request it reads, does not exhaust the generator's files;
	// a request beyond them waits for one, on its own clock.
	client := &http.Client{Timeout: 5 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 1000, MaxConnsPerHost: 4000}}
	var url, port string
	get := func() (int, time.Duration, error) {
		start := time.Now()
		res, err := client.Get(url)
		if err != nil {
			return 0, time.Since(start), err
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode, time.Since(start), nil
	}
	// run starts the service with the concurrency setting, and returns its
	// pid and a function that stops it.
	run := func(setting string) (int, func()) {
		dir := b.TempDir()
		port = strconv.Itoa(testport.Free(b))
		url = "http://127.0.0.1:" + port + "/cpu"
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		if cpus := os.Getenv("OVERLOAD_CPUS"); cpus != "" {
			cmd = exec.Command("taskset", "-c", cpus, os.Args[0], "-test.run=^$")
		}
		cmd.Env = append(os.Environ(), "PLATFORM_TEST_SERVICE=cpu", "PORT="+port,
			"FLOTILLA_DB="+filepath.Join(dir, "f.db"), "FLOTILLA_REGISTRY=", "FLOTILLA_CONCURRENCY="+setting)
		if p := os.Getenv("OVERLOAD_GOMAXPROCS"); p != "" {
			cmd.Env = append(cmd.Env, "GOMAXPROCS="+p)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		untilOK(b, client, url, 20*time.Second)
		return cmd.Process.Pid, func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }
	}
	// Capacity: 4 clients, closed loop, 3 s, with no limit (which would
	// shed some of them).
	_, stop := run("off")
	var done atomic.Int64
	var wg sync.WaitGroup
	end := time.Now().Add(3 * time.Second)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				if code, _, err := get(); err == nil && code == 200 {
					done.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	stop()
	capacity := float64(done.Load()) / 3

	pid, stop := run(mode)
	defer stop()
	// Unloaded p99: one client.
	var lat []time.Duration
	for range 300 {
		_, d, _ := get()
		lat = append(lat, d)
	}
	unloaded := p99(lat)
	// Open loop at 4× capacity for 15 s.
	const secs = 15
	interval := time.Duration(float64(time.Second) / (4 * capacity))
	var (
		mu                 sync.Mutex
		good               []time.Duration
		shed, failed, sent int
	)
	// The limit /health reports, at the end of the overload.
	limit := -1.0
	readLimit := func() {
		res, err := client.Get("http://127.0.0.1:" + port + "/health")
		if err != nil {
			return
		}
		defer res.Body.Close()
		var h health.Response
		if json.NewDecoder(res.Body).Decode(&h) == nil {
			if c := h.Checks["concurrency:limit"]; len(c) == 1 {
				if v, ok := c[0].ObservedValue.(float64); ok {
					limit = v
				}
			}
		}
	}
	// The pacer sends every request that is due by now, so a wake-up
	// that comes late (the cores are busy, or the runtime rounds a short
	// sleep up to a millisecond) delays requests but never drops them:
	// the offer stays at 4× however late the generator runs.
	send := func() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, d, err := get()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				failed++
			case code == 200:
				good = append(good, d)
			case code == 503:
				shed++
			default:
				failed++
			}
		}()
	}
	svc0, self0 := cpuTime(b, pid), cpuTime(b, os.Getpid())
	for start := time.Now(); ; time.Sleep(interval) {
		elapsed := time.Since(start)
		if elapsed >= secs*time.Second {
			break
		}
		for due := int(elapsed/interval) + 1; sent < due; sent++ {
			send()
		}
	}
	svc1, self1 := cpuTime(b, pid), cpuTime(b, os.Getpid())
	readLimit()
	wg.Wait()
	b.ReportMetric((svc1-svc0).Seconds()/secs, "service-cpus")
	b.ReportMetric((self1-self0).Seconds()/secs, "generator-cpus")
	b.ReportMetric(capacity, "capacity-req/s")
	b.ReportMetric(limit, "limit-at-end")
	b.ReportMetric(float64(len(good))/secs/capacity*100, "goodput-%")
	b.ReportMetric(float64(unloaded.Microseconds())/1000, "unloaded-p99-ms")
	b.ReportMetric(float64(p99(good).Microseconds())/1000, "loaded-p99-ms")
	b.ReportMetric(float64(shed), "shed")
	b.ReportMetric(float64(failed), "timeouts-errors")
	b.ReportMetric(float64(sent), "offered")
	b.ReportMetric(0, "ns/op")
}

func p99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)*99+99)/100-1]
}

// BenchmarkBudgetChain runs a three-hop chain, svc-a → svc-b → svc-c, in
// three processes, where svc-a (the edge) gives each request 100 ms and
// svc-c spins the CPU for a second unless its request ends first. It sends
// 10 such requests in turn, each followed by a quick one, three ways in one
// run: the calls carry the deadline
// budget (budget), only the cancellation of the caller's request (cancel:
// no budget header, the connection closed when the caller gives up), or
// neither (none: each hop waits for the next, so the edge answers after a
// second). It reports, from the shared log, how long past the edge's 100 ms
// each hop worked at most (negative: it ended before), and svc-c's CPU time
// per request.
// Run it with -benchtime 1x.
func BenchmarkBudgetChain(b *testing.B) {
	for range b.N {
		for _, mode := range []string{"budget", "cancel", "none"} {
			b.Run(mode, func(b *testing.B) { budgetChain(b, mode) })
		}
	}
}

func budgetChain(b *testing.B, mode string) {
	const (
		calls = 10
		edge  = 100 * time.Millisecond
	)
	dir, err := os.MkdirTemp("", "flotilla-chain-") // short, for the sockets' paths
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, reg := filepath.Join(dir, "flotilla.db"), filepath.Join(dir, "flotilla.toml")
	names := []string{"svc-a", "svc-b", "svc-c"}
	if err := writeRegistry(reg, names...); err != nil {
		b.Fatal(err)
	}
	procs := map[string]*exec.Cmd{}
	for _, n := range names {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "PLATFORM_TEST_SERVICE="+n, "FLOTILLA_REGISTRY="+reg, "FLOTILLA_DB="+db,
			"PLATFORM_TEST_CHAIN_MODE="+mode)
		if n == "svc-a" {
			cmd.Env = append(cmd.Env, "PLATFORM_TEST_REQUEST_TIMEOUT="+edge.String())
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
		procs[n] = cmd
	}
	client := func(name string) *http.Client {
		sock := filepath.Join(dir, "run", name+".sock")
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			}}}
	}
	for _, n := range names {
		untilOK(b, client(n), "http://"+n+"/health", 20*time.Second)
	}
	cpu0 := cpuTime(b, procs["svc-c"].Process.Pid)
	edgeClient := client("svc-a")
	for range calls {
		// Each slow request, then a quick one: its success keeps the
		// breakers closed, as steady traffic would.
		for _, path := range []string{"/chain/svc-b/svc-c/spin", "/chain/svc-b/svc-c"} {
			res, err := edgeClient.Get("http://svc-a" + path)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	}
	// Stopped, each has written its rows, retried attempts' included, and
	// svc-c has spun for the last time.
	for _, n := range names {
		procs[n].Process.Signal(syscall.SIGTERM)
		if err := procs[n].Wait(); err != nil {
			b.Fatalf("%s: %v", n, err)
		}
	}
	st := procs["svc-c"].ProcessState
	cpu := st.UserTime() + st.SystemTime() - cpu0
	r, err := logger.OpenReader(db)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	rows, err := r.Requests(context.Background(), logger.Query{Route: "/chain/*"})
	if err != nil {
		b.Fatal(err)
	}
	starts := map[string]time.Time{}
	for _, row := range rows {
		if row.Service == "svc-a" && strings.HasSuffix(row.Path, "/spin") {
			starts[row.TraceID] = row.Time
		}
	}
	past := map[string]time.Duration{}
	for _, row := range rows {
		start, ok := starts[row.TraceID]
		if !ok {
			continue // a quick request's
		}
		d := row.Time.Add(row.Duration).Sub(start.Add(edge)) // < 0: it ended before the edge's deadline
		if p, seen := past[row.Service]; !seen || d > p {
			past[row.Service] = d
		}
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(past["svc-a"]), "edge-past-ms")
	b.ReportMetric(ms(past["svc-b"]), "hop2-past-ms")
	b.ReportMetric(ms(past["svc-c"]), "hop3-past-ms")
	b.ReportMetric(ms(cpu)/calls, "hop3-cpu-ms/req")
	b.ReportMetric(0, "ns/op")
}

// cpuTime returns the user and system CPU time pid has used, to the clock
// tick (10 ms).
func cpuTime(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // from field 3, the state
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: %q", pid, s)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
