package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/discovery"
	"github.com/flotilla-go/flotilla/internal/testwait"
	"github.com/flotilla-go/flotilla/logger"
)

// cliProcess starts the flotilla command as its own process.
func cliProcess(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "FLOTILLA_TEST_CLI=1")
	return cmd
}

// logs -f while 10 processes write: every row is printed exactly once,
// whether it committed before the follower started (printed first) or after.
func TestCLI_LogsFollowSeesEveryRowOnce(t *testing.T) {
	db := filepath.Join(t.TempDir(), "flotilla.db")
	s, err := logger.Open(db)
	require.NoError(t, err)
	s.Log(logger.Record{Service: "marker", RequestID: "marker"})
	require.NoError(t, s.Close())

	follow := cliProcess(t, "--db", db, "logs", "-f", "--json", "-n", "100000", "--since", "1h")
	out, err := follow.StdoutPipe()
	require.NoError(t, err)
	var stderr testwait.Buffer
	follow.Stderr = &stderr
	require.NoError(t, follow.Start())
	t.Cleanup(func() { follow.Process.Kill() })
	sc := bufio.NewScanner(out)
	require.True(t, sc.Scan(), "the row from before: %s", stderr.String())
	require.Contains(t, sc.Text(), `"request_id":"marker"`)
	// The follower has listed the history: every row from now on comes
	// from following.

	const procs, perProc = 10, 400
	var writers sync.WaitGroup
	for p := range procs {
		w := exec.Command(os.Args[0], "-test.run=^$")
		w.Env = append(os.Environ(), fmt.Sprintf("FLOTILLA_TEST_WRITER=w%d,%d", p, perProc), "FLOTILLA_DB="+db)
		w.Stderr = os.Stderr
		require.NoError(t, w.Start())
		writers.Add(1)
		go func() {
			defer writers.Done()
			assert.NoError(t, w.Wait())
		}()
	}
	seen := map[string]int{}
	var seenMu sync.Mutex
	got := make(chan struct{})
	go func() {
		defer close(got)
		for sc.Scan() {
			var r logRow
			if json.Unmarshal(sc.Bytes(), &r) != nil {
				t.Errorf("not JSON: %s", sc.Text())
			}
			seenMu.Lock()
			seen[r.RequestID]++
			all := len(seen) == procs*perProc
			seenMu.Unlock()
			if all {
				return
			}
		}
	}()
	select {
	case <-got:
	case <-time.After(time.Minute):
		seenMu.Lock()
		t.Fatalf("the follower printed %d of %d rows: %s", len(seen), procs*perProc, stderr.String())
	}
	writers.Wait()
	require.Len(t, seen, procs*perProc, stderr.String())
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s printed %d times", id, n)
		}
	}
	// Ctrl-C ends the follower cleanly, with nothing more printed.
	require.NoError(t, follow.Process.Signal(os.Interrupt))
	for sc.Scan() {
		t.Errorf("a row printed twice or late: %s", sc.Text())
	}
	assert.NoError(t, follow.Wait(), stderr.String())
}

// tmux drives top in a real 80x24 terminal.
type tmux struct {
	t    *testing.T
	bin  string
	name string
}

func newTmux(t *testing.T, command string) *tmux {
	tm := &tmux{t: t, bin: needTool(t, "tmux"), name: fmt.Sprintf("flotilla-test-%d", os.Getpid())}
	// A socket of the test's own, so no user's tmux server is touched.
	sock := filepath.Join(t.TempDir(), "tmux.sock")
	tm.bin = tm.bin + " -S " + sock
	tm.run("new-session", "-d", "-s", tm.name, "-x", "80", "-y", "24", command)
	t.Cleanup(func() { tm.run("kill-server") })
	return tm
}

func (tm *tmux) run(args ...string) string {
	f := strings.Fields(tm.bin)
	out, err := exec.Command(f[0], append(f[1:], args...)...).CombinedOutput()
	if err != nil && args[0] != "kill-server" {
		tm.t.Fatalf("tmux %v: %v: %s", args, err, out)
	}
	return string(out)
}

func (tm *tmux) screen() string { return tm.run("capture-pane", "-p", "-t", tm.name) }

func (tm *tmux) keys(k string) { tm.run("send-keys", "-t", tm.name, k) }

