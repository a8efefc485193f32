package platform_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// openStream asks the service at addr to upgrade path to the line-echo
// protocol of streamLines.
func openStream(t *testing.T, network, addr, path string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial(network, addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: svc\r\nUpgrade: flotilla-lines\r\nConnection: Upgrade\r\n\r\n", path)
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, res.StatusCode)
	return conn, br
}

func echoes(t *testing.T, conn net.Conn, br *bufio.Reader, line string) {
	t.Helper()
	fmt.Fprintln(conn, line)
	got, err := br.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, line+"\n", got)
}

// Upgraded connections (WebSockets, say), straight and through a relay
// that proxies them with platform.Client's transport, as a gateway does:
// they outlive the request timeout that still ends plain requests, are
// logged as 101, and end with the service: on SIGTERM a handler's context
// ends with ErrDraining, and the process exits 0 once it returned.
func TestRun_UpgradedConnections(t *testing.T) {
	dir := tempDir(t)
	db := filepath.Join(dir, "flotilla.db")
	reg := filepath.Join(dir, "flotilla.toml")
	require.NoError(t, writeRegistry(reg, "streamer", "relay"))
	env := []string{"FLOTILLA_REGISTRY=" + reg, "FLOTILLA_DB=" + db, "PLATFORM_TEST_REQUEST_TIMEOUT=50ms"}
	streamerSock := filepath.Join(dir, "run", "streamer.sock")
	relaySock := filepath.Join(dir, "run", "relay.sock")
	streamer := start(t, "streamer", env...).at("unix", streamerSock)
	relay := start(t, "relay", append(env, "PLATFORM_TEST_RELAY_TO=streamer")...).at("unix", relaySock)
	streamer.healthy(t)
	relay.healthy(t)

	relayed, relayedR := openStream(t, "unix", relaySock, "/relay/stream")
	direct, directR := openStream(t, "unix", streamerSock, "/stream")
	echoes(t, relayed, relayedR, "one")
	echoes(t, direct, directR, "one")
	// Plain requests begun after the streams end on the timeout, so the
	// streams are past theirs too.
	for _, s := range []*service{relay, streamer} {
		code, _ := s.get(t, "/deadline")
		require.Equal(t, http.StatusServiceUnavailable, code, "the request timeout is on")
	}
	echoes(t, relayed, relayedR, "two")
	echoes(t, direct, directR, "two")

	// The relay drains: its proxy's context ends, and so does the stream
	// through it; the streamer's handler sees its client gone.
	assert.Equal(t, 0, relay.stop(t))
	rest, err := io.ReadAll(relayedR)
	assert.NoError(t, err)
	assert.Empty(t, string(rest))

	// The streamer drains: its handler is told why, and returns.
	assert.Equal(t, 0, streamer.stop(t))
	rest, err = io.ReadAll(directR)
	assert.NoError(t, err)
	assert.Equal(t, "bye: platform: the service is draining\n", string(rest))

	d := openDB(t, db)
	for route, n := range map[string]int{"/relay/*": 1, "/stream": 2} {
		got := rows(t, d, "route = '"+route+"'")
		require.Len(t, got, n, route)
		for _, r := range got {
			assert.Equal(t, http.StatusSwitchingProtocols, r.status, route)
		}
	}
}
