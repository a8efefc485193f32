package platform_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	_ "github.com/mattn/go-sqlite3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/flotilla-go/flotilla/health"
	"github.com/flotilla-go/flotilla/internal/testport"
	"github.com/flotilla-go/flotilla/internal/testwait"
	"github.com/flotilla-go/flotilla/internal/traceid"
	"github.com/flotilla-go/flotilla/platform"
)

// The test binary re-executes itself as a service: PLATFORM_TEST_SERVICE
// names it; its configuration comes from the FLOTILLA_* variables.
func TestMain(m *testing.M) {
	if name := os.Getenv("PLATFORM_TEST_SERVICE"); name != "" {
		runService(name)
		return
	}
	os.Exit(m.Run())
}

func runService(name string) {
	if os.Getenv("PLATFORM_TEST_SYSTEMD") != "" {
		// The test holds the socket as systemd does and passes it on fd 3;
		// systemd sets LISTEN_PID to the pid of the process it started,
		// which only that process knows here.
		os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	}
	if gate := os.Getenv("PLATFORM_TEST_GATE"); gate != "" && os.Getenv("FLOTILLA_LISTEN_PID_SELF") == "1" {
		// A successor that starts slowly: it says it is waiting, then
		// waits until the test opens the gate.
		os.WriteFile(gate+".waiting", nil, 0o600)
		untilFile(context.Background(), gate)
	}
	app := echo.New()
	var inflight atomic.Int32
	app.GET("/inflight", func(c echo.Context) error { return c.String(http.StatusOK, fmt.Sprint(inflight.Load())) })
	app.GET("/hello/:who", func(c echo.Context) error { return c.String(http.StatusOK, "hello "+c.Param("who")) })
	app.GET("/slow", func(c echo.Context) error {
		inflight.Add(1)
		defer inflight.Add(-1)
		time.Sleep(2 * time.Second) // a slow handler, as the service's own behaviour
		return c.String(http.StatusOK, "slow done")
	})
	var held atomic.Int32
	app.GET("/hold", func(c echo.Context) error {
		// Held until the test opens the gate: the file open in the folder
		// PLATFORM_TEST_HOLD, where each arrival leaves held.N.
		dir := os.Getenv("PLATFORM_TEST_HOLD")
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("held.%d", held.Add(1))), nil, 0o600)
		if err := untilFile(c.Request().Context(), filepath.Join(dir, "open")); err != nil {
			return err
		}
		return c.String(http.StatusOK, "released")
	})
	app.GET("/stuck", func(c echo.Context) error {
		inflight.Add(1)
		select {}
	})
	app.GET("/panic", func(c echo.Context) error { panic("nil map") })
	app.GET("/deadline", func(c echo.Context) error {
		<-c.Request().Context().Done()
		return c.Request().Context().Err()
	})
	app.GET("/chain/*", func(c echo.Context) error {
		// Call the next service of the path: /chain/b/c calls b's /chain/c.
		// A path that ends in /spin makes the last hop spin the CPU for up
		// to a second, and PLATFORM_TEST_CHAIN_MODE sends the calls with
		// the request's deadline (default), with its cancellation only
		// ("cancel"), or with neither ("none"), for BenchmarkBudgetChain.
		rest := strings.Split(strings.Trim(c.Param("*"), "/"), "/")
		if rest[0] == "spin" {
			if err := spin(c.Request().Context(), time.Second); err != nil {
				return err
			}
			rest[0] = ""
		}
		if rest[0] == "" {
			return c.String(http.StatusOK, name)
		}
		ctx := c.Request().Context()
		switch os.Getenv("PLATFORM_TEST_CHAIN_MODE") {
		case "cancel":
			ctx = withoutDeadline{ctx}
		case "none":
			ctx = context.WithoutCancel(ctx)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet,
			"http://"+rest[0]+"/chain/"+strings.Join(rest[1:], "/"), nil)
		res, err := platform.Client().Do(req)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return c.String(res.StatusCode, name+">"+string(b))
	})
	app.POST("/test", traceContextTest)
	app.GET("/budget", func(c echo.Context) error { // the budget a caller sent, as received
		return c.String(http.StatusOK, c.Request().Header.Get(platform.BudgetHeader))
	})
	app.GET("/cpu", func(c echo.Context) error { // about 2 ms of CPU, for the overload benchmark
		sum := sha256.Sum256([]byte(c.Request().URL.Path))
		for range 20000 {
			sum = sha256.Sum256(sum[:])
		}
		return c.String(http.StatusOK, hex.EncodeToString(sum[:4]))
	})
	app.GET("/stream", streamLines)
	app.GET("/relay/*", echo.WrapHandler(&httputil.ReverseProxy{
		// A gateway's proxy, to the service PLATFORM_TEST_RELAY_TO.
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(&url.URL{Scheme: "http", Host: os.Getenv("PLATFORM_TEST_RELAY_TO")})
			r.Out.URL.Path = strings.TrimPrefix(r.In.URL.Path, "/relay")
		},
		Transport: platform.Client().Transport,
	}))
	var opts []platform.Option
	if d, err := time.ParseDuration(os.Getenv("PLATFORM_TEST_REQUEST_TIMEOUT")); err == nil {
		opts = append(opts, platform.WithRequestTimeout(d))
	}
	if p := os.Getenv("PLATFORM_TEST_REGISTRY_OPTION"); p != "" {
		opts = append(opts, platform.WithRegistry(p)) // the port map given in code, not the environment
	}
	platform.Main(app, name, opts...)
}

