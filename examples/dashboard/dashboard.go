package main

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/flotilla-go/flotilla/discovery"
	"github.com/flotilla-go/flotilla/health"
	"github.com/flotilla-go/flotilla/logger"
)

//go:embed templates/*.html
var templateFS embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"ms":      func(d time.Duration) string { return trimFloat(ms(d)) },
	"pct":     func(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) },
	"budget":  func(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) },
	"permin":  func(n int64, d time.Duration) string { return trimFloat(float64(n) / d.Minutes()) },
	"share":   func(n, of int64) string { return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(max(of, 1))) },
	"clock":   func(t time.Time) string { return t.UTC().Format("Jan 2 15:04:05") },
	"since":   func(t time.Time) string { return time.Since(t).Round(time.Second).String() },
	"percent": logger.Percent,
	"add":     func(a, b float64) float64 { return a + b },
	"sub":     func(a, b float64) float64 { return a - b },
	"status": func(status int) string {
		return fmt.Sprintf("s%d", min(max(status/100, 1), 5))
	},
	"class": func(status int) string {
		switch {
		case status >= 500:
			return "c5"
		case status >= 400:
			return "c4"
		}
		return "ok"
	},
}).ParseFS(templateFS, "templates/*.html"))

// window is one of the periods the pages show, with the chart steps that
// keep each page to a few thousand rollup rows.
type window struct {
	Name        string
	D           time.Duration
	Step        time.Duration // the overview's charts (the whole fleet)
	ServiceStep time.Duration // one service's charts
}

var windows = []window{
	{"1h", time.Hour, time.Minute, time.Minute},
	{"24h", 24 * time.Hour, time.Hour, time.Hour},
	{"7d", 7 * 24 * time.Hour, 6 * time.Hour, 2 * time.Hour},
	{"30d", 30 * 24 * time.Hour, 24 * time.Hour, 12 * time.Hour},
}

func windowNamed(name string) (window, error) {
	if name == "" {
		name = "1h"
	}
	for _, w := range windows {
		if w.Name == name {
			return w, nil
		}
	}
	return window{}, echo.NewHTTPError(http.StatusBadRequest, "window must be one of 1h, 24h, 7d, 30d")
}

// dashboard serves the pages over the shared request log, the fleet's
// health and its objectives.
type dashboard struct {
	path     string
	reg      *discovery.Registry
	mon      *health.Monitor
	services []string // of the port map

	mu      sync.Mutex
	r       *logger.Reader // opened once the file exists
	slos    []logger.SLOReport
	slosAt  time.Time
	slosErr error
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
}

// objectives are the port map's slo keys.
func (d *dashboard) objectives() map[string]logger.Objective {
	out := map[string]logger.Objective{}
	for _, s := range d.reg.Services() {
		if s.SLO != nil {
			out[s.Name] = logger.Objective(*s.SLO)
		}
	}
	return out
}

// burns computes the objectives' budgets for the pages and returns those
// that burn, for the monitor's alerts. The monitor calls it every poll, so
// the pages read its last result instead of computing it per view.
func (d *dashboard) burns(ctx context.Context) ([]health.Burn, error) {
	objs := d.objectives()
	if len(objs) == 0 {
		return nil, nil
	}
	r, err := d.reader()
	if err != nil {
		return nil, err
	}
	reports, err := r.SLOs(ctx, objs)
	d.mu.Lock()
	d.slosAt, d.slosErr = time.Now(), err
	if err == nil {
		d.slos = reports
	}
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	var out []health.Burn
	for _, rep := range reports {
		for _, b := range []*logger.Budget{rep.Availability, rep.Latency} {
			if b == nil || b.Alert == "" {
				continue
			}
			out = append(out, health.Burn{Service: rep.Service, Objective: b.Objective, Severity: b.Alert,
				Reason: fmt.Sprintf("burn %.1f× over 1h, %.1f× over 5m, %.1f× over 6h; %.1f%% of the %s budget left",
					b.Burn1h, b.Burn5m, b.Burn6h, 100*b.Remaining, days(rep.Objective.Window))})
		}
	}
	return out, nil
}

func days(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

func (d *dashboard) sloBy() (map[string]logger.SLOReport, time.Time, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]logger.SLOReport{}
	for _, r := range d.slos {
		out[r.Service] = r
	}
	return out, d.slosAt, d.slosErr
}

// base is what every page shows.
type base struct {
	Title       string
	Window      window
	Windows     []window
	Path        string       // the page's path, for the window links
	Query       template.URL // the page's other query parameters, from "&", encoded
	Refresh     int          // seconds; 0: no auto-refresh
	Backfill    int64
	BackfillAt  time.Time
	GeneratedAt time.Time
}

func (d *dashboard) base(ctx context.Context, r *logger.Reader, title string, w window, path string) base {
	b := base{Title: title, Window: w, Windows: windows, Path: path, Refresh: 30, GeneratedAt: time.Now()}
	b.Backfill, b.BackfillAt, _ = r.Backfilling(ctx)
	return b
}