// rowsOf returns the service names of top's rows, top to bottom.
func rowsOf(screen string) []string {
	var out []string
	for _, line := range strings.Split(screen, "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "svc-") {
			out = append(out, f[0])
		}
	}
	return out
}

// field returns column i of the row of name on the screen.
func field(screen, name string, i int) string {
	for _, line := range strings.Split(screen, "\n") {
		if f := strings.Fields(line); len(f) > i && f[0] == name {
			return f[i]
		}
	}
	return ""
}

func TestCLI_TopInATerminal(t *testing.T) {
	f := startFleet(t)
	command := fmt.Sprintf("env FLOTILLA_TEST_CLI=1 %s --registry %s top; echo EXIT=$?; sleep 600", os.Args[0], f.registry)
	tm := newTmux(t, command)
	var screen string
	eventually(t, 15*time.Second, func() bool {
		screen = tm.screen()
		return len(rowsOf(screen)) == len(fleetNames)
	}, "not every service on the screen", func() string { return screen })
	assert.Contains(t, screen, "4 services, 4 pass")
	assert.Contains(t, screen, "sort: [n name]")
	assert.Equal(t, fleetNames, rowsOf(screen), "sorted by name")
	assert.Equal(t, "-", field(screen, "svc-d", 5), "no traffic yet: "+screen)
	for _, line := range strings.Split(screen, "\n") {
		assert.LessOrEqual(t, len([]rune(line)), 80, "fits 80 columns: %q", line)
	}

	// Traffic to svc-d, then svc-c: the numbers change, and sorting by
	// requests puts svc-d first.
	for range 30 {
		code, err := f.get("svc-d", "/work")
		require.NoError(t, err)
		require.Equal(t, 200, code)
	}
	for range 10 {
		f.get("svc-c", "/work")
	}
	eventually(t, 15*time.Second, func() bool {
		screen = tm.screen()
		return field(screen, "svc-d", 5) != "-" && field(screen, "svc-c", 5) != "-"
	}, "the numbers did not change after traffic", func() string { return screen })
	tm.keys("r")
	eventually(t, 10*time.Second, func() bool {
		screen = tm.screen()
		rows := rowsOf(screen)
		return strings.Contains(screen, "[r req/min]") && len(rows) == 4 && rows[0] == "svc-d" && rows[1] == "svc-c"
	}, "r did not sort by requests", func() string { return screen })

	tm.keys("q")
	eventually(t, 10*time.Second, func() bool {
		screen = tm.screen()
		return strings.Contains(screen, "EXIT=")
	}, "q did not quit", func() string { return screen })
	assert.Contains(t, screen, "EXIT=0")
}

// Without a terminal, top prints plain tables.
func TestCLI_TopPlainWithoutATerminal(t *testing.T) {
	f := startFleet(t)
	out, errOut, code := f.cli("top", "--count", "2", "--interval", "10ms")
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, 2, strings.Count(out, "NAME  "), out)
	assert.Equal(t, 2, strings.Count(out, "4 services, 4 pass"), out)
	assert.NotContains(t, out, "\x1b[", "no escape codes")
}

// restart --all --batch 3 under load: no request fails, every pid changes,
// every request is in the log. Then a service whose successor cannot start
// stops the rollout, and its old process still serves.
func TestCLI_RestartAllUnderLoad(t *testing.T) {
	f := startFleet(t)
	before := map[string]int{}
	for _, r := range f.ps() {
		before[r.Name] = r.PID
	}
	var gets []func() (int, error)
	for _, name := range fleetNames {
		get := func() (int, error) { return f.get(name, "/work") }
		gets = append(gets, get, get)
	}
	l := startLoad(gets...)
	eventually(t, 10*time.Second, func() bool { return l.ok.Load() > 100 }, "no load")
	out, errOut, code := f.cli("restart", "--all", "--batch", "3", "--timeout", "20s")
	errs := l.stop()
	require.Equal(t, 0, code, "%s%s", out, errOut)
	assert.Empty(t, errs, "failed requests")
	for _, name := range fleetNames {
		assert.Regexp(t, name+`: pid \d+ -> \d+, healthy in \S+ \(sighup\)`, out)
	}
	after := f.ps()
	for _, r := range after {
		assert.Equal(t, "pass", r.State)
		assert.NotEqual(t, before[r.Name], r.PID, "%s has a new pid", r.Name)
	}
	eventually(t, 20*time.Second, func() bool {
		return int64(len(f.logRows("--since", "1h", "--route", "/work"))) == l.ok.Load()
	}, fmt.Sprintf("not every one of %d requests is in the log", l.ok.Load()))

	// svc-a's binary now exits 1: its successor cannot start.
	old := after[0]
	require.Equal(t, "svc-a", old.Name)
	bin := filepath.Join(f.dir, "bin", "svc-a")
	require.NoError(t, os.WriteFile(bin+".new", []byte("#!/bin/sh\nexit 1\n"), 0o755))
	require.NoError(t, os.Rename(bin+".new", bin))
	out, _, code = f.cli("restart", "svc-a", "svc-b", "--timeout", "3s")
	assert.Equal(t, 1, code, out)
	assert.Contains(t, out, "svc-a: not back after")
	assert.NotContains(t, out, "svc-b:", "the rollout stopped before svc-b")
	status, err := f.get("svc-a", "/work")
	require.NoError(t, err)
	assert.Equal(t, 200, status, "the old process still serves")
	for _, r := range f.ps() {
		if r.Name == "svc-a" {
			assert.Equal(t, old.PID, r.PID)
		}
		if r.Name == "svc-b" {
			assert.Equal(t, after[1].PID, r.PID, "svc-b untouched")
		}
	}
	assert.True(t, running(old.PID))
	assert.NoError(t, syscall.Kill(old.PID, 0))
}

