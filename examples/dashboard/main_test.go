package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
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

// seed writes a log with known numbers: in the last hour agent-geo answers
// 112 requests (96 2xx, 10 404s without a route, 6 5xx; two handler
// errors, one of them answered 200), and agent-gateway one traced 502 that
// reached agent-geo; old-service answered once, three hours ago.
func seed(t *testing.T, dbPath string, now time.Time) {
	store, err := logger.Open(dbPath)
	require.NoError(t, err)
	for i := 1; i <= 100; i++ {
		status := 200
		if i%20 == 0 {
			status = 500
		}
		store.Log(logger.Record{Time: now.Add(-time.Duration(i) * 30 * time.Second), Service: "agent-geo", Method: "GET",
			Path: "/geo/192.0.2.1", Route: "/geo/:ip", Status: status, Duration: time.Duration(i) * time.Millisecond})
	}
	for i := 1; i <= 10; i++ {
		store.Log(logger.Record{Time: now.Add(-time.Duration(i) * 10 * time.Second), Service: "agent-geo", Method: "GET",
			Path: "/nope", Status: 404, Duration: time.Millisecond})
	}
	store.Log(logger.Record{Time: now.Add(-2 * time.Minute), Service: "agent-geo", Method: "GET", Path: "/geo/1", Route: "/geo/:ip",
		Status: 200, Error: "cache miss: answered from the fallback table", Duration: 2 * time.Millisecond})
	store.Log(logger.Record{Time: now.Add(-time.Minute), Service: "agent-gateway", Method: "GET", Path: "/v1/agent-geo/geo/1",
		Route: "/v1/*", Status: 502, TraceID: traceID, Duration: 3 * time.Millisecond})
	store.Log(logger.Record{Time: now.Add(-time.Minute + time.Millisecond), Service: "agent-geo", Method: "GET", Path: "/geo/1",
		Route: "/geo/:ip", Status: 500, TraceID: traceID, Error: "table not loaded", Duration: time.Millisecond})
	store.Log(logger.Record{Time: now.Add(-3 * time.Hour), Service: "old-service", Status: 200})
	require.NoError(t, store.Close())
}

const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"

// dashboardFixture serves the dashboard over the seeded log, with a port
// map in which agent-geo answers its health checks and crypto-feeds is
// down.
func dashboardFixture(t *testing.T) (url string, app http.Handler) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "flotilla.db")
	seed(t, dbPath, time.Now())
	up := httptest.NewServer(health.New("agent-geo"))
	t.Cleanup(up.Close)
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	reg, err := discovery.Load(writeRegistry(t, dir, up.Listener.Addr().(*net.TCPAddr).Port, down.Listener.Addr().(*net.TCPAddr).Port))
	require.NoError(t, err)
	e, mon, closeFn := newApp(reg, dbPath, health.WithDownAfter(1))
	t.Cleanup(closeFn)
	mon.Poll(context.Background())
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv.URL, e
}

func writeRegistry(t *testing.T, dir string, upPort, downPort int) string {
	p := filepath.Join(dir, "flotilla.toml")
	require.NoError(t, os.WriteFile(p, []byte(fmt.Sprintf(`[[service]]
name = "agent-geo"
port = %d
slo = { availability = "99.9%%", latency = "50ms", latency_target = "90%%" }

[[service]]
name = "crypto-feeds"
port = %d
`, upPort, downPort)), 0o644))
	return p
}

// find returns the first match of re's first group in dom, failing when
// there is none.
func find(t *testing.T, dom, re string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(dom)
	require.NotNil(t, m, "%s not in the page", re)
	return m[1]
}

func number(t *testing.T, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	require.NoError(t, err, s)
	return f
}

