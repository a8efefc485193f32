package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
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

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/internal/testwait"
)

// systemdNS is a real systemd, PID 1 of its own PID and mount namespaces.
// Inside them /run, /tmp, /var/tmp, /var/log and /var/lib are empty tmpfs
// and /etc/passwd and /etc/group are copies with the test's users, so that
// its boot (systemd-tmpfiles empties /tmp, for one) changes nothing outside.
// The network is the machine's.
type systemdNS struct {
	t       *testing.T
	nsenter string
	pid     int // systemd's, as this process sees it
}

// testUsers are the users the namespace adds: the services' user, and an
// operator in the flotilla group.
type testUsers struct{ flotilla, operator int }

// bootSystemd starts systemd in new namespaces with the files of stage
// (name → path outside) copied to /run/ft, and waits until it runs. It
// skips where the kernel refuses the namespaces.
func bootSystemd(t *testing.T, stage map[string]string) (*systemdNS, testUsers) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("starting systemd in a namespace needs root")
	}
	ns := &systemdNS{t: t, nsenter: needTool(t, "nsenter")}
	unshare := needTool(t, "unshare")
	needTool(t, "systemctl")
	needTool(t, "setpriv")
	needTool(t, "dbus-daemon") // the system bus, through which a user who is not root asks systemd
	const systemd = "/lib/systemd/systemd"
	if _, err := os.Stat(systemd); err != nil {
		if os.Getenv("FLOTILLA_REQUIRE_INTEGRATION") != "" {
			t.Fatalf("%s is missing (apt-get install systemd)", systemd)
		}
		t.Skipf("%s is missing", systemd)
	}
	if out, err := exec.Command(unshare, "--pid", "--cgroup", "--fork", "--mount-proc", "true").CombinedOutput(); err != nil {
		t.Skipf("this machine does not give new PID, cgroup and mount namespaces: %v: %s", err, out)
	}
	dir := t.TempDir()
	users := testUsers{freeID(t, "/etc/passwd", 61000), 0}
	users.operator = freeID(t, "/etc/passwd", users.flotilla+1)
	addLines(t, "/etc/passwd", filepath.Join(dir, "passwd"),
		fmt.Sprintf("flotilla:x:%d:%d::/nonexistent:/usr/sbin/nologin", users.flotilla, users.flotilla),
		fmt.Sprintf("operator:x:%d:%d::/nonexistent:/usr/sbin/nologin", users.operator, users.operator))
	addLines(t, "/etc/group", filepath.Join(dir, "group"),
		fmt.Sprintf("flotilla:x:%d:operator", users.flotilla), fmt.Sprintf("operator:x:%d:", users.operator))
	var script strings.Builder
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
	fmt.Fprintf(&script, "set -e\nmount -t tmpfs -o mode=755 tmpfs /run\nmkdir -p /run/systemd/system /run/ft\n")
	for name, from := range stage {
		fmt.Fprintf(&script, "cp %s /run/ft/%s\n", q(from), name)
	}
	fmt.Fprintf(&script, "chmod -R a+rX /run/ft\nmount --bind %s /etc/passwd\nmount --bind %s /etc/group\n",
		q(filepath.Join(dir, "passwd")), q(filepath.Join(dir, "group")))
	// The copies are made: now nothing of the machine's below these is seen.
	script.WriteString("for d in /tmp /var/tmp /var/log /var/lib; do mount -t tmpfs -o mode=1777 tmpfs $d; done\n")
	script.WriteString("mkdir -p /var/lib/flotilla && chown flotilla:flotilla /var/lib/flotilla && chmod 0750 /var/lib/flotilla\n")
	// The unified cgroup hierarchy of current distributions, rooted at this
	// process's cgroup (a cgroup namespace); a machine without it leaves
	// systemd the hierarchy it finds.
	script.WriteString("mount -t cgroup2 cgroup2 /sys/fs/cgroup || true\n")
	script.WriteString("exec " + systemd + " --system --unit=basic.target\n")

	var log testwait.Buffer
	cmd := exec.Command(unshare, "--pid", "--cgroup", "--fork", "--mount-proc", "--kill-child", "sh", "-c", script.String())
	cmd.Env = []string{"container=other", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdout, cmd.Stderr = &log, &log
	// In a cgroup of its own, the root of its cgroup namespace: systemd
	// takes the processes of its root cgroup into init.scope, and they must
	// be its own, not the machine's.
	cg, cgFD := cgroupOfItsOwn(t)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cgFD}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		// Killing the namespace's PID 1 kills every process in it; unshare
		// reaps it and exits. --kill-child covers a systemd not yet found.
		if ns.pid > 0 {
			syscall.Kill(ns.pid, syscall.SIGKILL)
		} else {
			cmd.Process.Kill()
		}
		cmd.Wait()
		removeCgroup(t, cg)
	})
	output := func() string { return "systemd said: " + log.String() }
	eventually(t, 30*time.Second, func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
		ns.pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return ns.pid > 0
	}, "systemd started", output)
	eventually(t, 60*time.Second, func() bool {
		out, _ := ns.cmd("systemctl", "is-system-running").Output()
		state := strings.TrimSpace(string(out))
		return state == "running" || state == "degraded"
	}, "systemd running", output)
	return ns, users
}