// spin uses the CPU for d, or until ctx ends, which it checks about every
// 20 µs; it returns ctx's error when it ended first.
func spin(ctx context.Context, d time.Duration) error {
	sum := sha256.Sum256(nil)
	for end := time.Now().Add(d); time.Now().Before(end); {
		if err := ctx.Err(); err != nil {
			return err
		}
		for range 100 {
			sum = sha256.Sum256(sum[:])
		}
	}
	return nil
}

// withoutDeadline is a context canceled with its parent that has no
// deadline, so that a call made with it carries no budget.
type withoutDeadline struct{ context.Context }

func (withoutDeadline) Deadline() (time.Time, bool) { return time.Time{}, false }

// traceContextTest is the W3C Trace Context harness's test endpoint: for
// each {url, arguments} of the posted array, in order, it POSTs arguments
// to url through platform.Client, which propagates the trace context.
func traceContextTest(c echo.Context) error {
	var calls []struct {
		URL       string          `json:"url"`
		Arguments json.RawMessage `json:"arguments"`
	}
	if err := c.Bind(&calls); err != nil {
		return err
	}
	for _, call := range calls {
		req, err := http.NewRequestWithContext(c.Request().Context(), http.MethodPost, call.URL, bytes.NewReader(call.Arguments))
		if err != nil {
			return echo.NewHTTPError(http.StatusBadRequest, err.Error())
		}
		req.Header.Set("Content-Type", "application/json")
		res, err := platform.Client().Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	return c.NoContent(http.StatusOK)
}

// streamLines takes the connection over, as a WebSocket handler does, and
// echoes lines until the client leaves or the request's context ends; then
// it says why ("bye: " and the context's cause) and closes.
func streamLines(c echo.Context) error {
	conn, rw, err := http.NewResponseController(c.Response()).Hijack()
	if err != nil {
		return err
	}
	defer conn.Close()
	rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: flotilla-lines\r\nConnection: Upgrade\r\n\r\n")
	rw.Flush()
	ctx := c.Request().Context()
	lines := make(chan string, 1)
	go func() {
		defer close(lines)
		for {
			line, err := rw.ReadString('\n')
			if err != nil {
				return
			}
			select {
			case lines <- line:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				return nil
			}
			rw.WriteString(line)
			rw.Flush()
		case <-ctx.Done():
			fmt.Fprintf(rw, "bye: %v\n", context.Cause(ctx))
			return rw.Flush()
		}
	}
}

type service struct {
	cmd    *exec.Cmd
	stderr *testwait.Buffer
	client *http.Client
	base   string
	exited chan struct{}
	err    error
}

// untilFile is how a test service waits at a gate the test opens: until
// the file path exists, or ctx ends.
func untilFile(ctx context.Context, path string) error {
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// start runs the service as a process with env added to this one's.
func start(t *testing.T, name string, env ...string) *service {
	t.Helper()
	return startAs(t, os.Args[0], nil, name, env...)
}

// startAs runs the service from the test binary bin, as the user cred
// (nil: this process's user).
func startAs(t *testing.T, bin string, cred *syscall.Credential, name string, env ...string) *service {
	t.Helper()
	cmd := exec.Command(bin, "-test.run=^$")
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = filepath.Dir(bin)
	}
	cmd.Env = append(os.Environ(), append([]string{"PLATFORM_TEST_SERVICE=" + name}, env...)...)
	s := &service{cmd: cmd, stderr: &testwait.Buffer{}, exited: make(chan struct{})}
	cmd.Stderr = s.stderr
	require.NoError(t, cmd.Start())
	go func() { s.err = cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-s.exited
	})
	return s
}