// The overview, rendered by a real headless Chromium, shows the seeded
// numbers.
func TestDashboard_Overview(t *testing.T) {
	bin := chromium(t)
	url, app := dashboardFixture(t)
	dom := string(browse(t, bin, url+"/?window=1h", "--dump-dom"))

	row := find(t, dom, `(?s)(<tr data-service="agent-geo">.*?</tr>)`)
	assert.Contains(t, row, `<td class="hits">112</td>`)
	assert.Regexp(t, `<td class="c4xx[^"]*">8.9%</td>`, row, "10 of 112")
	assert.Regexp(t, `<td class="c5xx[^"]*">5.4%</td>`, row, "6 of 112")
	assert.Contains(t, row, `<td class="failed">2</td>`, "the error answered 200 counts")
	assert.InEpsilon(t, 99, number(t, find(t, row, `<td class="p99">([0-9.]+)</td>`)), 0.02, "p99 of 1..100 ms and 12 fast ones")
	assert.Contains(t, row, `<span class="state pass">pass</span>`)
	assert.Regexp(t, `availability <span class="bad">-[0-9.]+%</span>`, row, "6 failures of 112 overspend a 0.1% budget")
	feeds := find(t, dom, `(?s)(<tr data-service="crypto-feeds">.*?</tr>)`)
	assert.Contains(t, feeds, `<td class="hits">0</td>`, "a quiet service of the map is a row")
	assert.Contains(t, feeds, `<span class="state down">down</span>`)
	assert.NotContains(t, dom, `data-service="old-service"`, "outside the hour")

	health := find(t, dom, `(?s)(<table id="health">.*?</table>)`)
	assert.Regexp(t, `(?s)crypto-feeds.*state down.*connection refused`, health)
	burning := find(t, dom, `(?s)(<table id="burning">.*?</table>)`)
	assert.Regexp(t, `(?s)agent-geo.*availability 99.9%.*fast burn`, burning)

	svg := find(t, dom, `(?s)(<svg id="chart-requests".*?</svg>)`)
	var hits, c5 int
	for _, m := range regexp.MustCompile(`data-hits="([0-9]+)" data-4xx="[0-9]+" data-5xx="([0-9]+)"`).FindAllStringSubmatch(svg, -1) {
		h, _ := strconv.Atoi(m[1])
		e, _ := strconv.Atoi(m[2])
		hits, c5 = hits+h, c5+e
	}
	assert.Equal(t, 113, hits, "every request of the hour is in a bar")
	assert.Equal(t, 7, c5)
	assert.GreaterOrEqual(t, len(regexp.MustCompile(`class="xtick"[^>]*>[0-2][0-9]:[0-5][0-9]</text>`).FindAllString(svg, -1)), 3, "a labelled time axis")
	assert.Len(t, regexp.MustCompile(`class="ytick"`).FindAllString(svg, -1), 6, "a labelled value axis")
	lat := find(t, dom, `(?s)(<svg id="chart-latency".*?</svg>)`)
	assert.Contains(t, lat, `data-q="p99"`)

	errs := find(t, dom, `(?s)(<table id="errors">.*?</table>)`)
	assert.Contains(t, errs, `href="/trace/`+traceID+`"`)
	assert.Contains(t, errs, "table not loaded")

	day := string(browse(t, bin, url+"/?window=24h", "--dump-dom"))
	assert.Contains(t, day, `data-service="old-service"`, "inside the day")

	bad := httptest.NewRecorder()
	app.ServeHTTP(bad, httptest.NewRequest(http.MethodGet, "/?window=9d", nil))
	assert.Equal(t, http.StatusBadRequest, bad.Code)
	assert.Contains(t, bad.Body.String(), "1h, 24h, 7d, 30d")
	screenshots(t, bin, url)
}

// A service's page: its routes, statuses and classes.
func TestDashboard_ServicePage(t *testing.T) {
	bin := chromium(t)
	url, app := dashboardFixture(t)
	dom := string(browse(t, bin, url+"/service/agent-geo?window=1h", "--dump-dom"))
	assert.Equal(t, "112", find(t, dom, `<b id="hits">([0-9]+)</b>`))
	assert.Equal(t, "2", find(t, dom, `<b id="failed">([0-9]+)</b>`))
	assert.Equal(t, "102", find(t, dom, `(?s)<tr data-route="GET /geo/:ip">.*?<td class="hits">([0-9]+)</td>`))
	assert.Equal(t, "10", find(t, dom, `(?s)<tr data-route="GET ">.*?<td class="hits">([0-9]+)</td>`))
	assert.Contains(t, dom, "(no route)")
	assert.Equal(t, "10", find(t, dom, `(?s)<tr data-status="404">.*?<td>([0-9]+)</td>`))
	assert.Equal(t, "6", find(t, dom, `<td data-class="5xx">([0-9]+) `))
	assert.Equal(t, "96", find(t, dom, `<td data-class="2xx">([0-9]+) `))
	svg := find(t, dom, `(?s)(<svg id="chart-requests".*?</svg>)`)
	assert.Equal(t, 112, sumAttr(svg, "data-hits"))
	slowest := find(t, dom, `(?s)(<table id="slowest">.*?</table>)`)
	assert.Regexp(t, `(?s)GET /geo/:ip.*GET <span class="muted">\(no route\)</span>`, slowest, "slowest first")

	missing := httptest.NewRecorder()
	app.ServeHTTP(missing, httptest.NewRequest(http.MethodGet, "/service/nobody", nil))
	assert.Equal(t, http.StatusNotFound, missing.Code)
	assert.Contains(t, missing.Body.String(), `no service \"nobody\"`)
}

