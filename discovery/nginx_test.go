package discovery_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/discovery"
)

// Three services (two on unix sockets, one on a port) behind a real nginx
// running the generated configuration.
func TestNginxConfig_RealNginx(t *testing.T) {
	bin := needTool(t, "nginx")
	port := freePort(t, "tcp")
	reg := serveRegistry(t, fmt.Sprintf(`
[defaults]
socket_dir = "run"

[[service]]
name = "agent-gateway"
public = true

[[service]]
name = "agent-geo"
public = true

[[service]]
name = "crypto-feeds"
port = %d
public = true

[[service]]
name = "internal-only"
`, freePort(t, "tcp")))
	dir := filepath.Dir(reg.Path())

	conf, err := discovery.NginxConfig(reg, discovery.NginxOptions{Listen: fmt.Sprintf("127.0.0.1:%d", port), Root: "agent-gateway"})
	require.NoError(t, err)
	assert.NotContains(t, string(conf), "internal-only", "only public services")
	assert.Contains(t, string(conf), "keepalive 32;")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "flotilla.conf"), conf, 0o644))
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers must reach the 0660 sockets
	}
	main := fmt.Sprintf(`%s
daemon off;
worker_processes 1;
pid %[2]s/nginx.pid;
error_log stderr warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %[2]s/body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    include %[2]s/flotilla.conf;
}
`, user, dir)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(main), 0o644))

	check, err := exec.Command(bin, "-t", "-e", "stderr", "-p", dir, "-c", filepath.Join(dir, "nginx.conf")).CombinedOutput()
	require.NoError(t, err, "nginx -t: %s", check)

	cmd := exec.Command(bin, "-e", "stderr", "-p", dir, "-c", filepath.Join(dir, "nginx.conf"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // master and workers
		cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		require.True(t, time.Now().Before(deadline), "nginx did not start: %s", stderr.String())
		time.Sleep(10 * time.Millisecond)
	}

	c := &http.Client{}
	for _, tc := range []struct{ path, want string }{
		{"/agent-geo/geo/8.8.8.8", "agent-geo /geo/8.8.8.8 real-ip=127.0.0.1"},
		{"/crypto-feeds/api/prices", "crypto-feeds /api/prices real-ip=127.0.0.1"},
		{"/agent-gateway/v1/x", "agent-gateway /v1/x real-ip=127.0.0.1"},
		{"/", "agent-gateway / real-ip=127.0.0.1"},
	} {
		got := body(t, c, "http://"+addr+tc.path)
		assert.Contains(t, got, tc.want, tc.path)
		assert.Regexp(t, `request-id=[0-9a-f]{32} `, got, "nginx makes a request id")
		assert.True(t, strings.HasSuffix(got, " connection="), "no Connection header, so the upstream connection is kept: %s", got)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/agent-geo/x", nil)
	req.Header.Set("X-Request-ID", "client-chosen-42")
	res, err := c.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b := make([]byte, 200)
	n, _ := res.Body.Read(b)
	assert.Contains(t, string(b[:n]), "request-id=client-chosen-42", "the client's id is kept")

	// A service that is not public is not routed: the root service answers.
	assert.Contains(t, body(t, c, "http://"+addr+"/internal-only/"), "agent-gateway /internal-only/")

	// Upgraded connections (WebSockets, say) pass through, to a service on
	// a unix socket, on a port, and at the root.
	for path, want := range map[string]string{
		"/agent-geo/stream":    "agent-geo /stream says hello\n",
		"/crypto-feeds/stream": "crypto-feeds /stream says hello\n",
		"/stream":              "agent-gateway /stream says hello\n",
	} {
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: fleet\r\nUpgrade: flotilla-lines\r\nConnection: Upgrade\r\n\r\n", path)
		br := bufio.NewReader(conn)
		res, err := http.ReadResponse(br, nil)
		require.NoError(t, err, path)
		assert.Equal(t, http.StatusSwitchingProtocols, res.StatusCode, path)
		fmt.Fprint(conn, "hello\n")
		line, err := br.ReadString('\n')
		assert.NoError(t, err, path)
		assert.Equal(t, want, line)
		conn.Close()
	}
}

func TestNginxConfig_RootMustExist(t *testing.T) {
	reg, err := discovery.Load("testdata/fleet.toml")
	require.NoError(t, err)
	_, err = discovery.NginxConfig(reg, discovery.NginxOptions{Root: "nope"})
	assert.ErrorContains(t, err, `root service "nope"`)
	conf, err := discovery.NginxConfig(reg, discovery.NginxOptions{})
	require.NoError(t, err)
	assert.Contains(t, string(conf), "server unix:/run/flotilla/geo.sock;")
	assert.Contains(t, string(conf), "server 127.0.0.1:8080;")
	assert.NotContains(t, string(conf), "remote-geo", "not public")
}
