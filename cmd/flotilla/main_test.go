package main

import (
	"bufio"
	"bytes"
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
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/discovery"
	"github.com/flotilla-go/flotilla/internal/testport"
	"github.com/flotilla-go/flotilla/internal/testwait"
	"github.com/flotilla-go/flotilla/logger"
	"github.com/flotilla-go/flotilla/platform"
)

// The test binary is also a fleet member (FLOTILLA_TEST_SERVICE), a writer
// of the shared log (FLOTILLA_TEST_WRITER), and the flotilla command itself
// (FLOTILLA_TEST_CLI), for the tests that need real processes and a real
// terminal.
func TestMain(m *testing.M) {
	switch {
	case os.Getenv("FLOTILLA_TEST_SERVICE") != "":
		runService(os.Getenv("FLOTILLA_TEST_SERVICE"))
	case os.Getenv("FLOTILLA_TEST_WRITER") != "":
		os.Exit(runWriter(os.Getenv("FLOTILLA_TEST_WRITER")))
	case os.Getenv("FLOTILLA_TEST_CLI") == "1":
		main()
	}
	os.Exit(m.Run())
}

// runService is a fleet member: /work answers 200, /fail 500, and
// /call/:svc calls /work of a sibling through platform.Client.
func runService(name string) {
	app := echo.New()
	app.GET("/work", func(c echo.Context) error { return c.String(http.StatusOK, "ok") })
	app.GET("/fail", func(c echo.Context) error { return echo.NewHTTPError(http.StatusInternalServerError, "boom") })
	app.GET("/call/:svc", func(c echo.Context) error {
		req, err := http.NewRequestWithContext(c.Request().Context(), http.MethodGet, "http://"+c.Param("svc")+"/work", nil)
		if err != nil {
			return err
		}
		res, err := platform.Client().Do(req)
		if err != nil {
			return err
		}
		res.Body.Close()
		return c.String(res.StatusCode, "called")
	})
	platform.Main(app, name)
}

// runWriter logs n rows as service to FLOTILLA_DB, flushing in small
// batches, as a busy service does.
func runWriter(spec string) int {
	service, nStr, _ := strings.Cut(spec, ",")
	n, _ := strconv.Atoi(nStr)
	s, err := logger.Open(os.Getenv("FLOTILLA_DB"), logger.WithFlushInterval(time.Millisecond))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for i := range n {
		s.Log(logger.Record{Service: service, Method: "GET", Path: "/w", Route: "/w", Status: 200, RequestID: fmt.Sprintf("%s-%d", service, i)})
		if i%29 == 28 {
			s.Flush(context.Background())
		}
	}
	if err := s.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// integration says whether a missing tool fails the test (in CI) or skips it.
func needTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("FLOTILLA_REQUIRE_INTEGRATION") != "" {
			t.Fatalf("%s is not installed (apt-get install %s)", name, name)
		}
		t.Skipf("%s is not installed", name)
	}
	return path
}

// testFleet is a small fleet of real processes: svc-a and svc-c on unix
// sockets, svc-b and svc-d on ports, each run from its own link to the
// test binary, so that one can be replaced.
type testFleet struct {
	t        *testing.T
	dir      string
	registry string
	db       string
	reg      *discovery.Registry
	client   *http.Client
}

var fleetNames = []string{"svc-a", "svc-b", "svc-c", "svc-d"}

func startFleet(t *testing.T) *testFleet {
	t.Helper()
	dir := t.TempDir()
	f := &testFleet{t: t, dir: dir, registry: filepath.Join(dir, "flotilla.toml"), db: filepath.Join(dir, "flotilla.db")}
	var b strings.Builder
	b.WriteString("[defaults]\ndb = \"flotilla.db\"\n")
	for i, name := range fleetNames {
		if i%2 == 0 {
			fmt.Fprintf(&b, "\n[[service]]\nname = %q\nsocket = \"run/%s.sock\"\n", name, name)
		} else {
			fmt.Fprintf(&b, "\n[[service]]\nname = %q\nport = %d\n", name, testport.Free(t))
		}
	}
	require.NoError(t, os.WriteFile(f.registry, []byte(b.String()), 0o600))
	reg, err := discovery.Load(f.registry)
	require.NoError(t, err)
	f.reg = reg
	f.client = &http.Client{Transport: reg.Transport(nil), Timeout: 10 * time.Second}
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "bin"), 0o755))
	for _, name := range fleetNames {
		bin := filepath.Join(dir, "bin", name)
		if os.Link(os.Args[0], bin) != nil {
			data, err := os.ReadFile(os.Args[0])
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(bin, data, 0o755))
		}
		logFile, err := os.Create(filepath.Join(dir, name+".log"))
		require.NoError(t, err)
		cmd := exec.Command(bin, "-test.run=^$")
		cmd.Env = append(os.Environ(), "FLOTILLA_TEST_SERVICE="+name, "FLOTILLA_REGISTRY="+f.registry,
			"FLOTILLA_SHUTDOWN_TIMEOUT=5s")
		cmd.Stdout, cmd.Stderr = logFile, logFile // a file: successors write to it after the first exits
		require.NoError(t, cmd.Start())
		go cmd.Wait()
		logFile.Close()
	}
	t.Cleanup(f.stop)
	f.waitHealthy()
	return f
}