// flotilla up runs the map's services: one that fails is started again with
// growing delays, a healthy one is left alone, and Ctrl-C stops them all
// gracefully with every request in the log.
func TestCLI_Up(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	require.NoError(t, os.MkdirAll(bin, 0o755))
	require.NoError(t, os.Symlink(os.Args[0], filepath.Join(bin, "svc-a")))
	require.NoError(t, os.WriteFile(filepath.Join(bin, "bad"), []byte("#!/bin/sh\necho boom >&2\nexit 1\n"), 0o755))
	registry := filepath.Join(dir, "flotilla.toml")
	require.NoError(t, os.WriteFile(registry, []byte(`[defaults]
db = "flotilla.db"
socket_dir = "run"

[[service]]
name = "svc-a"
env = { FLOTILLA_TEST_SERVICE = "svc-a" }

[[service]]
name = "bad"
`), 0o600))

	up := cliProcess(t, "--registry", registry, "up", "--bin", bin)
	var out testwait.Buffer
	up.Stderr = &out
	require.NoError(t, up.Start())
	t.Cleanup(func() { up.Process.Kill() })

	reg, err := discovery.Load(registry)
	require.NoError(t, err)
	client := &http.Client{Transport: reg.Transport(nil), Timeout: 5 * time.Second}
	serves := func() bool {
		res, err := client.Get("http://svc-a/work")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	}
	work := func(n int) {
		for range n {
			res, err := client.Get("http://svc-a/work")
			require.NoError(t, err)
			res.Body.Close()
		}
	}
	eventually(t, 20*time.Second, serves, "svc-a never served", out.String)
	work(20)
	eventually(t, 20*time.Second, func() bool {
		return strings.Contains(out.String(), "bad | exited (status 1); starting it again in 2s")
	}, "bad was not started again with a growing delay", out.String)
	text := out.String()
	assert.Contains(t, text, "bad | boom")
	assert.Contains(t, text, "bad | exited (status 1); starting it again in 1s")
	assert.Equal(t, 1, strings.Count(text, `"msg":"started"`), "svc-a started once")
	assert.NotContains(t, text, "svc-a | exited")

	// A hand-over (flotilla restart): up follows the successor, and starts
	// the service again when the successor dies.
	restartOut, restartErr, code := cli("--registry", registry, "restart", "svc-a")
	require.Equal(t, 0, code, "%s%s", restartOut, restartErr)
	handedOver := regexp.MustCompile(`svc-a \| handed over from pid (\d+) to pid (\d+); following it`)
	eventually(t, 20*time.Second, func() bool { return handedOver.MatchString(out.String()) }, "up did not follow the hand-over", out.String)
	successor, err := strconv.Atoi(handedOver.FindStringSubmatch(out.String())[2])
	require.NoError(t, err)
	assert.Contains(t, restartOut, fmt.Sprintf("-> %d,", successor), "the successor up follows is the one restart saw")
	require.NoError(t, syscall.Kill(successor, syscall.SIGKILL))
	eventually(t, 20*time.Second, func() bool {
		return strings.Contains(out.String(), "svc-a | exited (killed by signal 9: killed); starting it again in 1s")
	}, "up did not start svc-a again after its successor died", out.String)
	eventually(t, 20*time.Second, func() bool { return strings.Count(out.String(), `"msg":"started"`) == 3 }, "svc-a not started again", out.String)
	eventually(t, 20*time.Second, serves, "svc-a never served again", out.String)
	work(9)

	// Ctrl-C while up follows a successor stops the successor too.
	restartOut, restartErr, code = cli("--registry", registry, "restart", "svc-a")
	require.Equal(t, 0, code, "%s%s", restartOut, restartErr)
	eventually(t, 20*time.Second, func() bool { return len(handedOver.FindAllString(out.String(), -1)) == 2 },
		"up did not follow the second hand-over", out.String)
	successor, err = strconv.Atoi(handedOver.FindAllStringSubmatch(out.String(), -1)[1][2])
	require.NoError(t, err)
	require.NoError(t, up.Process.Signal(os.Interrupt))
	require.NoError(t, up.Wait(), out.String())
	assert.False(t, running(successor), "the successor outlived up")
	assert.Contains(t, out.String(), "flotilla up: all stopped")
	r, err := logger.OpenReader(filepath.Join(dir, "flotilla.db"))
	require.NoError(t, err)
	defer r.Close()
	rows, err := r.Requests(context.Background(), logger.Query{Route: "/work"})
	require.NoError(t, err)
	assert.Len(t, rows, 31, "every request in the log after Ctrl-C")

	_, errOut, code := cli("--registry", registry, "up", "--bin", filepath.Join(dir, "nowhere"))
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "service svc-a: no executable at "+filepath.Join(dir, "nowhere", "svc-a"))
}