func sumAttr(s, attr string) int {
	n := 0
	for _, m := range regexp.MustCompile(attr+`="([0-9]+)"`).FindAllStringSubmatch(s, -1) {
		v, _ := strconv.Atoi(m[1])
		n += v
	}
	return n
}

// The errors page filters by kind and service.
func TestDashboard_Errors(t *testing.T) {
	bin := chromium(t)
	url, app := dashboardFixture(t)
	count := func(query string) (int, string) {
		dom := string(browse(t, bin, url+"/errors?"+query, "--dump-dom"))
		tbl := find(t, dom, `(?s)(<table id="errors">.*?</table>)`)
		return strings.Count(tbl, "<tr>") - 1, tbl
	}
	n, tbl := count("window=1h&class=failed")
	assert.Equal(t, 2, n)
	assert.Contains(t, tbl, "cache miss: answered from the fallback table")
	n, tbl = count("window=1h&class=4xx&service=agent-geo")
	assert.Equal(t, 10, n)
	assert.Equal(t, 10, strings.Count(tbl, "/nope"), "the 4xx rows are the ten 404s")
	dom := string(browse(t, bin, url+"/errors?window=1h&class=4xx&service=agent-geo&route=/geo/:ip", "--dump-dom"))
	assert.Contains(t, dom, `href="/errors?window=24h&amp;class=4xx&amp;route=%2Fgeo%2F%3Aip&amp;service=agent-geo"`, "the window links keep the filters")
	n, _ = count("window=1h&class=5xx")
	assert.Equal(t, 7, n)
	n, _ = count("window=1h&class=5xx&service=agent-gateway")
	assert.Equal(t, 1, n)
	bad := httptest.NewRecorder()
	app.ServeHTTP(bad, httptest.NewRequest(http.MethodGet, "/errors?class=teapot", nil))
	assert.Equal(t, http.StatusBadRequest, bad.Code)
}

// A trace is a waterfall across the services, in order, found by a prefix
// of its id.
func TestDashboard_Trace(t *testing.T) {
	bin := chromium(t)
	url, app := dashboardFixture(t)
	dom := string(browse(t, bin, url+"/trace/"+traceID[:8], "--dump-dom"))
	tbl := find(t, dom, `(?s)(<table id="trace">.*?</table>)`)
	spans := regexp.MustCompile(`<tr class="span" data-service="([a-z-]+)">`).FindAllStringSubmatch(tbl, -1)
	require.Len(t, spans, 2)
	assert.Equal(t, "agent-gateway", spans[0][1], "in order")
	assert.Equal(t, "agent-geo", spans[1][1])
	bars := regexp.MustCompile(`style="left:([0-9.]+)%;width:([0-9.]+)%"`).FindAllStringSubmatch(tbl, -1)
	require.Len(t, bars, 2)
	assert.Equal(t, "0.00", bars[0][1])
	assert.Equal(t, "100.00", bars[0][2], "the gateway's span is the whole trace")
	assert.InDelta(t, 33.33, number(t, bars[1][1]), 0.01, "agent-geo starts 1 of 3 ms in")
	assert.Contains(t, tbl, "table not loaded")
	missing := httptest.NewRecorder()
	app.ServeHTTP(missing, httptest.NewRequest(http.MethodGet, "/trace/ffffffff", nil))
	assert.Equal(t, http.StatusNotFound, missing.Code)
}

// screenshots keeps the pages as test artifacts, on a desktop and on a
// phone.
func screenshots(t *testing.T, bin, url string) {
	out := os.Getenv("FLOTILLA_ARTIFACTS")
	if out == "" {
		out = t.TempDir()
	}
	require.NoError(t, os.MkdirAll(out, 0o755))
	for _, shot := range []struct{ name, path, size string }{
		{"dashboard.png", "/?window=1h", "1280,1400"},
		{"dashboard-service.png", "/service/agent-geo?window=1h", "1280,1700"},
		{"dashboard-trace.png", "/trace/" + traceID, "1280,500"},
		{"dashboard-phone.png", "/?window=1h", "390,1500"},
	} {
		file := filepath.Join(out, shot.name)
		browse(t, bin, url+shot.path, "--screenshot="+file, "--window-size="+shot.size, "--hide-scrollbars")
		png, err := os.ReadFile(file)
		require.NoError(t, err)
		assert.True(t, bytes.HasPrefix(png, []byte("\x89PNG")), "%s is a PNG", shot.name)
		assert.Greater(t, len(png), 20_000, "%s has content", shot.name)
		t.Logf("screenshot: %s", file)
	}
}
