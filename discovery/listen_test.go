package discovery_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/discovery"
)

// The test binary re-executes itself as a service started by systemd socket
// activation: DISCOVERY_TEST_CHILD=activated.
func TestMain(m *testing.M) {
	if os.Getenv("DISCOVERY_TEST_CHILD") == "activated" {
		os.Exit(activatedChild())
	}
	os.Exit(m.Run())
}

// activatedChild plays a service that systemd started with its socket on
// fd 3. systemd sets LISTEN_PID to the new process's pid, which only the
// process itself knows here, so it sets it as systemd would have.
func activatedChild() int {
	os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	reg, err := discovery.Load(os.Getenv("DISCOVERY_TEST_REGISTRY"))
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	ln, err := reg.Listen(context.Background(), "agent-geo")
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("listening", ln.Addr().Network(), os.Getenv("LISTEN_FDS") == "")
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "from the activated child")
	}))
	return 0
}

func sockPath(t *testing.T, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "fl")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "run", name+".sock")
}

func TestListen_UnixSocket(t *testing.T) {
	path := sockPath(t, "agent-geo")
	ln, err := discovery.Listen(context.Background(), discovery.Endpoint{Network: "unix", Address: path})
	require.NoError(t, err)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.ModeSocket, fi.Mode().Type())
	assert.Equal(t, os.FileMode(0o660), fi.Mode().Perm())
	dir, err := os.Stat(filepath.Dir(path))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o750), dir.Mode().Perm())

	// A second listener on a live socket is refused, and the socket stays.
	_, err = discovery.Listen(context.Background(), discovery.Endpoint{Network: "unix", Address: path}, discovery.WithName("agent-geo"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `service "agent-geo"`)
	assert.Contains(t, err.Error(), "already in use by a running process")
	assert.FileExists(t, path)

	require.NoError(t, ln.Close())
	assert.NoFileExists(t, path, "closing the listener removes the socket")
}

func TestListen_StaleSocketIsReused(t *testing.T) {
	path := sockPath(t, "stale")
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o750))
	// A socket file nobody accepts on, as a killed process leaves it.
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	require.NoError(t, err)
	require.NoError(t, syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}))
	syscall.Close(fd)
	require.FileExists(t, path)

	ln, err := discovery.Listen(context.Background(), discovery.Endpoint{Network: "unix", Address: path}, discovery.WithSocketMode(0o600))
	require.NoError(t, err)
	defer ln.Close()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}

func TestListen_NeverRemovesOtherFiles(t *testing.T) {
	path := sockPath(t, "precious")
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o750))
	require.NoError(t, os.WriteFile(path, []byte("data"), 0o600))
	_, err := discovery.Listen(context.Background(), discovery.Endpoint{Network: "unix", Address: path})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "is not a socket")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "data", string(b))
}

func TestListen_SocketPathTooLong(t *testing.T) {
	path := "/tmp/" + strings.Repeat("x", 110) + ".sock"
	_, err := discovery.Listen(context.Background(), discovery.Endpoint{Network: "unix", Address: path})
	assert.ErrorContains(t, err, "longer than the OS limit of 107")
}

func TestListen_PortInUse(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer held.Close()
	_, port, _ := net.SplitHostPort(held.Addr().String())
	_, err = discovery.Listen(context.Background(), discovery.Endpoint{Network: "tcp", Address: held.Addr().String()}, discovery.WithName("agent-geo"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `service "agent-geo": port `+port+" is already in use")
	assert.ErrorIs(t, err, syscall.EADDRINUSE)
}

func TestListen_SRVIsNotListenable(t *testing.T) {
	_, err := discovery.Listen(context.Background(), discovery.Endpoint{Network: "srv", Address: "_x._tcp.example"})
	assert.ErrorContains(t, err, "only for calling")
}

func TestRegistryListen(t *testing.T) {
	path := sockPath(t, "agent-geo")
	reg, err := discovery.Load(writeFile(t, fmt.Sprintf("[[service]]\nname = \"agent-geo\"\nsocket = %q\n", path)))
	require.NoError(t, err)
	ln, err := reg.Listen(context.Background(), "agent-geo")
	require.NoError(t, err)
	defer ln.Close()
	assert.Equal(t, path, ln.Addr().String())

	_, err = reg.Listen(context.Background(), "agent-nope")
	assert.ErrorIs(t, err, discovery.ErrUnknownService)
	assert.ErrorContains(t, err, "add a [[service]]")
}

// A service started by systemd socket activation serves on the inherited
// socket rather than the one in the registry.
func TestRegistryListen_SystemdActivation(t *testing.T) {
	inherited, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := inherited.Addr().String()
	f, err := inherited.(*net.TCPListener).File()
	require.NoError(t, err)
	inherited.Close() // the child holds its own copy

	regPath := writeFile(t, "[[service]]\nname = \"agent-geo\"\nport = 1\n") // port 1: never used
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "DISCOVERY_TEST_CHILD=activated", "DISCOVERY_TEST_REGISTRY="+regPath,
		"LISTEN_FDS=1", "LISTEN_FDNAMES=agent-geo")
	cmd.ExtraFiles = []*os.File{f} // fd 3
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	f.Close()

	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "listening tcp true\n", line, "inherited socket used, env unset")

	res, err := http.Get("http://" + addr + "/")
	require.NoError(t, err)
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	assert.Equal(t, "from the activated child", string(body))
}