// load sends requests, one goroutine per get, each again and again until
// stop.
type load struct {
	ok   atomic.Int64 // answered 200
	done chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []string // what the others got
}

func startLoad(gets ...func() (int, error)) *load {
	l := &load{done: make(chan struct{})}
	for _, get := range gets {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.done:
					return
				default:
				}
				if code, err := get(); err != nil || code != http.StatusOK {
					l.mu.Lock()
					l.errs = append(l.errs, fmt.Sprintf("%d %v", code, err))
					l.mu.Unlock()
					continue
				}
				l.ok.Add(1)
			}
		}()
	}
	return l
}

// stop ends the load and returns what the requests not answered 200 got.
func (l *load) stop() []string {
	close(l.done)
	l.wg.Wait()
	return l.errs
}

// A process a service leaves behind becomes up's child (up is a child
// subreaper) and is reaped when it exits, instead of staying a zombie
// until up ends.
func TestCLI_UpReapsOrphans(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	require.NoError(t, os.MkdirAll(bin, 0o755))
	orphanPID := filepath.Join(dir, "orphan.pid")
	// The service's subshell starts a child that outlives the subshell and
	// says its pid; the service runs on.
	require.NoError(t, os.WriteFile(filepath.Join(bin, "leaver"),
		[]byte("#!/bin/sh\n(sleep 1 >/dev/null 2>&1 & echo $! > "+orphanPID+".tmp; mv "+orphanPID+".tmp "+orphanPID+")\nexec sleep 1000\n"), 0o755))
	registry := filepath.Join(dir, "flotilla.toml")
	require.NoError(t, os.WriteFile(registry, []byte("[defaults]\ndb = \"flotilla.db\"\nsocket_dir = \"run\"\n\n[[service]]\nname = \"leaver\"\n"), 0o600))

	up := cliProcess(t, "--registry", registry, "up", "--bin", bin)
	var out testwait.Buffer
	up.Stderr = &out
	require.NoError(t, up.Start())
	t.Cleanup(func() { up.Process.Kill(); up.Wait() })
	var pid int
	eventually(t, 20*time.Second, func() bool {
		data, err := os.ReadFile(orphanPID)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(data)))
		return err == nil
	}, "the service never started its child", out.String)
	eventually(t, 30*time.Second, func() bool {
		_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
		return os.IsNotExist(err)
	}, "the orphan stayed a zombie of up's", out.String)
	assert.NotContains(t, out.String(), "leaver | exited", "the service runs on")
	require.NoError(t, up.Process.Signal(os.Interrupt))
	require.NoError(t, up.Wait(), out.String())
}