// at points the service's client at a unix socket or a TCP address.
func (s *service) at(network, addr string) *service {
	if network == "unix" {
		s.client = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", addr)
		}}}
		s.base = "http://svc"
	} else {
		s.client = &http.Client{}
		s.base = "http://" + addr
	}
	return s
}

func (s *service) get(t *testing.T, path string) (int, string) {
	t.Helper()
	res, err := s.client.Get(s.base + path)
	require.NoError(t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// healthy waits until /health answers 200.
func (s *service) healthy(t *testing.T) health.Response {
	t.Helper()
	var r health.Response
	testwait.Until(t, 20*time.Second, func() bool {
		select {
		case <-s.exited:
			t.Fatalf("service exited: %v: %s", s.err, s.stderr)
		default:
		}
		res, err := s.client.Get(s.base + "/health")
		if err != nil {
			return false
		}
		defer res.Body.Close()
		r = health.Response{}
		json.NewDecoder(res.Body).Decode(&r)
		return res.StatusCode == http.StatusOK
	}, "/health to answer 200", s.stderr.String)
	return r
}

// inflight waits until the service has n requests in its slow handlers.
func (s *service) inflight(t *testing.T, n int) {
	t.Helper()
	var body string
	testwait.Until(t, 15*time.Second, func() bool {
		_, body = s.get(t, "/inflight")
		return body == fmt.Sprint(n)
	}, fmt.Sprintf("%d requests in flight", n), func() string { return "in flight: " + body })
}

// eventually is testwait.Until with a message formatted from msgAndArgs.
func eventually(t *testing.T, d time.Duration, cond func() bool, msgAndArgs ...any) {
	t.Helper()
	what := ""
	if len(msgAndArgs) > 0 {
		if f, ok := msgAndArgs[0].(string); ok {
			what = fmt.Sprintf(f, msgAndArgs[1:]...)
		}
	}
	testwait.Until(t, d, cond, what)
}

// stop sends SIGTERM and returns the exit code.
func (s *service) stop(t *testing.T) int {
	t.Helper()
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	return s.wait(t)
}

func (s *service) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("service did not exit: %s", s.stderr)
	}
	return s.cmd.ProcessState.ExitCode()
}

func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "flp")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func freePort(t *testing.T) string {
	t.Helper()
	return strconv.Itoa(testport.Free(t))
}

func openDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

// assertTimeOrdered checks that traceID begins with a time after began and
// before now: the platform's trace ids do, so that the request log's trace
// index grows at its end.
func assertTimeOrdered(t *testing.T, traceID string, began time.Time) {
	t.Helper()
	id, err := trace.TraceIDFromHex(traceID)
	require.NoError(t, err)
	at := traceid.Time(id)
	assert.False(t, at.Before(began.Truncate(time.Millisecond)) || at.After(time.Now()),
		"trace id %s made at %v, not between %v and now", traceID, at, began)
}

type row struct {
	service, route, path, requestID, traceID string
	status                                   int
}

func rows(t *testing.T, db *sql.DB, where string) []row {
	t.Helper()
	rs, err := db.Query("SELECT service, route, path, status, request_id, trace_id FROM requests WHERE " + where + " ORDER BY id")
	require.NoError(t, err)
	defer rs.Close()
	var out []row
	for rs.Next() {
		var r row
		require.NoError(t, rs.Scan(&r.service, &r.route, &r.path, &r.status, &r.requestID, &r.traceID))
		out = append(out, r)
	}
	return out
}

