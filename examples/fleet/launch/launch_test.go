package launch_test

import (
	"context"
	"database/sql"
	"debug/buildinfo"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	_ "github.com/mattn/go-sqlite3"

	"github.com/flotilla-go/flotilla/examples/fleet/launch"
)

// A fleet of 10 real processes: started together, healthy, exercised
// through the gateway, restarted all at once twice: no crash, no lost row.
// On the way, the examples' main behaviours and bad-input answers.
func TestFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs 10 processes")
	}
	dir, err := os.MkdirTemp("", "fleet")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	var out strings.Builder
	ctx := context.Background()
	f, err := launch.Start(ctx, dir, 10, &out, launch.Lean()) // lean, as the demo builds by default
	require.NoError(t, err, out.String())
	t.Cleanup(f.Stop)
	for round := range 3 { // the start, then two restarts of all at once
		if round > 0 {
			f.Stop()
		}
		require.NoError(t, f.Launch(), out.String())
		require.NoError(t, f.WaitHealthy(ctx), out.String())
		_, err := f.Traffic(ctx)
		require.NoError(t, err, out.String())
	}
	assert.Equal(t, 10, f.Size())
	assert.Len(t, f.PIDs(), 10)
	for _, pid := range f.PIDs() { // a terminal's Ctrl-C reaches the launcher alone, which stops them with SIGTERM
		pgid, err := syscall.Getpgid(pid)
		require.NoError(t, err)
		assert.Equal(t, pid, pgid, "service %d leads a process group of its own", pid)
	}
	// Built lean for real: no OTLP exporters, so no gRPC, in the binaries.
	info, err := buildinfo.ReadFile(filepath.Join(dir, "bin", "echosvc"))
	require.NoError(t, err)
	for _, d := range info.Deps {
		assert.NotEqual(t, "google.golang.org/grpc", d.Path, "a lean build has no gRPC")
	}

	get := func(u string) (int, string) {
		res, err := f.Client().Get(u)
		require.NoError(t, err)
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	code, body := get("http://agent-geo/geo/not-an-ip")
	assert.Equal(t, 400, code)
	assert.Contains(t, body, "is not an IP address")

	// The upstream fails: crypto-feeds answers its last good prices, stale.
	code, body = get("http://crypto-feeds/api/prices")
	require.Equal(t, 200, code, body)
	res, err := f.Client().PostForm("http://upstream/mode", url.Values{"mode": {"fail"}})
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusNoContent, res.StatusCode)
	code, body = get("http://crypto-feeds/api/prices")
	require.Equal(t, 200, code, body)
	var p struct {
		Stale  bool               `json:"stale"`
		Prices map[string]float64 `json:"prices"`
		Reason string             `json:"reason"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &p))
	assert.True(t, p.Stale)
	assert.Contains(t, p.Prices, "BTC")
	assert.Contains(t, p.Reason, "503")

	// The dashboard shows the fleet's traffic.
	code, body = get("http://dashboard/")
	assert.Equal(t, 200, code)
	assert.Contains(t, body, `<tr data-service="agent-geo">`)

	// healthmon sees the fleet.
	code, body = get("http://healthmon/status")
	assert.Equal(t, 200, code)
	assert.Contains(t, body, `"targets"`)

	f.Stop()
	assert.Zero(t, f.Crashes(), out.String())
	lost, err := f.LostRows()
	require.NoError(t, err)
	assert.Zero(t, lost, out.String())

	// gateway → agent-geo and gateway → crypto-feeds → upstream: the rows of
	// one call share its trace id and its request id in the one file.
	db, err := sql.Open("sqlite3", "file:"+dir+"/flotilla.db?mode=ro")
	require.NoError(t, err)
	defer db.Close()
	for _, hop := range []struct{ path, service string }{
		{"/v1/agent-geo/geo/192.0.2.1", "agent-geo"},
		{"/v1/crypto-feeds/api/prices", "upstream"},
	} {
		var n int
		err := db.QueryRow(`SELECT count(*) FROM requests g JOIN requests s
			ON s.trace_id = g.trace_id AND s.service = ?
			   AND s.request_id = g.request_id
			WHERE g.service = 'agent-gateway' AND g.path = ? AND g.trace_id <> ''`, hop.service, hop.path).Scan(&n)
		require.NoError(t, err)
		assert.Equal(t, 3, n, "%s: one call per start and restart, each traced through", hop.path)
	}
}
