package platform_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
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

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/internal/testwait"
)

// startedPIDs reads the pids of the "started" lines of a service's log.
func startedPIDs(t *testing.T, path string) []int {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var pids []int
	for _, line := range strings.Split(string(b), "\n") {
		var l struct {
			Msg string `json:"msg"`
			PID int    `json:"pid"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "started" {
			pids = append(pids, l.PID)
		}
	}
	return pids
}

// A load loop over the unix socket across 5 SIGHUP restarts: not one
// request fails, and every request is in the log.
func TestRun_ZeroDowntimeRestart(t *testing.T) {
	dir := tempDir(t)
	db := filepath.Join(dir, "flotilla.db")
	sock := filepath.Join(dir, "run", "agent-geo.sock")
	logPath := filepath.Join(dir, "service.log")
	logFile, err := os.Create(logPath)
	require.NoError(t, err)
	defer logFile.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PLATFORM_TEST_SERVICE=agent-geo", "FLOTILLA_DB="+db, "FLOTILLA_LISTEN=unix:"+sock)
	cmd.Stderr = logFile // a file: successors write to it after the first exits
	require.NoError(t, cmd.Start())
	first := cmd.Process.Pid
	go cmd.Wait()
	current := first
	t.Cleanup(func() {
		for _, pid := range startedPIDs(t, logPath) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})

	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	s := &service{client: client, base: "http://agent-geo", exited: make(chan struct{}), stderr: &testwait.Buffer{}}
	s.healthy(t)

	load := startLoad(t, client, "http://agent-geo/hello/load")
	for range 5 {
		load.more(t, 100) // let some load reach the current process first
		require.NoError(t, syscall.Kill(current, syscall.SIGHUP))
		eventually(t, 30*time.Second, func() bool {
			pids := startedPIDs(t, logPath)
			if last := pids[len(pids)-1]; last != current && !alive(current) {
				current = last
				return true
			}
			return false
		}, "a successor to take over from %d", current)
	}
	sent, failed := load.stop(t, 2000)
	assert.Zero(t, failed, "failed requests")
	assert.GreaterOrEqual(t, sent, 2000)
	assert.Len(t, startedPIDs(t, logPath), 6, "the first process and 5 successors")

	require.NoError(t, syscall.Kill(current, syscall.SIGTERM))
	eventually(t, 30*time.Second, func() bool { return !alive(current) }, "last successor did not exit")
	assert.NoFileExists(t, sock, "the last process removes the socket")
	n := len(rows(t, openDB(t, db), "route = '/hello/:who'"))
	assert.Equal(t, sent, n, "every request is in the log")
	_ = first
}

// loadLoop sends GETs to one URL, one after another, until stopped, and
// counts them and the ones that failed.
type loadLoop struct {
	sent, failed atomic.Int32
	stopping     chan struct{}
	once         sync.Once
	done         chan struct{}
}

func startLoad(t *testing.T, client *http.Client, url string) *loadLoop {
	l := &loadLoop{stopping: make(chan struct{}), done: make(chan struct{})}
	t.Cleanup(l.halt) // also when the test fails first: no logging after it ends
	go func() {
		defer close(l.done)
		for {
			select {
			case <-l.stopping:
				return
			default:
			}
			n := l.sent.Add(1)
			res, err := client.Get(url)
			if err != nil {
				l.failed.Add(1)
				t.Logf("request %d: %v", n, err)
				continue
			}
			if res.StatusCode != http.StatusOK {
				l.failed.Add(1)
				t.Logf("request %d: %s", n, res.Status)
			}
			res.Body.Close()
		}
	}()
	return l
}

// more waits until n more requests have been sent.
func (l *loadLoop) more(t *testing.T, n int32) {
	t.Helper()
	target := l.sent.Load() + n
	eventually(t, 30*time.Second, func() bool { return l.sent.Load() >= target }, "the load loop stalled")
}

// stop stops the loop once at least min requests were sent, and returns
// how many were sent and how many failed.
func (l *loadLoop) stop(t *testing.T, min int32) (sent, failed int) {
	t.Helper()
	if short := min - l.sent.Load(); short > 0 {
		l.more(t, short)
	}
	l.halt()
	return int(l.sent.Load()), int(l.failed.Load())
}

func (l *loadLoop) halt() {
	l.once.Do(func() { close(l.stopping) })
	<-l.done
}

// needTool returns the path of a program an integration test runs. It
// skips the test when the program is missing, unless
// FLOTILLA_REQUIRE_INTEGRATION is set (as in CI), which makes it a failure.
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("FLOTILLA_REQUIRE_INTEGRATION") != "" {
		t.Fatalf("%s is not installed and FLOTILLA_REQUIRE_INTEGRATION is set: apt-get install %s", name, pkg)
	}
	t.Skipf("%s is not installed (apt-get install %s); set FLOTILLA_REQUIRE_INTEGRATION=1 to make this a failure", name, pkg)
	return ""
}

// systemd's own socket activation (systemd-socket-activate holds the
// socket and starts the service on the first connection, as a .socket unit
// does): the service serves on the socket it is given; on SIGHUP its
// successor takes the socket over and is announced to systemd with
// MAINPID on NOTIFY_SOCKET; and the socket outlives the service, so the
// next start finds it.
func TestRun_SystemdSocketActivation(t *testing.T) {
	activate := needTool(t, "systemd-socket-activate", "systemd")
	dir := tempDir(t)
	db := filepath.Join(dir, "flotilla.db")
	sock := filepath.Join(dir, "agent-geo.sock")
	logPath := filepath.Join(dir, "service.log")
	logFile, err := os.Create(logPath)
	require.NoError(t, err)
	defer logFile.Close()

	// The notification socket systemd would listen on.
	notifyPath := filepath.Join(dir, "notify.sock")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	require.NoError(t, err)
	defer notify.Close()
	notes := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := notify.Read(buf)
			if err != nil {
				return
			}
			notes <- string(buf[:n])
		}
	}()

	cmd := exec.Command(activate, "--listen="+sock, "--fdname=agent-geo",
		"-E", "PLATFORM_TEST_SERVICE=agent-geo", "-E", "FLOTILLA_DB="+db, "-E", "NOTIFY_SOCKET="+notifyPath,
		os.Args[0], "-test.run=^$")
	cmd.Stderr = logFile
	require.NoError(t, cmd.Start())
	go cmd.Wait()
	t.Cleanup(func() {
		cmd.Process.Kill()
		for _, pid := range startedPIDs(t, logPath) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	eventually(t, 10*time.Second, func() bool { _, err := os.Stat(sock); return err == nil },
		"systemd-socket-activate made no socket")

	s := (&service{exited: make(chan struct{}), stderr: &testwait.Buffer{}}).at("unix", sock)
	s.healthy(t) // the first connection starts the service
	code, body := s.get(t, "/hello/systemd")
	require.Equal(t, 200, code, body)
	pids := startedPIDs(t, logPath)
	require.Len(t, pids, 1)
	first := pids[0]
	log, _ := os.ReadFile(logPath)
	assert.Contains(t, string(log), `"endpoint":"unix:`+sock+`"`, "it serves on systemd's socket")

	require.NoError(t, syscall.Kill(first, syscall.SIGHUP))
	var successor int
	eventually(t, 30*time.Second, func() bool {
		if pids := startedPIDs(t, logPath); len(pids) == 2 {
			successor = pids[1]
		}
		return successor != 0 && !alive(first)
	}, "no successor took over from %d", first)
	select {
	case note := <-notes:
		assert.Equal(t, "MAINPID="+strconv.Itoa(successor), strings.TrimSpace(note), "systemd learns the new main pid")
	case <-time.After(10 * time.Second):
		t.Fatal("no sd_notify message")
	}
	code, _ = s.get(t, "/hello/successor")
	assert.Equal(t, 200, code)

	require.NoError(t, syscall.Kill(successor, syscall.SIGTERM))
	eventually(t, 30*time.Second, func() bool { return !alive(successor) }, "the successor did not exit")
	assert.FileExists(t, sock, "systemd's socket stays for the next start")
	log, _ = os.ReadFile(logPath)
	assert.Equal(t, 2, strings.Count(string(log), `"msg":"stopped"`), "both processes stop cleanly: %s", log)
	got := rows(t, openDB(t, db), "route = '/hello/:who'")
	require.Len(t, got, 2)
	assert.Equal(t, "/hello/systemd", got[0].path)
	assert.Equal(t, "/hello/successor", got[1].path)
}

// What systemctl restart does with a .socket unit: systemd holds the
// socket, stops the service (SIGTERM), then starts a new one on the same
// socket. Connections made meanwhile wait in the socket's queue, so a load
// loop across 3 restarts sees no failure, and every request is logged.
// The test plays systemd: it holds the socket and passes it on fd 3.
func TestRun_SystemdStyleRestartLosesNothing(t *testing.T) {
	dir := tempDir(t)
	db := filepath.Join(dir, "flotilla.db")
	sock := filepath.Join(dir, "agent-geo.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	require.NoError(t, err)
	defer ln.Close()
	held, err := ln.File() // the socket as systemd holds it
	require.NoError(t, err)
	defer held.Close()

	run := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "PLATFORM_TEST_SERVICE=agent-geo", "PLATFORM_TEST_SYSTEMD=1",
			"LISTEN_FDS=1", "LISTEN_FDNAMES=agent-geo", "FLOTILLA_DB="+db)
		cmd.ExtraFiles = []*os.File{held}
		cmd.Stderr = &testwait.Buffer{}
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { cmd.Process.Kill() })
		return cmd
	}
	cmd := run()
	s := (&service{exited: make(chan struct{}), stderr: &testwait.Buffer{}}).at("unix", sock)
	s.healthy(t)

	load := startLoad(t, s.client, s.base+"/hello/load")
	for range 3 {
		load.more(t, 100)
		// systemctl restart: stop, wait for the exit, start.
		require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
		require.NoError(t, cmd.Wait(), "a clean stop")
		cmd = run()
	}
	load.more(t, 100)
	sent, failed := load.stop(t, 0)
	assert.Zero(t, failed, "failed requests")
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait())
	assert.FileExists(t, sock, "the socket is systemd's: the service leaves it")
	n := len(rows(t, openDB(t, db), "route = '/hello/:who'"))
	assert.Equal(t, sent, n, "every request is in the log")
}

// A successor that starts slowly, with a request answered by the old
// process meanwhile: handing the socket over must not leave it in blocking
// mode, where the old process's accept loop would block in the kernel and
// its drain would wait for a connection that never comes. The old process
// exits, and says which pid took over.
func TestRun_RestartWithSlowSuccessorExits(t *testing.T) {
	dir := tempDir(t)
	sock := filepath.Join(dir, "agent-geo.sock")
	gate := filepath.Join(dir, "gate")
	logPath := filepath.Join(dir, "service.log")
	logFile, err := os.Create(logPath)
	require.NoError(t, err)
	defer logFile.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PLATFORM_TEST_SERVICE=agent-geo", "FLOTILLA_DB="+filepath.Join(dir, "flotilla.db"),
		"FLOTILLA_LISTEN=unix:"+sock, "FLOTILLA_SHUTDOWN_TIMEOUT=3s", "PLATFORM_TEST_GATE="+gate)
	cmd.Stderr = logFile
	require.NoError(t, cmd.Start())
	old := cmd.Process.Pid
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		for _, pid := range startedPIDs(t, logPath) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		cmd.Process.Kill()
	})
	s := (&service{exited: exited, stderr: &testwait.Buffer{}}).at("unix", sock)
	s.client.Transport.(*http.Transport).DisableKeepAlives = true
	s.healthy(t)

	require.NoError(t, syscall.Kill(old, syscall.SIGHUP))
	eventually(t, 20*time.Second, func() bool { _, err := os.Stat(gate + ".waiting"); return err == nil },
		"no successor was started")
	code, _ := s.get(t, "/hello/meanwhile") // the old process answers
	require.Equal(t, 200, code)
	require.NoError(t, os.WriteFile(gate, nil, 0o600))

	var successor int
	eventually(t, 20*time.Second, func() bool {
		if pids := startedPIDs(t, logPath); len(pids) == 2 {
			successor = pids[1]
		}
		return successor != 0
	}, "the successor did not start")
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("the old process %d is still draining after its successor %d took over", old, successor)
	}
	log, _ := os.ReadFile(logPath)
	assert.Contains(t, string(log), fmt.Sprintf(`"msg":"handed over to pid %d"`, successor))
	code, _ = s.get(t, "/hello/successor")
	assert.Equal(t, 200, code)
}