func TestRun_UnixSocketAndPort(t *testing.T) {
	began := time.Now()
	dir := tempDir(t)
	db := filepath.Join(dir, "flotilla.db")
	sock := filepath.Join(dir, "run", "agent-geo.sock")
	port := freePort(t)
	geo := start(t, "agent-geo", "FLOTILLA_DB="+db, "FLOTILLA_LISTEN=unix:"+sock, "FLOTILLA_VERSION=1.2.3").at("unix", sock)
	feeds := start(t, "crypto-feeds", "FLOTILLA_DB="+db, "PORT="+port).at("tcp", "127.0.0.1:"+port)

	h := geo.healthy(t)
	assert.Equal(t, health.Pass, h.Status)
	assert.Equal(t, "agent-geo", h.ServiceID)
	assert.Equal(t, "1.2.3", h.Version)
	assert.Contains(t, h.Checks, "requestlog:queue")
	feeds.healthy(t)

	code, body := geo.get(t, "/hello/world?key=secret")
	assert.Equal(t, 200, code)
	assert.Equal(t, "hello world", body)
	code, _ = feeds.get(t, "/panic")
	assert.Equal(t, 500, code)

	fi, err := os.Stat(sock)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o660), fi.Mode().Perm())

	assert.Equal(t, 0, geo.stop(t))
	assert.Equal(t, 0, feeds.stop(t))
	assert.NoFileExists(t, sock)
	assert.Contains(t, geo.stderr.String(), `"msg":"started"`)
	assert.Contains(t, geo.stderr.String(), `"endpoint":"unix:`+sock)
	assert.Contains(t, feeds.stderr.String(), `"stack":"goroutine`, "the panic's stack is logged")

	d := openDB(t, db)
	got := rows(t, d, "route = '/hello/:who'")
	require.Len(t, got, 1)
	assert.Equal(t, "agent-geo", got[0].service)
	assert.Equal(t, "/hello/world", got[0].path)
	assert.Equal(t, 200, got[0].status)
	assert.Regexp(t, "^[0-9a-f]{32}$", got[0].traceID)
	assertTimeOrdered(t, got[0].traceID, began)
	assert.Regexp(t, "^[0-9a-f]{32}$", got[0].requestID)
	p := rows(t, d, "route = '/panic'")
	require.Len(t, p, 1)
	assert.Equal(t, 500, p[0].status)
	assert.Equal(t, "crypto-feeds", p[0].service)
	assert.Empty(t, rows(t, d, "path LIKE '/health%'"), "the platform's own /health is polled, not logged")
	assert.Len(t, rows(t, d, "1"), 2, "the two requests to the app are")
}

// SIGTERM while 50 slow requests are in flight: all 50 complete, the process
// exits 0, and every request is in the file.
func TestRun_GracefulShutdownDrains(t *testing.T) {
	dir := tempDir(t)
	db := filepath.Join(dir, "flotilla.db")
	port := freePort(t)
	s := start(t, "slowpoke", "FLOTILLA_DB="+db, "PORT="+port).at("tcp", "127.0.0.1:"+port)
	s.healthy(t)

	var wg sync.WaitGroup
	results := make(chan int, 50)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 50}}
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := c.Get(s.base + "/slow")
			if err != nil {
				results <- -1
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			results <- res.StatusCode
		}()
	}
	s.inflight(t, 50)
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	wg.Wait()
	close(results)
	ok := 0
	for code := range results {
		if code == 200 {
			ok++
		}
	}
	assert.Equal(t, 50, ok, "every in-flight request completed")
	assert.Equal(t, 0, s.wait(t))
	assert.Len(t, rows(t, openDB(t, db), "route = '/slow'"), 50)
}

// A second signal during the drain exits at once.
func TestRun_SecondSignalForcesExit(t *testing.T) {
	dir := tempDir(t)
	port := freePort(t)
	s := start(t, "stuck", "FLOTILLA_DB="+filepath.Join(dir, "f.db"), "PORT="+port, "FLOTILLA_SHUTDOWN_TIMEOUT=1h").at("tcp", "127.0.0.1:"+port)
	s.healthy(t)
	go s.client.Get(s.base + "/stuck")
	s.inflight(t, 1)
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	eventually(t, 10*time.Second, func() bool { return strings.Contains(s.stderr.String(), "shutting down") },
		"no shutdown began: %s", s.stderr)
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 2, s.wait(t))
	assert.Contains(t, s.stderr.String(), "second signal")
}

func TestRun_PortInUse(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer held.Close()
	_, port, _ := net.SplitHostPort(held.Addr().String())
	s := start(t, "agent-geo", "FLOTILLA_DB="+filepath.Join(tempDir(t), "f.db"), "PORT="+port)
	assert.Equal(t, 1, s.wait(t))
	assert.Contains(t, s.stderr.String(), `service "agent-geo": port `+port+" is already in use")
}

