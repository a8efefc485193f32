package main

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/flotilla-go/flotilla/health"
	"github.com/flotilla-go/flotilla/logger"
)

//go:embed page.html
var pageHTML string

var page = template.Must(template.New("page").Funcs(template.FuncMap{
	"ms":  func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) },
	"pct": func(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) },
}).Parse(pageHTML))

// dashboard renders one page over the shared request log and the fleet's
// health.
type dashboard struct {
	path string
	db   *sql.DB // read-only, for the time series
	mon  *health.Monitor
	now  func() time.Time

	mu sync.Mutex
	r  *logger.Reader // opened once the file exists
}

// reader opens the log read-only the first time it exists.
func (d *dashboard) reader() (*logger.Reader, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.r == nil {
		r, err := logger.OpenReader(d.path)
		if errors.Is(err, logger.ErrNoLog) {
			return nil, echo.NewHTTPError(http.StatusServiceUnavailable, err.Error())
		}
		if err != nil {
			return nil, err
		}
		d.r = r
	}
	return d.r, nil
}

func (d *dashboard) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.r != nil {
		d.r.Close()
	}
	d.db.Close()
}

// bucket is one bar of a chart.
type bucket struct {
	X, Y, W, H float64
	Label      string
}

type chart struct {
	Title string
	Max   string
	Bars  []bucket
}

type view struct {
	Window   string
	Windows  []string
	Services []logger.ServiceSummary
	Requests chart
	Latency  chart
	Health   health.Snapshot
	Errors   []logger.Record
	Trace    []logger.Record
	TraceID  string
}

var windows = map[string]time.Duration{"1h": time.Hour, "24h": 24 * time.Hour}

func (d *dashboard) index(c echo.Context) error {
	name := c.QueryParam("window")
	if name == "" {
		name = "1h"
	}
	window, ok := windows[name]
	if !ok {
		return echo.NewHTTPError(http.StatusBadRequest, "window must be 1h or 24h")
	}
	ctx := c.Request().Context()
	since := d.now().Add(-window)
	v := view{Window: name, Windows: []string{"1h", "24h"}, Health: d.mon.Snapshot()}
	r, err := d.reader()
	if err != nil {
		return err
	}
	if v.Services, err = r.Summary(ctx, since); err != nil {
		return err
	}
	if v.Requests, v.Latency, err = d.charts(ctx, since, window); err != nil {
		return err
	}
	if v.Errors, err = r.Requests(ctx, logger.Query{Since: since, MinStatus: 500, Limit: 20, Newest: true}); err != nil {
		return err
	}
	slices.Reverse(v.Errors) // newest first
	if id := c.QueryParam("trace"); id != "" {
		v.TraceID = id
		if v.Trace, err = r.ByTrace(ctx, id); err != nil {
			return err
		}
	}
	c.Response().Header().Set("Content-Type", "text/html; charset=utf-8")
	return page.Execute(c.Response(), v)
}

// charts returns requests per bucket and the slowest request per bucket,
// in 60 buckets over the window, as SVG bars in a 600×120 box.
func (d *dashboard) charts(ctx context.Context, since time.Time, window time.Duration) (chart, chart, error) {
	const n, width, height = 60, 600.0, 120.0
	step := window.Microseconds() / n
	rows, err := d.db.QueryContext(ctx,
		`SELECT (ts - ?) / ?, count(*), max(duration_us) FROM requests WHERE ts >= ? GROUP BY 1`,
		since.UnixMicro(), step, since.UnixMicro())
	if err != nil {
		return chart{}, chart{}, err
	}
	defer rows.Close()
	counts, slowest := make([]float64, n), make([]float64, n)
	for rows.Next() {
		var b int
		var cnt, dur float64
		if err := rows.Scan(&b, &cnt, &dur); err != nil {
			return chart{}, chart{}, err
		}
		if b >= 0 && b < n {
			counts[b], slowest[b] = cnt, dur/1000
		}
	}
	if err := rows.Err(); err != nil {
		return chart{}, chart{}, err
	}
	bars := func(title, unit string, ys []float64) chart {
		top := math.Max(slices.Max(ys), 1)
		ch := chart{Title: title, Max: fmt.Sprintf("%.0f %s", top, unit)}
		for i, y := range ys {
			h := height * y / top
			ch.Bars = append(ch.Bars, bucket{X: float64(i) * width / n, Y: height - h, W: width/n - 1, H: h,
				Label: fmt.Sprintf("%s: %.0f %s", since.Add(time.Duration(int64(i)*step)*time.Microsecond).UTC().Format("15:04"), y, unit)})
		}
		return ch
	}
	return bars("Requests", "req", counts), bars("Slowest request", "ms", slowest), nil
}
