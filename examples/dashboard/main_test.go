package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/discovery"
	"github.com/flotilla-go/flotilla/health"
	"github.com/flotilla-go/flotilla/logger"
)

// chromium returns the browser, or skips (fails under
// FLOTILLA_REQUIRE_INTEGRATION) when it is not installed.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("FLOTILLA_REQUIRE_INTEGRATION") != "" {
		t.Fatal("chromium is not installed and FLOTILLA_REQUIRE_INTEGRATION is set: apt-get install chromium")
	}
	t.Skip("chromium is not installed; set FLOTILLA_REQUIRE_INTEGRATION=1 to make this a failure")
	return ""
}

func browse(t *testing.T, bin, url string, extra ...string) []byte {
	t.Helper()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(args, url)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), stderr.String())
	return stdout.Bytes()
}

// The dashboard over a seeded log, rendered by a real headless Chromium.
func TestDashboard_InChromium(t *testing.T) {
	bin := chromium(t)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "flotilla.db")
	store, err := logger.Open(dbPath)
	require.NoError(t, err)
	now := time.Now()
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	for i := 1; i <= 100; i++ { // agent-geo: 100 hits over the hour, 5 of them 500s, 1..100 ms
		status := 200
		if i%20 == 0 {
			status = 500
		}
		store.Log(logger.Record{Time: now.Add(-time.Duration(i) * 30 * time.Second), Service: "agent-geo", Method: "GET",
			Path: "/geo/192.0.2.1", Route: "/geo/:ip", Status: status, Duration: time.Duration(i) * time.Millisecond})
	}
	store.Log(logger.Record{Time: now.Add(-time.Minute), Service: "agent-gateway", Method: "GET", Path: "/v1/agent-geo/geo/1", Status: 502, TraceID: trace, Duration: 3 * time.Millisecond})
	store.Log(logger.Record{Time: now.Add(-time.Minute + time.Millisecond), Service: "agent-geo", Method: "GET", Path: "/geo/1", Status: 500, TraceID: trace, Error: "table not loaded", Duration: time.Millisecond})
	store.Log(logger.Record{Time: now.Add(-3 * time.Hour), Service: "old-service", Status: 200})
	require.NoError(t, store.Close())

	up := httptest.NewServer(health.New("agent-geo"))
	defer up.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	reg, err := discovery.Load(writeRegistry(t, dir))
	require.NoError(t, err)
	mon := health.NewMonitor([]health.Target{
		{Name: "agent-geo", URL: up.URL + "/health"},
		{Name: "crypto-feeds", URL: down.URL + "/health"},
	}, health.WithDownAfter(1))
	mon.Poll(context.Background())

	app, closeFn, err := newApp(reg, dbPath, mon)
	require.NoError(t, err)
	defer closeFn()
	srv := httptest.NewServer(app)
	defer srv.Close()

	dom := string(browse(t, bin, srv.URL+"/?window=1h", "--dump-dom"))
	row := regexp.MustCompile(`(?s)<tr data-service="agent-geo">.*?</tr>`).FindString(dom)
	require.NotEmpty(t, row, dom)
	assert.Contains(t, row, `<td class="hits">101</td>`, "100 seeded + the traced one")
	assert.Contains(t, row, `<td class="errors">5.9%</td>`, "6 of 101")
	assert.Contains(t, row, `<td class="p99">99.0</td>`)
	assert.NotContains(t, dom, "old-service", "outside the hour")
	for _, id := range []string{"chart-requests", "chart-latency"} {
		svg := regexp.MustCompile(`(?s)<svg id="` + id + `".*?</svg>`).FindString(dom)
		require.NotEmpty(t, svg, id)
		heights := regexp.MustCompile(`height="([0-9.]+)"><title>`).FindAllStringSubmatch(svg, -1)
		assert.Len(t, heights, 60, id)
		drawn := 0
		for _, h := range heights {
			if h[1] != "0" {
				drawn++
			}
		}
		assert.Greater(t, drawn, 10, "%s draws bars", id)
	}
	assert.Regexp(t, `<tr data-service="agent-geo"><td>agent-geo</td><td class="pass">pass</td>`, dom)
	assert.Regexp(t, `<tr data-service="crypto-feeds"><td>crypto-feeds</td><td class="fail">fail \(down\)</td><td>connection refused</td>`, dom)
	assert.Contains(t, dom, `trace=`+trace)

	traceDOM := string(browse(t, bin, srv.URL+"/?trace="+trace, "--dump-dom"))
	tbl := regexp.MustCompile(`(?s)<table id="trace">.*?</table>`).FindString(traceDOM)
	assert.Equal(t, 2, strings.Count(tbl, "<tr>")-1, "the trace's two rows")
	assert.Regexp(t, `(?s)agent-gateway.*agent-geo.*table not loaded`, tbl, "in order")

	// The screenshot is kept as a test artifact.
	out := os.Getenv("FLOTILLA_ARTIFACTS")
	if out == "" {
		out = t.TempDir()
	}
	require.NoError(t, os.MkdirAll(out, 0o755))
	shot := filepath.Join(out, "dashboard.png")
	browse(t, bin, srv.URL+"/", "--screenshot="+shot, "--window-size=1280,1100", "--hide-scrollbars")
	png, err := os.ReadFile(shot)
	require.NoError(t, err)
	assert.True(t, bytes.HasPrefix(png, []byte("\x89PNG")), "a PNG")
	assert.Greater(t, len(png), 20_000, "a page with content")
	t.Logf("screenshot: %s", shot)

	bad := httptest.NewRecorder()
	app.ServeHTTP(bad, httptest.NewRequest(http.MethodGet, "/?window=7d", nil))
	assert.Equal(t, http.StatusBadRequest, bad.Code)
}

func writeRegistry(t *testing.T, dir string) string {
	p := filepath.Join(dir, "flotilla.toml")
	require.NoError(t, os.WriteFile(p, []byte(fmt.Sprintf("[defaults]\nsocket_dir = %q\n[[service]]\nname = \"agent-geo\"\n", filepath.Join(dir, "run"))), 0o644))
	return p
}