func TestRun_BadEnvironment(t *testing.T) {
	for env, want := range map[string]string{
		"PORT=eighty":                         `PORT="eighty": a port number from 1 to 65535`,
		"FLOTILLA_SHUTDOWN_TIMEOUT=soon":      `FLOTILLA_SHUTDOWN_TIMEOUT="soon": a positive duration`,
		"FLOTILLA_LISTEN=unix:relative":       `FLOTILLA_LISTEN="unix:relative": an endpoint`,
		"FLOTILLA_METRICS=yes":                `FLOTILLA_METRICS="yes": 1 or 0`,
		"FLOTILLA_REGISTRY=/nonexistent.toml": "/nonexistent.toml",
		"OTEL_TRACES_EXPORTER=console":        `OTEL_TRACES_EXPORTER="console": give otlp or none`,
		"OTEL_METRICS_EXPORTER=prom":          `OTEL_METRICS_EXPORTER="prom": give otlp or none`,
		"OTEL_SDK_DISABLED=maybe":             `OTEL_SDK_DISABLED="maybe": give true or false`,
		"OTEL_EXPORTER_OTLP_PROTOCOL=grpc":    `OTEL_EXPORTER_OTLP_PROTOCOL="grpc": only http/protobuf is built in`,
		"OTEL_RESOURCE_ATTRIBUTES=%zz":        `OTEL_RESOURCE_ATTRIBUTES="%zz": give key=value pairs`,
	} {
		s := start(t, "agent-geo", env)
		assert.Equal(t, 1, s.wait(t), env)
		assert.Contains(t, s.stderr.String(), want, env)
	}
}

// The request log cannot be opened (its folder is under a plain file): the
// service serves anyway, /health warns with the reason, and the log is
// opened once the file in the way is a folder.
func TestRun_RequestLogUnavailable(t *testing.T) {
	dir := tempDir(t)
	file := filepath.Join(dir, "plain")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o600))
	port := freePort(t)
	db := filepath.Join(file, "logs", "flotilla.db")
	s := start(t, "agent-geo", "FLOTILLA_DB="+db, "PORT="+port).at("tcp", "127.0.0.1:"+port)
	logUnavailableThenFixed(t, s, db, "not a directory", func() {
		// The file in the way becomes the folder.
		require.NoError(t, os.Remove(file))
		require.NoError(t, os.MkdirAll(filepath.Join(file, "logs"), 0o755))
	})
}

// The log's folder is read-only for the service's user: the service serves,
// /health warns with the reason, and once the folder is made writable the
// background retry opens the log and requests are logged again. Permissions
// do not bind root, so as root the service runs as user nobody.
func TestRun_RequestLogReadOnlyFolder(t *testing.T) {
	base := tempDir(t)
	require.NoError(t, os.Chmod(base, 0o755))
	ro := filepath.Join(base, "logs")
	require.NoError(t, os.Mkdir(ro, 0o755))
	db := filepath.Join(ro, "flotilla.db")
	port := freePort(t)
	env := []string{"FLOTILLA_DB=" + db, "PORT=" + port}

	var s *service
	if os.Geteuid() == 0 {
		self, err := os.ReadFile(os.Args[0])
		require.NoError(t, err)
		bin := filepath.Join(base, "platform.test") // where nobody may run it
		require.NoError(t, os.WriteFile(bin, self, 0o755))
		s = startAs(t, bin, &syscall.Credential{Uid: 65534, Gid: 65534}, "agent-geo", env...)
	} else {
		require.NoError(t, os.Chmod(ro, 0o555))
		s = start(t, "agent-geo", env...)
	}
	s.at("tcp", "127.0.0.1:"+port)
	logUnavailableThenFixed(t, s, db, "cannot create files in it", func() {
		// The operator fixes the folder.
		if os.Geteuid() == 0 {
			require.NoError(t, os.Chown(ro, 65534, 65534))
		} else {
			require.NoError(t, os.Chmod(ro, 0o755))
		}
	})
}