// cgroupOfItsOwn makes a cgroup (v2) below this process's and returns its
// folder and an open descriptor of it. It skips without a cgroup2 mount.
func cgroupOfItsOwn(t *testing.T) (string, int) {
	t.Helper()
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	require.NoError(t, err)
	root := ""
	for _, line := range strings.Split(string(mounts), "\n") {
		if before, after, ok := strings.Cut(line, " - "); ok && strings.HasPrefix(after, "cgroup2 ") {
			if f := strings.Fields(before); len(f) > 4 {
				root = f[4]
			}
		}
	}
	own, err := os.ReadFile("/proc/self/cgroup")
	require.NoError(t, err)
	path := ""
	for _, line := range strings.Split(strings.TrimSpace(string(own)), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			path = p
		}
	}
	if root == "" || path == "" {
		t.Skip("no cgroup2 hierarchy to give systemd a cgroup of its own")
	}
	dir := filepath.Join(root, path, fmt.Sprintf("flotilla-test-systemd-%d", os.Getpid()))
	require.NoError(t, os.Mkdir(dir, 0o755))
	f, err := os.Open(dir)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return dir, int(f.Fd())
}

// removeCgroup removes dir and the cgroups systemd made below it, once the
// processes in them are gone.
func removeCgroup(t *testing.T, dir string) {
	var dirs []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	slices.Reverse(dirs) // the deepest first
	for _, d := range dirs {
		deadline := time.Now().Add(10 * time.Second)
		for os.Remove(d) != nil && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond) // the killed processes are still leaving it
		}
	}
	if _, err := os.Stat(dir); err == nil {
		t.Logf("cgroup %s could not be removed", dir)
	}
}

// cmd is a command that runs inside the namespaces, as root.
func (ns *systemdNS) cmd(args ...string) *exec.Cmd {
	return exec.Command(ns.nsenter, append([]string{"-t", strconv.Itoa(ns.pid), "-m", "-p", "--"}, args...)...)
}

// run runs a command inside and returns its output; a failure fails the test.
func (ns *systemdNS) run(args ...string) string {
	ns.t.Helper()
	out, err := ns.cmd(args...).CombinedOutput()
	require.NoError(ns.t, err, "%s: %s", strings.Join(args, " "), out)
	return strings.TrimSpace(string(out))
}

// path is p inside the namespaces, as this process reaches it.
func (ns *systemdNS) path(p string) string { return fmt.Sprintf("/proc/%d/root%s", ns.pid, p) }

// mainPID is systemd's MainPID of unit.
func (ns *systemdNS) mainPID(unit string) int {
	pid, _ := strconv.Atoi(ns.run("systemctl", "show", "--property=MainPID", "--value", unit))
	return pid
}

// freeID returns the first id from id on that no line of file uses.
func freeID(t *testing.T, file string, id int) int {
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	used := map[int]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Split(line, ":"); len(f) > 3 {
			for _, s := range f[2:4] {
				n, _ := strconv.Atoi(s)
				used[n] = true
			}
		}
	}
	for used[id] {
		id++
	}
	return id
}

func addLines(t *testing.T, from, to string, lines ...string) {
	b, err := os.ReadFile(from)
	require.NoError(t, err)
	s := strings.TrimRight(string(b), "\n") + "\n" + strings.Join(lines, "\n") + "\n"
	require.NoError(t, os.WriteFile(to, []byte(s), 0o644))
}

