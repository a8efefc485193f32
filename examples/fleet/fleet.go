package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/flotilla-go/flotilla/discovery"
)

type config struct {
	n          int
	dir        string
	restartAll int
	bench      bool
	lean       bool // build with -tags flotilla_lean
}

// examples are the example services: name in the port map, package, and
// whether the gateway may expose them.
var examples = []struct {
	name, pkg string
	public    bool
	unix      bool
}{
	{"agent-gateway", "gateway", false, false},
	{"agent-geo", "geo", true, true},
	{"crypto-feeds", "crypto", true, true},
	{"upstream", "upstream", false, false},
	{"healthmon", "healthmon", false, true},
	{"dashboard", "dashboard", false, false},
	{"echo-first", "echosvc", true, false},
}

type member struct {
	name string
	args []string
	bin  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

type fleet struct {
	cfg     config
	out     io.Writer
	reg     *discovery.Registry
	client  *http.Client
	members []*member
	gateway string // http://127.0.0.1:PORT
	// expected counts the requests sent per (service, route), which must
	// all be in the log.
	mu       sync.Mutex
	expected map[[2]string]int
	crashes  int
}

// Report is the fleet's figures, printed as one JSON line.
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

// start builds the binaries, writes the port map and starts the fleet.
func start(ctx context.Context, cfg config, out io.Writer) (*fleet, error) {
	f := &fleet{cfg: cfg, out: out, expected: map[[2]string]int{}}
	bin := filepath.Join(cfg.dir, "bin")
	for _, d := range []string{cfg.dir, bin, filepath.Join(cfg.dir, "logs")} {
		if err := safeDir(d); err != nil {
			return nil, err
		}
	}
	// A fresh log and port map every run.
	for _, name := range []string{"flotilla.db", "flotilla.db-wal", "flotilla.db-shm", "gateway-keys.db", "gateway-keys.db-wal", "gateway-keys.db-shm"} {
		os.Remove(filepath.Join(cfg.dir, name))
	}
	kind := "with their exporters, and gRPC's grpcnotrace tag, which lets the linker drop unused code"
	if cfg.lean {
		kind = "lean: without the OTLP and Prometheus exporters, which the fleet does not use; -full builds them in"
	}
	fmt.Fprintf(out, "building the example services into %s (%s) ...\n", bin, kind)
	pkgs := []string{}
	for _, e := range examples {
		if !slices.Contains(pkgs, "./examples/"+e.pkg) {
			pkgs = append(pkgs, "./examples/"+e.pkg)
		}
	}
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	tags := "grpcnotrace"
	if cfg.lean {
		tags = "flotilla_lean"
	}
	args := []string{"build", "-tags", tags, "-o", bin + "/"}
	build := exec.CommandContext(ctx, "go", append(args, pkgs...)...)
	build.Dir = root
	if b, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build: %v: %s", err, b)
	}

	regPath := filepath.Join(cfg.dir, "flotilla.toml")
	if err := writeRegistry(regPath, cfg.n, cfg.bench); err != nil {
		return nil, err
	}
	f.reg, err = discovery.Load(regPath)
	if err != nil {
		return nil, err
	}
	f.client = &http.Client{Transport: f.reg.Transport(nil), Timeout: 10 * time.Second}
	f.gateway = "http://agent-gateway" // through the port map's transport
	if gw, _ := f.reg.Lookup("agent-gateway"); gw.Network == "tcp" {
		f.gateway = "http://" + gw.Address
	}
	for i, s := range f.reg.Services() {
		m := &member{name: s.Name}
		switch {
		case i < len(examples):
			m.bin = filepath.Join(bin, examples[i].pkg)
			switch examples[i].pkg {
			case "echosvc":
				m.args = []string{s.Name}
			case "gateway":
				// The demo's traffic calls every service with one key;
				// the benchmark sends far more.
				m.args = []string{"-rate", "200", "-burst", "200"}
				if cfg.bench {
					m.args = []string{"-rate", "1e9", "-burst", "1000000", "-credits", "1000000000"}
				}
			case "healthmon":
				m.args = []string{"-interval", "5s"}
			}
		default:
			m.bin = filepath.Join(bin, "echosvc")
			m.args = []string{s.Name}
		}
		f.members = append(f.members, m)
	}
	return f, nil
}