// waitHealthy polls ps until every service passes.
func (f *testFleet) waitHealthy() {
	f.t.Helper()
	eventually(f.t, 20*time.Second, func() bool {
		rows := f.ps()
		for _, r := range rows {
			if r.State != "pass" || r.PID == 0 {
				return false
			}
		}
		return len(rows) == len(fleetNames)
	}, "the fleet did not come up", f.logs)
}

func (f *testFleet) logs() string {
	var b strings.Builder
	for _, name := range fleetNames {
		data, _ := os.ReadFile(filepath.Join(f.dir, name+".log"))
		fmt.Fprintf(&b, "== %s\n%s", name, data)
	}
	return b.String()
}

// stop sends SIGTERM to every service's current process and waits for
// them to end.
func (f *testFleet) stop() {
	services := f.reg.Services()
	procs := findProcs(context.Background(), services)
	for _, p := range procs {
		syscall.Kill(p.PID, syscall.SIGTERM)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, p := range procs {
		for running(p.PID) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if running(p.PID) {
			syscall.Kill(p.PID, syscall.SIGKILL)
		}
	}
}

// running reports whether pid is a live process (not a zombie).
func running(pid int) bool {
	_, ok := readProc(pid)
	return ok
}

// cli runs the flotilla command in this process with the fleet's map.
func (f *testFleet) cli(args ...string) (stdout, stderr string, code int) {
	return cli(append([]string{"--registry", f.registry}, args...)...)
}

func cli(args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	code = run(context.Background(), args, nil, &out, &errb)
	return out.String(), errb.String(), code
}

func (f *testFleet) ps() []serviceStatus {
	f.t.Helper()
	out, errOut, code := f.cli("ps", "--json")
	require.Equal(f.t, 0, code, errOut)
	var rows []serviceStatus
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r serviceStatus
		require.NoError(f.t, json.Unmarshal([]byte(line), &r), line)
		rows = append(rows, r)
	}
	return rows
}

// get sends GET path to service and returns the status.
func (f *testFleet) get(service, path string) (int, error) {
	res, err := f.client.Get("http://" + service + path)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, nil
}

// logRows runs logs --json with args and decodes its rows.
func (f *testFleet) logRows(args ...string) []logRow {
	f.t.Helper()
	out, errOut, code := f.cli(append([]string{"logs", "--json", "-n", "100000"}, args...)...)
	require.Equal(f.t, 0, code, errOut)
	var rows []logRow
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var r logRow
		require.NoError(f.t, json.Unmarshal(sc.Bytes(), &r))
		rows = append(rows, r)
	}
	return rows
}

// eventually is testwait.Until.
func eventually(t *testing.T, d time.Duration, cond func() bool, what string, detail ...func() string) {
	t.Helper()
	testwait.Until(t, d, cond, what, detail...)
}

// mask hides what changes from run to run in ps output: the folder, ports,
// and the numbers of each row, keeping "-" where a number is unknown.
func mask(out, dir string) string {
	out = strings.ReplaceAll(out, dir, "DIR")
	out = regexp.MustCompile(`127\.0\.0\.1:\d+`).ReplaceAllString(out, "127.0.0.1:PORT")
	number := regexp.MustCompile(`^[0-9.]+(%|M|ms|µs|s|m[0-9]+s|h[0-9]+m|d[0-9]+h)?$`)
	var b strings.Builder
	for i, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if i > 0 {
			for j := 3; j < len(f); j++ {
				if number.MatchString(f[j]) {
					f[j] = "N"
				}
			}
		}
		b.WriteString(strings.Join(f, " ") + "\n")
	}
	return b.String()
}