type serviceRow struct {
	logger.ServiceSummary
	Health health.TargetState
	Known  bool // in the health snapshot
	SLO    logger.SLOReport
	HasSLO bool
}

type overview struct {
	base
	Services []serviceRow
	Requests chart
	Latency  chart
	Health   health.Snapshot
	Errors   []logger.Record
	SLOAt    time.Time
	SLOErr   error
}

func (d *dashboard) overview(c echo.Context) error {
	w, err := windowNamed(c.QueryParam("window"))
	if err != nil {
		return err
	}
	r, err := d.reader()
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	since := time.Now().Add(-w.D)
	v := overview{base: d.base(ctx, r, "Flotilla fleet", w, "/"), Health: d.mon.Snapshot()}
	ov, err := r.Overview(ctx, since, w.Step) // the services' rows and the fleet's charts, from one read
	if err != nil {
		return err
	}
	sums := ov.Services
	v.Requests = requestsChart("chart-requests", ov.Fleet)
	v.Latency = latencyChart("chart-latency", ov.Fleet)
	if v.Errors, err = recentErrors(ctx, r, logger.Query{Since: since, MinStatus: 400, Limit: 15}); err != nil {
		return err
	}
	slos, at, sloErr := d.sloBy()
	v.SLOAt, v.SLOErr = at, sloErr
	states := map[string]health.TargetState{}
	for _, t := range v.Health.Targets {
		states[t.Name] = t
	}
	seen := map[string]bool{}
	for _, s := range sums {
		row := serviceRow{ServiceSummary: s}
		row.Health, row.Known = states[s.Service]
		row.SLO, row.HasSLO = slos[s.Service]
		v.Services = append(v.Services, row)
		seen[s.Service] = true
	}
	for _, name := range d.services { // quiet services of the map are rows too
		if !seen[name] {
			row := serviceRow{ServiceSummary: logger.ServiceSummary{Service: name}}
			row.Health, row.Known = states[name]
			row.SLO, row.HasSLO = slos[name]
			v.Services = append(v.Services, row)
		}
	}
	slices.SortFunc(v.Services, func(a, b serviceRow) int { return strings.Compare(a.Service, b.Service) })
	return render(c, "overview", v)
}

// one returns the only series of a FleetTotal or ForServices query, or an
// empty one over the same steps.
func one(series []logger.Series, since time.Time, step time.Duration) logger.Series {
	if len(series) > 0 {
		return series[0]
	}
	start := since.Truncate(step)
	return logger.Series{Start: start, Step: step, Points: make([]logger.Point, int(time.Since(start)/step)+1)}
}

// recentErrors returns the newest rows q selects, newest first.
func recentErrors(ctx context.Context, r *logger.Reader, q logger.Query) ([]logger.Record, error) {
	q.Newest = true
	rows, err := r.Requests(ctx, q)
	slices.Reverse(rows)
	return rows, err
}

type servicePage struct {
	base
	Service  logger.ServiceSummary
	Health   health.TargetState
	Known    bool
	SLO      logger.SLOReport
	HasSLO   bool
	Routes   []logger.ServiceSummary
	Slowest  []logger.ServiceSummary
	Statuses []statusCount
	Classes  []statusCount
	Requests chart
	Latency  chart
	Errors   []logger.Record
}

type statusCount struct {
	Status int
	Name   string
	N      int64
}