// writeRegistry writes the port map: the examples, then svc-NN echo
// services alternating between unix sockets and ports.
// With bench, the gateway too is on a socket, so that requests through
// nginx cross unix sockets only.
func writeRegistry(path string, n int, bench bool) error {
	var b strings.Builder
	b.WriteString("# The demo fleet's port map, written by examples/fleet.\n[defaults]\ndb = \"flotilla.db\"\nsocket_dir = \"run\"\n")
	add := func(name string, public, unix bool) error {
		fmt.Fprintf(&b, "\n[[service]]\nname = %q\n", name)
		if public {
			b.WriteString("public = true\n")
		}
		if !unix {
			port, err := freePort()
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "port = %d\n", port)
		}
		return nil
	}
	for _, e := range examples {
		if err := add(e.name, e.public, e.unix || (bench && e.name == "agent-gateway")); err != nil {
			return err
		}
	}
	for i := len(examples); i < n; i++ {
		if err := add(fmt.Sprintf("svc-%02d", i-len(examples)+1), true, i%2 == 0); err != nil {
			return err
		}
	}
	return writeFile(path, []byte(b.String()), 0o600)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run the fleet from inside the flotilla module")
	}
	return filepath.Dir(mod), nil
}

// launch starts every member at once.
func (f *fleet) launch() error {
	regPath := filepath.Join(f.cfg.dir, "flotilla.toml")
	for _, m := range f.members {
		logf, err := os.OpenFile(filepath.Join(f.cfg.dir, "logs", m.name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			return err
		}
		cmd := exec.Command(m.bin, m.args...)
		cmd.Dir = f.cfg.dir
		cmd.Env = append(os.Environ(), "FLOTILLA_REGISTRY="+regPath)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			return fmt.Errorf("start %s: %w", m.name, err)
		}
		logf.Close()
		m.cmd, m.done = cmd, make(chan struct{})
		go func() { m.err = cmd.Wait(); close(m.done) }()
	}
	return nil
}