func TestCLI_PsLogsTrace(t *testing.T) {
	f := startFleet(t)
	for range 5 {
		code, err := f.get("svc-a", "/work")
		require.NoError(t, err)
		require.Equal(t, 200, code)
	}
	for range 2 {
		code, _ := f.get("svc-a", "/fail")
		require.Equal(t, 500, code)
	}
	for range 3 {
		code, _ := f.get("svc-a", "/nope")
		require.Equal(t, 404, code)
	}
	code, err := f.get("svc-a", "/call/svc-b")
	require.NoError(t, err)
	require.Equal(t, 200, code)
	const sent = 12 // 11 to svc-a, 1 from it to svc-b
	eventually(t, 10*time.Second, func() bool { return len(f.logRows()) >= sent }, "rows not logged")

	t.Run("logs", func(t *testing.T) {
		rows := f.logRows()
		assert.Len(t, rows, sent, "every request once, and no health probe")
		assert.Len(t, f.logRows("--status", "5xx"), 2)
		assert.Len(t, f.logRows("--status", "404"), 3)
		assert.Len(t, f.logRows("--route", "/work"), 6)
		assert.Len(t, f.logRows("svc-b"), 1)
		assert.Len(t, f.logRows("--since", "2000-01-01", "-n", "4"), 4)
		out, _, code := f.cli("logs", "-n", "2")
		require.Equal(t, 0, code)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		require.Len(t, lines, 2)
		assert.Regexp(t, `^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}  svc-[ab] +200  GET +/work  \S+  [0-9a-f]{32}$`, lines[1])
	})

	t.Run("ps", func(t *testing.T) {
		out, errOut, code := f.cli("ps")
		require.Equal(t, 0, code, errOut)
		assert.Empty(t, errOut)
		golden, err := os.ReadFile("testdata/ps.golden")
		require.NoError(t, err)
		assert.Equal(t, string(golden), mask(out, f.dir), out)

		for _, r := range f.ps() {
			assert.Equal(t, "pass", r.State, r.Name)
			assert.Positive(t, r.PID, r.Name)
			assert.Positive(t, r.RSS, r.Name)
			assert.NotNil(t, r.Started)
			if r.Name == "svc-a" {
				assert.EqualValues(t, 11, r.Requests)
				assert.InDelta(t, 100*3.0/11, r.ClientErrs, 1e-9)
				assert.InDelta(t, 100*2.0/11, r.ServerErrs, 1e-9)
				assert.Positive(t, r.P95)
			}
		}
	})

	t.Run("trace", func(t *testing.T) {
		b := f.logRows("svc-b")
		require.Len(t, b, 1)
		out, errOut, code := f.cli("trace", b[0].TraceID[:16])
		require.Equal(t, 0, code, errOut)
		assert.Contains(t, out, "trace "+b[0].TraceID+": 2 requests, 2 services")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		require.Len(t, lines, 4, out)
		assert.Regexp(t, `^\+0µs +\S+ +svc-a +200 +GET /call/:svc +\|█+ *\|`, lines[2])
		assert.Regexp(t, `^\+\S+ +\S+ +svc-b +200 +GET /work +\| *█+ *\|`, lines[3])

		byRequest, _, code := f.cli("trace", b[0].RequestID)
		require.Equal(t, 0, code)
		assert.Contains(t, byRequest, b[0].TraceID, "a request id finds its trace")

		_, errOut, code = f.cli("trace", "ffffffff")
		assert.Equal(t, 1, code)
		assert.Contains(t, errOut, `no trace id begins with "ffffffff"`)
	})

	t.Run("bad input", func(t *testing.T) {
		_, errOut, code := f.cli("logs", "--since", "yesterday")
		assert.Equal(t, 2, code)
		assert.Contains(t, errOut, `--since "yesterday": not a time; give a duration back from now (90s, 10m`)
		_, errOut, code = f.cli("ps", "svc-x")
		assert.Equal(t, 2, code)
		assert.Contains(t, errOut, `no service "svc-x" in `+f.registry+"; the services are: svc-a, svc-b, svc-c, svc-d")
		_, errOut, code = f.cli("logs", "--status", "6xx")
		assert.Equal(t, 2, code)
		assert.Contains(t, errOut, `--status "6xx"`)
		_, _, code = f.cli("nonsense")
		assert.Equal(t, 2, code)
		_, _, code = f.cli("ps", "--bogus")
		assert.Equal(t, 2, code)
		_, errOut, code = f.cli("restart")
		assert.Equal(t, 2, code)
		assert.Contains(t, errOut, "give the services to restart, or --all")

		missing := filepath.Join(f.dir, "elsewhere", "none.db")
		out, errOut, code := f.cli("--db", missing, "ps")
		assert.Equal(t, 0, code, "health is still shown")
		assert.Contains(t, errOut, "no request log at "+missing)
		assert.Contains(t, out, "svc-a")
		assert.NoFileExists(t, missing, "the command never creates the log")
		_, errOut, code = f.cli("--db", missing, "logs")
		assert.Equal(t, 1, code)
		assert.Contains(t, errOut, "no request log at "+missing)
	})
}