// logUnavailableThenFixed checks a service whose request log db cannot be
// opened: it serves, /health warns with the path and reason; then, once fix
// has run, the background retry opens the log, /health passes, and a
// request is logged (the one made before is not).
func logUnavailableThenFixed(t *testing.T, s *service, db, reason string, fix func()) {
	t.Helper()
	h := s.healthy(t)
	assert.Equal(t, health.Warn, h.Status, "warn keeps the service in rotation")
	rl := h.Checks["requestlog:queue"][0]
	assert.Equal(t, health.Warn, rl.Status)
	assert.Contains(t, rl.Output, "request log unavailable")
	assert.Contains(t, rl.Output, db)
	assert.Contains(t, rl.Output, reason)
	code, body := s.get(t, "/hello/unlogged")
	assert.Equal(t, 200, code)
	assert.Equal(t, "hello unlogged", body)

	fix()
	eventually(t, 30*time.Second, func() bool { return s.healthy(t).Status == health.Pass },
		"the log was not opened again: %s", s.stderr)
	code, _ = s.get(t, "/hello/logged")
	assert.Equal(t, 200, code)
	assert.Equal(t, 0, s.stop(t))
	got := rows(t, openDB(t, db), "route = '/hello/:who'")
	require.Len(t, got, 1, "the request after the fix is in the file")
	assert.Equal(t, "/hello/logged", got[0].path)
}

// The disk holding the log is full: the service serves, /health says why,
// and the log is opened once space is freed. It needs a small tmpfs, so it
// runs where this process may mount one (as root).
func TestRun_RequestLogDiskFull(t *testing.T) {
	mnt := filepath.Join(tempDir(t), "full")
	require.NoError(t, os.Mkdir(mnt, 0o755))
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=2m"); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill (%v): run as root to test a full disk", err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
	fill := filepath.Join(mnt, "fill")
	f, err := os.Create(fill)
	require.NoError(t, err)
	for {
		if _, err := f.Write(make([]byte, 64<<10)); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			break
		}
	}
	f.Close()

	db := filepath.Join(mnt, "flotilla.db")
	port := freePort(t)
	s := start(t, "agent-geo", "FLOTILLA_DB="+db, "PORT="+port).at("tcp", "127.0.0.1:"+port)
	logUnavailableThenFixed(t, s, db, "disk is full", func() { require.NoError(t, os.Remove(fill)) })
}

// A calls B calls C through platform.Client: three rows, one trace id and
// one request id.
func TestRun_ThreeHopTrace(t *testing.T) {
	dir := tempDir(t)
	db := filepath.Join(dir, "flotilla.db")
	reg := filepath.Join(dir, "flotilla.toml")
	require.NoError(t, writeRegistry(reg, "svc-a", "svc-b", "svc-c"))
	var svcs []*service
	for _, n := range []string{"svc-a", "svc-b", "svc-c"} {
		env := []string{"FLOTILLA_REGISTRY=" + reg, "FLOTILLA_DB=" + db}
		if n == "svc-a" { // Client follows the port map Run was given
			env = []string{"FLOTILLA_REGISTRY=", "PLATFORM_TEST_REGISTRY_OPTION=" + reg, "FLOTILLA_DB=" + db}
		}
		s := start(t, n, env...).at("unix", filepath.Join(dir, "run", n+".sock"))
		s.healthy(t)
		svcs = append(svcs, s)
	}
	code, body := svcs[0].get(t, "/chain/svc-b/svc-c")
	require.Equal(t, 200, code, body)
	assert.Equal(t, "svc-a>svc-b>svc-c", body)
	for _, s := range svcs {
		assert.Equal(t, 0, s.stop(t))
	}
	got := rows(t, openDB(t, db), "route = '/chain/*'")
	require.Len(t, got, 3)
	assert.ElementsMatch(t, []string{"svc-a", "svc-b", "svc-c"}, []string{got[0].service, got[1].service, got[2].service})
	assert.Regexp(t, "^[0-9a-f]{32}$", got[0].traceID)
	assert.Equal(t, got[0].traceID, got[1].traceID)
	assert.Equal(t, got[0].traceID, got[2].traceID)
	assert.Regexp(t, "^[0-9a-f]{32}$", got[0].requestID)
	assert.Equal(t, got[0].requestID, got[1].requestID, "the request id goes along too")
	assert.Equal(t, got[0].requestID, got[2].requestID)
}

// writeRegistry writes a port map of services on unix sockets in "run"
// beside it.
func writeRegistry(path string, names ...string) error {
	text := "[defaults]\nsocket_dir = \"run\"\n"
	for _, n := range names {
		text += "[[service]]\nname = \"" + n + "\"\n"
	}
	return os.WriteFile(path, []byte(text), 0o644)
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
