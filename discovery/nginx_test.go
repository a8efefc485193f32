package discovery_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
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
	"github.com/flotilla-go/flotilla/internal/testwait"
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
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	startNginx(t, bin, dir, conf, addr)

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

// startNginx runs a real nginx with conf included in a minimal nginx.conf
// of dir, and waits until it accepts on addr.
func startNginx(t *testing.T, bin, dir string, conf []byte, addr string) {
	t.Helper()
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
	var stderr testwait.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // master and workers
		cmd.Wait()
	})
	testwait.Until(t, 10*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, "nginx to start", stderr.String)
}

// selfSigned writes a certificate for names and its key into dir.
func selfSigned(t *testing.T, dir string, names ...string) (certPath, keyPath string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	require.NoError(t, os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600))
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certPath, keyPath, pool
}

// The front door from the port map, in a real nginx: TLS with http
// redirecting, routing by host and by path, a rate limit answered 429 with
// Retry-After, a body limit answered 413, and upgrades through TLS.
func TestNginxConfig_FrontDoor(t *testing.T) {
	bin := needTool(t, "nginx")
	tlsPort, httpPort := freePort(t, "tcp"), freePort(t, "tcp")
	certDir := t.TempDir()
	cert, key, pool := selfSigned(t, certDir, "fleet.example.com", "geo.example.com", "api.example.com")
	reg := serveRegistry(t, fmt.Sprintf(`
[defaults]
socket_dir = "run"

[nginx]
listen = "127.0.0.1:%d"
server_name = "fleet.example.com"
tls_cert = %q
tls_key = %q
root = "agent-gateway"

[[service]]
name = "agent-gateway"
public = true

[[service]]
name = "agent-geo"
public = true
hosts = ["geo.example.com"]

[[service]]
name = "crypto-feeds"
public = true
hosts = ["api.example.com"]
paths = ["/prices/"]
body_limit = "1k"
buffering = false

[[service]]
name = "webhooks"
public = true
paths = ["/webhooks/"]
rate = "1r/s"
burst = 2
`, tlsPort, cert, key))
	dir := filepath.Dir(reg.Path())
	conf, err := discovery.NginxConfig(reg, discovery.NginxOptions{RedirectListen: fmt.Sprintf("127.0.0.1:%d", httpPort)})
	require.NoError(t, err)
	assert.Contains(t, string(conf), "proxy_buffering off;")
	tlsAddr := fmt.Sprintf("127.0.0.1:%d", tlsPort)
	startNginx(t, bin, dir, conf, tlsAddr)

	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", tlsAddr)
	}
	c := &http.Client{
		Transport:     &http.Transport{DialContext: dial, TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	for url, want := range map[string]string{
		"https://fleet.example.com/":                "agent-gateway /",
		"https://fleet.example.com/agent-gateway/x": "agent-gateway /x",
		"https://geo.example.com/geo/8.8.8.8":       "agent-geo /geo/8.8.8.8",
		"https://api.example.com/prices/btc":        "crypto-feeds /prices/btc",
	} {
		assert.Contains(t, body(t, c, url), want, url)
	}
	res, err := c.Get("https://api.example.com/elsewhere")
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusNotFound, res.StatusCode, "only the host's paths are routed")

	// http redirects to https.
	plain := &http.Client{CheckRedirect: c.CheckRedirect}
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/geo/1?x=2", httpPort), nil)
	req.Host = "geo.example.com"
	res, err = plain.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusMovedPermanently, res.StatusCode)
	assert.Equal(t, "https://geo.example.com/geo/1?x=2", res.Header.Get("Location"))

	// The body limit.
	res, err = c.Post("https://api.example.com/prices/upload", "text/plain", strings.NewReader(strings.Repeat("x", 4096)))
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusRequestEntityTooLarge, res.StatusCode)

	// The rate limit: 1 a second and a burst of 2, so of 8 at once at
	// most 3 pass, and the rest are 429 with Retry-After.
	limited := 0
	for range 8 {
		res, err := c.Get("https://fleet.example.com/webhooks/in")
		require.NoError(t, err)
		res.Body.Close()
		if res.StatusCode == http.StatusTooManyRequests {
			limited++
			assert.Equal(t, "1", res.Header.Get("Retry-After"))
		}
	}
	assert.GreaterOrEqual(t, limited, 5)

	// An upgrade through TLS, to the root.
	conn, err := tls.Dial("tcp", tlsAddr, &tls.Config{RootCAs: pool, ServerName: "fleet.example.com"})
	require.NoError(t, err)
	defer conn.Close()
	fmt.Fprint(conn, "GET /stream HTTP/1.1\r\nHost: fleet.example.com\r\nUpgrade: flotilla-lines\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(conn)
	up, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	assert.Equal(t, http.StatusSwitchingProtocols, up.StatusCode)
	fmt.Fprint(conn, "hello\n")
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "agent-gateway /stream says hello\n", line)
}