func TestCLI_Check(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "flotilla.toml")
	require.NoError(t, os.WriteFile(path, []byte(`[[service]]
name = "agent-geo"
prot = 3035

[[service]]
name = "Bad_Name"
port = 4001

[[service]]
name = "svc-c"
port = 4001
`), 0o600))
	out, _, code := cli("--registry", path, "check")
	assert.Equal(t, 1, code)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3, out)
	assert.Equal(t, path+`:3: unknown key "service.prot": did you mean "port"?`, lines[0])
	assert.Equal(t, path+`:6: service name "Bad_Name" is not a DNS label: use lowercase letters, digits and '-', at most 63, not starting or ending with '-'`, lines[1])
	assert.Equal(t, path+`:11: service "svc-c": port 4001 is already used by "Bad_Name"`, lines[2])

	out, _, code = cli("--registry", path, "check", "--json")
	assert.Equal(t, 1, code)
	var first finding
	require.NoError(t, json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &first))
	assert.Equal(t, finding{File: path, Line: 3, Severity: "error", Msg: `unknown key "service.prot": did you mean "port"?`}, first)

	// Every command gives the same errors for a broken map.
	_, errOut, code := cli("--registry", path, "ps")
	assert.Equal(t, 1, code)
	for _, l := range lines {
		assert.Contains(t, errOut, l)
	}

	good := filepath.Join(dir, "good.toml")
	require.NoError(t, os.WriteFile(good, []byte("[[service]]\nname = \"web\"\nport = 80\n"), 0o600))
	out, _, code = cli("--registry", good, "check")
	assert.Equal(t, 0, code, "warnings do not fail the check")
	assert.Contains(t, out, good+`:3: warning: service "web": port 80 is below 1024`)
	assert.Contains(t, out, good+": 1 services, ok")
}