func (d *dashboard) service(c echo.Context) error {
	name := c.Param("name")
	w, err := windowNamed(c.QueryParam("window"))
	if err != nil {
		return err
	}
	r, err := d.reader()
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if _, ok := d.reg.Service(name); !ok { // a service that left the map may still be in the log
		if sums, _ := r.Summary(ctx, time.Now().Add(-30*24*time.Hour), logger.ForServices(name)); len(sums) == 0 {
			return echo.NewHTTPError(http.StatusNotFound, fmt.Sprintf("no service %q in the port map or the log", name))
		}
	}
	since := time.Now().Add(-w.D)
	v := servicePage{base: d.base(ctx, r, name, w, "/service/"+name)}
	v.Service.Service = name
	sums, err := r.Summary(ctx, since, logger.ForServices(name))
	if err != nil {
		return err
	}
	if len(sums) > 0 {
		v.Service = sums[0]
	}
	if v.Routes, err = r.Summary(ctx, since, logger.ForServices(name), logger.ByRoute()); err != nil {
		return err
	}
	slices.SortFunc(v.Routes, func(a, b logger.ServiceSummary) int { return cmp.Compare(b.Hits, a.Hits) })
	v.Slowest = slices.Clone(v.Routes)
	slices.SortFunc(v.Slowest, func(a, b logger.ServiceSummary) int { return cmp.Compare(b.P95, a.P95) })
	v.Slowest = v.Slowest[:min(5, len(v.Slowest))]
	for st, n := range v.Service.Statuses {
		v.Statuses = append(v.Statuses, statusCount{Status: st, N: n, Name: http.StatusText(st)})
	}
	slices.SortFunc(v.Statuses, func(a, b statusCount) int { return a.Status - b.Status })
	classes := map[int]int64{}
	for _, s := range v.Statuses {
		classes[s.Status/100] += s.N
	}
	for cl := 1; cl <= 5; cl++ {
		v.Classes = append(v.Classes, statusCount{Status: cl, Name: fmt.Sprintf("%dxx", cl), N: classes[cl]})
	}
	series, err := r.Series(ctx, since, w.ServiceStep, logger.ForServices(name))
	if err != nil {
		return err
	}
	v.Requests = requestsChart("chart-requests", one(series, since, w.ServiceStep))
	v.Latency = latencyChart("chart-latency", one(series, since, w.ServiceStep))
	if v.Errors, err = recentErrors(ctx, r, logger.Query{Since: since, Services: []string{name}, MinStatus: 400, Limit: 15}); err != nil {
		return err
	}
	for _, t := range d.mon.Snapshot().Targets {
		if t.Name == name {
			v.Health, v.Known = t, true
		}
	}
	slos, _, _ := d.sloBy()
	v.SLO, v.HasSLO = slos[name]
	return render(c, "service", v)
}

type errorsPage struct {
	base
	Services       []string
	Service, Class string
	Route          string
	Rows           []logger.Record
	Limit          int
}

// errorClasses are the filters of the errors page.
var errorClasses = map[string]logger.Query{
	"":       {MinStatus: 400},
	"4xx":    {MinStatus: 400, MaxStatus: 499},
	"5xx":    {MinStatus: 500},
	"failed": {Failed: true},
}

func (d *dashboard) errors(c echo.Context) error {
	w, err := windowNamed(c.QueryParam("window"))
	if err != nil {
		return err
	}
	class := c.QueryParam("class")
	q, ok := errorClasses[class]
	if !ok {
		return echo.NewHTTPError(http.StatusBadRequest, "class must be 4xx, 5xx or failed (or empty for 4xx and 5xx)")
	}
	r, err := d.reader()
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	v := errorsPage{base: d.base(ctx, r, "Recent errors", w, "/errors"), Services: d.services, Class: class,
		Service: c.QueryParam("service"), Route: c.QueryParam("route"), Limit: 100}
	v.Query = template.URL("&" + url.Values{"service": {v.Service}, "class": {class}, "route": {v.Route}}.Encode())
	q.Since, q.Limit, q.Route = time.Now().Add(-w.D), v.Limit, v.Route
	if v.Service != "" {
		q.Services = []string{v.Service}
	}
	if v.Rows, err = recentErrors(ctx, r, q); err != nil {
		return err
	}
	return render(c, "errors", v)
}

type tracePage struct {
	base
	ID    string
	Spans []span
	Total time.Duration
	Ticks []traceTick
}

type span struct {
	logger.Record
	Left, Width float64 // % of the trace's span
	Offset      time.Duration
}

type traceTick struct {
	Left  float64
	Label string
}

func (d *dashboard) trace(c echo.Context) error {
	r, err := d.reader()
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	id, err := r.FindTrace(ctx, c.Param("id"), time.Now().Add(-24*time.Hour))
	if errors.Is(err, logger.ErrNotFound) {
		return echo.NewHTTPError(http.StatusNotFound, err.Error())
	}
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, err.Error())
	}
	rows, err := r.ByTrace(ctx, id)
	if err != nil {
		return err
	}
	w, _ := windowNamed("")
	v := tracePage{base: d.base(ctx, r, "Trace "+id, w, ""), ID: id}
	v.Refresh = 0
	if len(rows) > 0 {
		t0, end := rows[0].Time, rows[0].Time
		for _, row := range rows {
			if e := row.Time.Add(row.Duration); e.After(end) {
				end = e
			}
		}
		v.Total = max(end.Sub(t0), time.Microsecond)
		for _, row := range rows {
			off := row.Time.Sub(t0)
			v.Spans = append(v.Spans, span{Record: row, Offset: off,
				Left:  100 * float64(off) / float64(v.Total),
				Width: max(100*float64(row.Duration)/float64(v.Total), 0.4)})
		}
		for i := 0; i <= 4; i++ {
			v.Ticks = append(v.Ticks, traceTick{Left: float64(i) * 25, Label: trimFloat(ms(v.Total*time.Duration(i)/4)) + " ms"})
		}
	}
	return render(c, "trace", v)
}

func render(c echo.Context, name string, v any) error {
	var b strings.Builder
	if err := pages.ExecuteTemplate(&b, name, v); err != nil {
		return err
	}
	return c.HTML(http.StatusOK, b.String())
}
