package discovery_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/discovery"
)

// serveOn serves a tiny handler that says who it is on ln.
func serveOn(t testing.TB, ln net.Listener, who string) {
	t.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "flotilla-lines" && strings.EqualFold(r.Header.Get("Connection"), "upgrade") {
			// An upgraded connection: it answers one line.
			conn, rw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: flotilla-lines\r\nConnection: Upgrade\r\n\r\n")
			rw.Flush()
			line, _ := rw.ReadString('\n')
			fmt.Fprintf(rw, "%s %s says %s", who, r.URL.Path, line)
			rw.Flush()
			return
		}
		fmt.Fprintf(w, "%s %s real-ip=%s request-id=%s connection=%s", who, r.URL.Path, r.Header.Get("X-Real-IP"), r.Header.Get("X-Request-ID"), r.Header.Get("Connection"))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

func body(t testing.TB, c *http.Client, url string) string {
	t.Helper()
	res, err := c.Get(url)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode, string(b))
	return string(b)
}

// A fleet of two services, one on a unix socket and one on a port, called
// by name.
func testFleet(t testing.TB) *discovery.Registry {
	t.Helper()
	return serveRegistry(t, fmt.Sprintf(`
[defaults]
socket_dir = "run"

[[service]]
name = "agent-geo"

[[service]]
name = "crypto-feeds"
port = %d
`, freePort(t, "tcp")))
}

// serveRegistry writes a port map to a new folder, loads it, and serves
// each of its services on its endpoint, answering with its name.
func serveRegistry(t testing.TB, toml string) *discovery.Registry {
	t.Helper()
	dir, err := os.MkdirTemp("", "fl")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "flotilla.toml")
	require.NoError(t, os.WriteFile(path, []byte(toml), 0o644))
	reg, err := discovery.Load(path)
	require.NoError(t, err)
	for _, s := range reg.Services() {
		ln, err := reg.Listen(context.Background(), s.Name)
		require.NoError(t, err)
		serveOn(t, ln, s.Name)
	}
	return reg
}

func TestTransport_DialsByName(t *testing.T) {
	reg := testFleet(t)
	c := &http.Client{Transport: reg.Transport(nil)}
	assert.Contains(t, body(t, c, "http://agent-geo/geo/8.8.8.8"), "agent-geo /geo/8.8.8.8")
	assert.Contains(t, body(t, c, "http://crypto-feeds/api/prices"), "crypto-feeds /api/prices")
	tr := reg.Transport(nil)
	assert.Equal(t, discovery.DefaultMaxIdleConnsPerHost, tr.MaxIdleConnsPerHost)
}

func TestTransport_StrictNames(t *testing.T) {
	reg := testFleet(t)
	outside, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	serveOn(t, outside, "outside")

	open := &http.Client{Transport: reg.Transport(nil)}
	assert.Contains(t, body(t, open, "http://"+outside.Addr().String()+"/"), "outside", "unknown names fall through by default")

	strict := &http.Client{Transport: reg.Transport(nil, discovery.WithStrictNames())}
	_, err = strict.Get("http://" + outside.Addr().String() + "/")
	require.Error(t, err)
	assert.ErrorIs(t, err, discovery.ErrUnknownService)
	assert.Contains(t, body(t, strict, "http://agent-geo/"), "agent-geo")
}

// The same minimal handler over a unix socket and over loopback TCP,
// through the registry transport.
func BenchmarkTransport(b *testing.B) {
	reg := testFleet(b)
	for _, name := range []string{"agent-geo", "crypto-feeds"} {
		ep, _ := reg.Lookup(name)
		b.Run(ep.Network, func(b *testing.B) {
			c := &http.Client{Transport: reg.Transport(nil)}
			url := "http://" + name + "/x"
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					res, err := c.Get(url)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}
