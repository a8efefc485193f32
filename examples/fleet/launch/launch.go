// Package launch runs the demo fleet: it builds the example services,
// writes a port map for n of them (the examples, then svc-NN echo services,
// half on unix sockets, half on ports), starts each as its own process, and
// stops them. examples/fleet is the demo built on it; the bench module's
// fleet command measures the same fleet with it.
//
// It builds the services with -tags grpcnotrace, or -tags flotilla_lean
// with Lean. The folder it is given holds everything: the port map
// (flotilla.toml), the shared log (flotilla.db), the sockets (run/), each
// service's output (logs/) and the binaries (bin/).
package launch

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/flotilla-go/flotilla/discovery"
)

// examples are the example services: name in the port map, package,
// whether the gateway may expose them, and whether they listen on a unix
// socket.
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

// MinServices is the smallest fleet: the example services.
var MinServices = len(examples)

// Option changes how Start builds and configures the fleet.
type Option func(*settings)

type settings struct {
	lean, load bool
}

// Lean builds the services without the OTLP and Prometheus exporters
// (-tags flotilla_lean). Default: with them, and gRPC's grpcnotrace tag.
func Lean() Option { return func(s *settings) { s.lean = true } }

// ForLoad sets the fleet up for a load generator: the gateway on a unix
// socket (so that requests through nginx cross unix sockets only) and
// without its rate limit and credit checks running out. Default: the
// gateway on a port, limited to 200 requests a second per key.
func ForLoad() Option { return func(s *settings) { s.load = true } }

// Fleet is the demo fleet's processes and what was sent to them.
type Fleet struct {
	dir     string
	out     io.Writer
	reg     *discovery.Registry
	client  *http.Client
	members []*member
	gateway string

	mu       sync.Mutex
	expected map[[2]string]int // requests sent per (service, route), all of which the log must hold
	crashes  int
}

type member struct {
	name string
	bin  string
	args []string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start builds the example services into dir/bin, writes the port map of
// n services to dir/flotilla.toml and removes the log of an earlier run. It
// starts no process: Launch does. dir is made 0700 if it is missing, and
// refused if another user could have prepared it. Progress goes to out.
func Start(ctx context.Context, dir string, n int, out io.Writer, opts ...Option) (*Fleet, error) {
	var s settings
	for _, o := range opts {
		o(&s)
	}
	if n < MinServices {
		return nil, fmt.Errorf("a fleet of %d: it needs at least %d services, the examples", n, MinServices)
	}
	f := &Fleet{dir: dir, out: out, expected: map[[2]string]int{}}
	bin := filepath.Join(dir, "bin")
	for _, d := range []string{dir, bin, filepath.Join(dir, "logs")} {
		if err := safeDir(d); err != nil {
			return nil, err
		}
	}
	for _, name := range []string{"flotilla.db", "flotilla.db-wal", "flotilla.db-shm", "gateway-keys.db", "gateway-keys.db-wal", "gateway-keys.db-shm"} {
		os.Remove(filepath.Join(dir, name))
	}
	if err := build(ctx, bin, s.lean, out); err != nil {
		return nil, err
	}
	regPath := filepath.Join(dir, "flotilla.toml")
	if err := writeRegistry(regPath, n, s.load); err != nil {
		return nil, err
	}
	var err error
	if f.reg, err = discovery.Load(regPath); err != nil {
		return nil, err
	}
	f.client = &http.Client{Transport: f.reg.Transport(nil), Timeout: 10 * time.Second}
	f.gateway = "http://agent-gateway" // through the port map's transport
	if gw, _ := f.reg.Lookup("agent-gateway"); gw.Network == "tcp" {
		f.gateway = "http://" + gw.Address
	}
	for i, svc := range f.reg.Services() {
		m := &member{name: svc.Name, bin: filepath.Join(bin, "echosvc"), args: []string{svc.Name}}
		if i < len(examples) {
			m.bin, m.args = filepath.Join(bin, examples[i].pkg), nil
			switch examples[i].pkg {
			case "echosvc":
				m.args = []string{svc.Name}
			case "gateway":
				m.args = []string{"-rate", "200", "-burst", "200"} // the demo's traffic calls every service with one key
				if s.load {
					m.args = []string{"-rate", "1e9", "-burst", "1000000", "-credits", "1000000000"}
				}
			case "healthmon":
				m.args = []string{"-interval", "5s"}
			}
		}
		f.members = append(f.members, m)
	}
	return f, nil
}

// build builds the example packages into bin.
func build(ctx context.Context, bin string, lean bool, out io.Writer) error {
	kind, tags := "with their exporters, and gRPC's grpcnotrace tag, which lets the linker drop unused code", "grpcnotrace"
	if lean {
		kind, tags = "lean: without the OTLP and Prometheus exporters, which the fleet does not use", "flotilla_lean"
	}
	fmt.Fprintf(out, "building the example services into %s (%s) ...\n", bin, kind)
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	var pkgs []string
	for _, e := range examples {
		if !slices.Contains(pkgs, "./examples/"+e.pkg) {
			pkgs = append(pkgs, "./examples/"+e.pkg)
		}
	}
	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-tags", tags, "-o", bin + "/"}, pkgs...)...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build: %v: %s", err, b)
	}
	return nil
}

// moduleRoot is the flotilla module's folder, from it or from a module
// that requires it (the bench module).
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "github.com/flotilla-go/flotilla").Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		return "", errors.New("run the fleet from inside the flotilla module or the bench module")
	}
	return dir, nil
}