// A service that accepts but never answers costs one probe timeout and is a
// row, as is one that refuses; ps itself succeeds.
func TestCLI_PsHungAndDownServices(t *testing.T) {
	dir := t.TempDir()
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer hung.Close()
	go func() {
		for {
			c, err := hung.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	path := filepath.Join(dir, "flotilla.toml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(`[[service]]
name = "hung"
port = %d

[[service]]
name = "gone"
port = %d

[[service]]
name = "nosock"
socket = "run/nosock.sock"
`, hung.Addr().(*net.TCPAddr).Port, testport.Free(t))), 0o600))
	out, errOut, code := cli("--registry", path, "--db", filepath.Join(dir, "none.db"), "ps", "--json", "--timeout", "200ms")
	require.Equal(t, 0, code, errOut)
	var rows []serviceStatus
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r serviceStatus
		require.NoError(t, json.Unmarshal([]byte(line), &r))
		rows = append(rows, r)
	}
	require.Len(t, rows, 3)
	assert.Equal(t, serviceStatus{Name: "hung", Endpoint: rows[0].Endpoint, State: "down", Reason: "timeout after 200ms", PID: rows[0].PID, Started: rows[0].Started, RSS: rows[0].RSS}, rows[0])
	assert.Equal(t, os.Getpid(), rows[0].PID, "the listener is this test's")
	assert.Equal(t, "down", rows[1].State)
	assert.Equal(t, "connection refused", rows[1].Reason)
	assert.Zero(t, rows[1].PID)
	assert.Equal(t, "down", rows[2].State)
	assert.Equal(t, "no socket file", rows[2].Reason)
}

func TestCLI_HelpAndCompletion(t *testing.T) {
	for _, sub := range []string{"check", "ps", "top", "logs", "trace", "restart", "nginx", "systemd", "up"} {
		out, _, code := cli(sub, "--help")
		assert.Equal(t, 0, code, sub)
		assert.Contains(t, out, "Examples:\n  flotilla "+sub, sub)
	}
	out, _, code := cli("completion", "bash")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "__start_flotilla")
}

// flotilla nginx writes the front door's configuration from the map, with a
// header naming it, atomically, and nginx -t accepts it.
func TestCLI_Nginx(t *testing.T) {
	needTool(t, "nginx")
	dir := t.TempDir()
	path := filepath.Join(dir, "flotilla.toml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(`[defaults]
socket_dir = "run"

[[service]]
name = "agent-gateway"
port = %d
public = true

[[service]]
name = "agent-geo"
public = true

[[service]]
name = "internal-only"
`, testport.Free(t))), 0o600))
	conf := filepath.Join(dir, "flotilla.conf")
	_, errOut, code := cli("--registry", path, "nginx", "--root", "agent-gateway", "-o", conf, "--check")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, errOut, "nginx -t: the configuration is valid")
	data, err := os.ReadFile(conf)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(data), "# Generated by flotilla from "+path+":"), string(data))
	assert.Contains(t, string(data), "unix:"+filepath.Join(dir, "run", "agent-geo.sock"))
	assert.NotContains(t, string(data), "internal-only")

	again, _, code := cli("--registry", path, "nginx", "--root", "agent-gateway")
	require.Equal(t, 0, code)
	assert.Equal(t, string(data), again, "stable output")

	_, errOut, code = cli("--registry", path, "nginx", "--root", "gateway")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, `no service "gateway"`)
}

// flotilla systemd writes the templates and a drop-in per service, each
// setting in its directive, and systemd-analyze verify takes them: the
// service whose exec exists has no complaint at all, which shows that its
// drop-in was read.
func TestCLI_Systemd(t *testing.T) {
	analyze := needTool(t, "systemd-analyze")
	dir := t.TempDir()
	path := filepath.Join(dir, "flotilla.toml")
	port := testport.Free(t)
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(`[defaults]
socket_dir = "/run/flotilla"

[[service]]
name = "agent-geo"
exec = %q
env = { GEO_DB = "/var/lib/geo 100%%.db", MODE = "fast" }
memory_max = "256M"
cpu_weight = 50
tasks_max = 64
restart = "always"

[[service]]
name = "agent-gateway"
port = %d

[[service]]
name = "remote"
srv = "_remote._tcp.example.com"
`, os.Args[0], port)), 0o600))
	units := filepath.Join(dir, "units")
	out, errOut, code := cli("--registry", path, "systemd", "--dir", units)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "systemctl enable --now flotilla@agent-geo.socket flotilla@agent-gateway.socket")
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(units, name))
		require.NoError(t, err)
		assert.True(t, strings.HasPrefix(string(b), "# Generated by flotilla from "+path+"."), name)
		return string(b)
	}
	geo := read("flotilla@agent-geo.service.d/flotilla.conf")
	for _, want := range []string{"ExecStart=\nExecStart=" + os.Args[0] + "\n", `Environment="FLOTILLA_REGISTRY=` + path + `"`,
		`Environment="GEO_DB=/var/lib/geo 100%%.db"`, `Environment="MODE=fast"`, "MemoryMax=256M\n", "CPUWeight=50\n", "TasksMax=64\n", "Restart=always\n"} {
		assert.Contains(t, geo, want)
	}
	assert.Contains(t, read("flotilla@agent-geo.socket.d/flotilla.conf"), "ListenStream=\nListenStream=/run/flotilla/agent-geo.sock\n")
	assert.Contains(t, read("flotilla@agent-gateway.socket.d/flotilla.conf"), fmt.Sprintf("ListenStream=127.0.0.1:%d\n", port))
	assert.Contains(t, read("flotilla@agent-gateway.service.d/flotilla.conf"), "ExecStart=/usr/local/bin/agent-gateway\n")
	read("flotilla@.service")
	_, err := os.Stat(filepath.Join(units, "flotilla@remote.service.d"))
	assert.True(t, os.IsNotExist(err), "a service elsewhere gets no unit")

	for name, allowed := range map[string]string{"agent-geo": "", "agent-gateway": "Command /usr/local/bin/agent-gateway is not executable"} {
		res, _ := exec.Command(analyze, "verify", filepath.Join(units, "flotilla@"+name+".socket"), filepath.Join(units, "flotilla@"+name+".service")).CombinedOutput()
		for _, line := range strings.Split(strings.TrimSpace(string(res)), "\n") {
			if line == "" || (allowed != "" && strings.Contains(line, allowed)) {
				continue
			}
			t.Errorf("systemd-analyze verify %s: %s", name, line)
		}
	}
	again, _, _ := cli("--registry", path, "systemd", "--dir", units)
	assert.Equal(t, out, again)
	assert.Equal(t, geo, read("flotilla@agent-geo.service.d/flotilla.conf"), "stable output")
}