// Under a real systemd, with the units flotilla systemd writes: the socket
// starts the service on the first probe; ps finds the process as root from
// the socket, and as an operator who cannot read the service's open files
// from systemd's MainPID; restart goes through systemctl reload, answers
// every request sent meanwhile and logs each of them, and systemd then
// supervises the successor (it restarts it when it is killed).
func TestCLI_UnderSystemd(t *testing.T) {
	dir := t.TempDir()
	registry := filepath.Join(dir, "flotilla.toml")
	require.NoError(t, os.WriteFile(registry, []byte(`[defaults]
db = "/var/lib/flotilla/flotilla.db"
socket_dir = "/run/flotilla"

[[service]]
name = "svc-a"
exec = "/run/ft/flotilla"
env = { FLOTILLA_TEST_SERVICE = "svc-a" }
`), 0o644))
	ns, users := bootSystemd(t, map[string]string{"flotilla": os.Args[0], "flotilla.toml": registry})
	// The command runs inside as its own process, with systemctl on its
	// PATH unless path says otherwise.
	flotillaOn := func(path string, args ...string) []string {
		return append([]string{"env", "-i", "PATH=" + path, "FLOTILLA_TEST_CLI=1", "/run/ft/flotilla", "--registry", "/run/ft/flotilla.toml"}, args...)
	}
	flotilla := func(args ...string) []string { return flotillaOn("/usr/sbin:/usr/bin:/sbin:/bin", args...) }
	out := ns.run(flotilla("systemd", "--dir", "/run/systemd/system")...)
	assert.Contains(t, out, "systemctl enable --now flotilla@svc-a.socket")
	ns.run("systemctl", "daemon-reload")
	ns.run("systemctl", "start", "flotilla@svc-a.socket")
	const unit = "flotilla@svc-a.service"

	psOn := func(path string, as ...string) serviceStatus {
		out, err := ns.cmd(append(as, flotillaOn(path, "ps", "--json")...)...).Output()
		var row serviceStatus
		if err == nil {
			err = json.Unmarshal(out, &row)
		}
		if err != nil {
			return serviceStatus{Reason: fmt.Sprintf("%v: %s", err, out)}
		}
		return row
	}
	ps := func(as ...string) serviceStatus { return psOn("/usr/sbin:/usr/bin:/sbin:/bin", as...) }
	var row serviceStatus
	eventually(t, 30*time.Second, func() bool { row = ps(); return row.State == "pass" },
		"the socket's first probe starts svc-a", func() string { return fmt.Sprintf("%+v", row) },
		func() string {
			o, _ := ns.cmd("systemctl", "status", "--no-pager", unit).CombinedOutput()
			return string(o)
		})
	first := ns.mainPID(unit)
	require.NotZero(t, first)
	row = ps() // settled: the first probe may see the process before systemd has moved it into its unit
	assert.Equal(t, first, row.PID, "root finds the service from its socket")
	assert.Equal(t, unit, row.Unit)

	operator := []string{"setpriv", "--reuid=" + strconv.Itoa(users.operator), "--regid=" + strconv.Itoa(users.operator), "--init-groups"}
	row = ps(operator...)
	assert.Equal(t, "pass", row.State, "an operator of the flotilla group reaches the socket: %+v", row)
	assert.Equal(t, first, row.PID, "an operator, who cannot read the service's open files, finds it from MainPID")
	noSystemctl := psOn("/nonexistent", operator...)
	assert.Zero(t, noSystemctl.PID, "without systemctl the operator cannot know the pid: the one above came from MainPID")

	// Requests all through the restart, through the socket inside.
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", ns.path("/run/flotilla/svc-a.sock"))
	}}, Timeout: 10 * time.Second}
	get := func() (int, error) {
		res, err := client.Get("http://svc-a/work")
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode, nil
	}
	l := startLoad(get, get, get, get)
	eventually(t, 10*time.Second, func() bool { return l.ok.Load() > 50 }, "requests flow")
	out = ns.run(flotilla("restart", "svc-a", "--json")...)
	eventually(t, 10*time.Second, func() bool { return l.ok.Load() > 100 }, "requests flow after the restart")
	failures := l.stop()
	answered := l.ok.Load()
	var r restarted
	require.NoError(t, json.Unmarshal([]byte(out), &r), out)
	assert.True(t, r.OK, "%+v", r)
	assert.Equal(t, "systemctl reload", r.Method)
	assert.Equal(t, first, r.OldPID)
	assert.NotEqual(t, first, r.NewPID)
	assert.Equal(t, r.NewPID, ns.mainPID(unit), "the successor told systemd it is the main process")
	assert.Empty(t, failures, "requests during the restart")

	// A graceful stop writes the last rows: every answered request is logged
	// (ps counts the log's rows; the probes of /health are not logged).
	ns.run("systemctl", "stop", unit)
	// (The probe of this ps starts the service again through its socket.)
	assert.Equal(t, answered, ps().Requests, "rows in the log against requests answered")

	// systemd restarts a killed successor of a reload, as its own process.
	ns.run("systemctl", "start", unit)
	eventually(t, 30*time.Second, func() bool { return ps().State == "pass" }, "svc-a back")
	again := ns.mainPID(unit)
	ns.run("systemctl", "reload", unit)
	var successor int
	eventually(t, 30*time.Second, func() bool { successor = ns.mainPID(unit); return successor != again && successor != 0 }, "the reload's successor is the main process")
	ns.run("kill", "-9", strconv.Itoa(successor))
	eventually(t, 30*time.Second, func() bool {
		pid := ns.mainPID(unit)
		return pid != 0 && pid != successor && ps().State == "pass"
	}, "systemd restarts the killed successor")
	assert.Equal(t, "1", ns.run("systemctl", "show", "--property=NRestarts", "--value", unit))
}