// writeRegistry writes the port map: the examples, then svc-NN echo
// services alternating between unix sockets and ports.
func writeRegistry(path string, n int, load bool) error {
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
		if err := add(e.name, e.public, e.unix || (load && e.name == "agent-gateway")); err != nil {
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

// Launch starts every service at once, each as its own process (in a
// process group of its own) with the port map in FLOTILLA_REGISTRY and its
// output in dir/logs/NAME.log.
func (f *Fleet) Launch() error {
	for _, m := range f.members {
		logf, err := os.OpenFile(filepath.Join(f.dir, "logs", m.name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			return err
		}
		cmd := exec.Command(m.bin, m.args...)
		cmd.Dir = f.dir
		cmd.Env = append(os.Environ(), "FLOTILLA_REGISTRY="+f.reg.Path())
		cmd.Stdout, cmd.Stderr = logf, logf
		// A group of its own: a terminal's Ctrl-C reaches the launcher
		// alone, which stops every service with one SIGTERM (Stop). A
		// second signal would make a service in its drain give up at once.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		err = cmd.Start()
		logf.Close()
		if err != nil {
			return fmt.Errorf("start %s: %w", m.name, err)
		}
		m.cmd, m.done = cmd, make(chan struct{})
		go func() { m.err = cmd.Wait(); close(m.done) }()
	}
	return nil
}

// WaitHealthy polls every service's /health until all pass, for at most
// 60 s. A service that exits meanwhile is an error naming its log.
func (f *Fleet) WaitHealthy(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	pending := map[*member]bool{}
	for _, m := range f.members {
		pending[m] = true
	}
	for len(pending) > 0 {
		for m := range pending {
			select {
			case <-m.done:
				return fmt.Errorf("%s exited: %v (see %s)", m.name, m.err, filepath.Join(f.dir, "logs", m.name+".log"))
			default:
			}
			s, _ := f.reg.Service(m.name)
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.name+s.Health, nil) // readiness, not liveness
			if res, err := f.client.Do(req); err == nil {
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					delete(pending, m)
				}
			}
		}
		switch {
		case len(pending) == 0:
		case ctx.Err() != nil:
			return ctx.Err()
		case time.Now().After(deadline):
			var names []string
			for m := range pending {
				names = append(names, m.name)
			}
			slices.Sort(names)
			return fmt.Errorf("not healthy after 60s: %v", names)
		default:
			time.Sleep(2 * time.Millisecond)
		}
	}
	return nil
}

// Stop sends SIGTERM to every service at once and waits for each, killing
// one still running after 30 s. A service that does not exit 0 counts as a
// crash (see Crashes) and is reported to out.
func (f *Fleet) Stop() {
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

// Crashes is the number of services that did not exit 0 in every Stop so
// far.
func (f *Fleet) Crashes() int { return f.crashes }

// PIDs returns the process ids of the running services.
func (f *Fleet) PIDs() []int {
	var out []int
	for _, m := range f.members {
		if m.cmd != nil {
			out = append(out, m.cmd.Process.Pid)
		}
	}
	return out
}

// Size is the number of services.
func (f *Fleet) Size() int { return len(f.members) }

// Registry is the fleet's port map.
func (f *Fleet) Registry() *discovery.Registry { return f.reg }

// Client calls the fleet's services by name, through the port map.
func (f *Fleet) Client() *http.Client { return f.client }

// Gateway is the gateway's base URL, http://127.0.0.1:PORT, or
// http://agent-gateway for Client when it is on a socket (ForLoad).
func (f *Fleet) Gateway() string { return f.gateway }

// Traffic sends one request through the gateway to each public service
// (and so to upstream behind crypto-feeds), with a new key, and counts what
// the log must hold. It returns the number of requests sent.
func (f *Fleet) Traffic(ctx context.Context) (int, error) {
	key, err := f.NewKey(ctx)
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

// NewKey creates a gateway key, counted as a request the log must hold.
func (f *Fleet) NewKey(ctx context.Context) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://agent-gateway/api/keys/create", nil)
	res, err := f.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("create key: %w", err)
	}
	defer res.Body.Close()
	var k struct {
		Key string `json:"key"`
	}
	if err := json.NewDecoder(res.Body).Decode(&k); err != nil || k.Key == "" {
		return "", fmt.Errorf("create key: %s", res.Status)
	}
	f.count("agent-gateway", "/api/keys/create")
	return k.Key, nil
}

func (f *Fleet) count(service, route string) {
	f.mu.Lock()
	f.expected[[2]string{service, route}]++
	f.mu.Unlock()
}

// LostRows counts the requests that Traffic and NewKey sent and the shared
// log does not hold, reporting each shortfall to out. Call it after Stop,
// when every service has written its last rows.
func (f *Fleet) LostRows() (int, error) {
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(f.dir, "flotilla.db")+"?_busy_timeout=5000")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	lost := 0
	for k, want := range f.expected {
		var got int
		if err := db.QueryRow(`SELECT count(*) FROM requests WHERE service = ? AND route = ?`, k[0], k[1]).Scan(&got); err != nil {
			return lost, err
		}
		if got < want {
			lost += want - got
			fmt.Fprintf(f.out, "lost rows: %s %s: %d of %d logged\n", k[0], k[1], got, want)
		}
	}
	return lost, nil
}