// waitHealthy polls every /health until all pass.
func (f *fleet) waitHealthy(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	pending := map[string]bool{}
	for _, m := range f.members {
		pending[m.name] = true
	}
	for len(pending) > 0 {
		for name := range pending {
			for _, m := range f.members {
				if m.name == name {
					select {
					case <-m.done:
						return fmt.Errorf("%s exited: %v (see %s)", name, m.err, filepath.Join(f.cfg.dir, "logs", name+".log"))
					default:
					}
				}
			}
			s, _ := f.reg.Service(name)
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+name+s.Health, nil) // readiness, not liveness
			res, err := f.client.Do(req)
			if err != nil {
				continue
			}
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				delete(pending, name)
			}
		}
		if len(pending) == 0 {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not healthy after 60s: %v", keys(pending))
		}
		time.Sleep(2 * time.Millisecond)
	}
	return nil
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// stopAll sends SIGTERM to every member at once and waits; a member that
// does not exit 0 is a crash.
func (f *fleet) stopAll() {
	for _, m := range f.members {
		if m.cmd != nil {
			m.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, m := range f.members {
		if m.cmd == nil {
			continue
		}
		select {
		case <-m.done:
		case <-time.After(30 * time.Second):
			m.cmd.Process.Kill()
			<-m.done
		}
		if m.err != nil {
			f.crashes++
			fmt.Fprintf(f.out, "crash: %s: %v\n", m.name, m.err)
		}
		m.cmd = nil
	}
}

// traffic sends a little traffic through the gateway and directly, and
// counts what the log must hold.
func (f *fleet) traffic(ctx context.Context) (int, error) {
	key, err := f.newKey(ctx)
	if err != nil {
		return 0, err
	}
	calls := []struct{ service, path, route string }{
		{"agent-geo", "/geo/192.0.2.1", "/geo/:ip"},
		{"crypto-feeds", "/api/prices", "/api/prices"},
		{"echo-first", "/echo/hello", "/echo/*"},
	}
	for _, m := range f.members[len(examples):] {
		calls = append(calls, struct{ service, path, route string }{m.name, "/echo/hi", "/echo/*"})
	}
	sent := 1
	for _, c := range calls {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.gateway+"/v1/"+c.service+c.path, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		res, err := f.client.Do(req)
		if err != nil {
			return sent, fmt.Errorf("%s through the gateway: %w", c.service, err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return sent, fmt.Errorf("%s through the gateway: %s", c.service, res.Status)
		}
		f.count("agent-gateway", "/v1/:service/*")
		f.count(c.service, c.route)
		if c.service == "crypto-feeds" {
			f.count("upstream", "/prices")
		}
		sent++
	}
	return sent, nil
}

func (f *fleet) count(service, route string) {
	f.mu.Lock()
	f.expected[[2]string{service, route}]++
	f.mu.Unlock()
}

// exercise launches the fleet, waits for it, sends traffic, and restarts
// it as asked.
func (f *fleet) exercise(ctx context.Context) (Report, error) {
	r := Report{Services: len(f.members), Lean: f.cfg.lean}
	t0 := time.Now()
	if err := f.launch(); err != nil {
		return r, err
	}
	if err := f.waitHealthy(ctx); err != nil {
		return r, err
	}
	r.StartToHealthy = float64(time.Since(t0).Microseconds()) / 1000
	fmt.Fprintf(f.out, "%d services healthy %.0f ms after they were started together\n", len(f.members), r.StartToHealthy)
	n, err := f.traffic(ctx)
	r.Requests += n
	if err != nil {
		return r, err
	}
	r.TotalRSSMB, r.MedianRSSMB, r.TotalPSSMB = f.memory()
	fmt.Fprintf(f.out, "gateway:   %s (POST /api/keys/create, then /v1/<service>/... with Authorization: Bearer <key>)\n", f.gateway)
	if ep, err := f.reg.Lookup("dashboard"); err == nil {
		fmt.Fprintf(f.out, "dashboard: http://%s/\n", ep.Address)
	}
	fmt.Fprintf(f.out, "port map:  %s\nshared log: %s\nlogs:      %s\n", f.reg.Path(), filepath.Join(f.cfg.dir, "flotilla.db"), filepath.Join(f.cfg.dir, "logs"))
	fmt.Fprintf(f.out, "operate:   go run ./cmd/flotilla --registry %s ps   (or top, logs -f, restart --all)\n", f.reg.Path())
	fmt.Fprintf(f.out, "memory:    %.0f MB RSS in all (%.0f MB PSS, counting shared executable pages once), median %.1f MB per service\n", r.TotalRSSMB, r.TotalPSSMB, r.MedianRSSMB)

	var restartMS []float64
	for i := 1; i <= f.cfg.restartAll; i++ {
		f.stopAll()
		t := time.Now()
		if err := f.launch(); err != nil {
			return r, err
		}
		if err := f.waitHealthy(ctx); err != nil {
			return r, err
		}
		restartMS = append(restartMS, float64(time.Since(t).Microseconds())/1000)
		n, err := f.traffic(ctx)
		r.Requests += n
		if err != nil {
			return r, err
		}
		r.Restarts = i
		fmt.Fprintf(f.out, "restart %d of %d: all %d healthy again in %.0f ms, %d crashes so far\n", i, f.cfg.restartAll, len(f.members), restartMS[len(restartMS)-1], f.crashes)
	}
	if len(restartMS) > 0 {
		slices.Sort(restartMS)
		r.RestartHealthyMS = restartMS[len(restartMS)/2]
	}
	if f.cfg.bench {
		if err := f.throughput(ctx, &r); err != nil {
			return r, err
		}
	}
	return r, nil
}

// finish stops the fleet and counts crashes and lost rows.
func (f *fleet) finish(r *Report) error {
	f.stopAll()
	r.Crashes = f.crashes
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(f.cfg.dir, "flotilla.db")+"?_busy_timeout=5000")
	if err != nil {
		return err
	}
	defer db.Close()
	for k, want := range f.expected {
		var got int
		if err := db.QueryRow(`SELECT count(*) FROM requests WHERE service = ? AND route = ?`, k[0], k[1]).Scan(&got); err != nil {
			return err
		}
		if got < want {
			r.LostRows += want - got
			fmt.Fprintf(f.out, "lost rows: %s %s: %d of %d logged\n", k[0], k[1], got, want)
		}
	}
	fmt.Fprintf(f.out, "stopped: %d crashes, %d lost log rows\n", r.Crashes, r.LostRows)
	return nil
}

// memory returns the fleet's total and median resident memory (RSS) and its
// proportional set size (PSS, which counts pages shared between processes,
// such as one executable's code, once), in MB.
func (f *fleet) memory() (total, median, pss float64) {
	var all []float64
	for _, m := range f.members {
		if m.cmd == nil {
			continue
		}
		pid := m.cmd.Process.Pid
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
