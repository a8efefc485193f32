package logger

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"
)

// ServiceSummary is the traffic of one service (or, with ByRoute, one route
// of it) over a period.
type ServiceSummary struct {
	// Service is the service's name.
	Service string
	// Method and Route are the route's method and template with ByRoute,
	// empty otherwise. Methods other than the standard ones are "_OTHER",
	// and a request that matched no route has Route "".
	Method, Route string
	// Hits is the number of requests.
	Hits int64
	// Errors is the number of requests answered with a 5xx status.
	Errors int64
	// ErrorRate is Errors / Hits, between 0 and 1.
	ErrorRate float64
	// ClientErrors is the number of requests answered with a 4xx status,
	// 499 (the client went away) included.
	ClientErrors int64
	// ClientErrorRate is ClientErrors / Hits, between 0 and 1.
	ClientErrorRate float64
	// Failed is the number of requests whose handler returned an error,
	// whatever status was sent: an error answered with a 200 counts here.
	Failed int64
	// Statuses counts the requests of each status code.
	Statuses map[int]int64
	// Streams is how many of the hits were upgraded connections (status
	// 101, WebSockets say), whose duration is a whole session.
	Streams int64
	// BytesIn and BytesOut add up the request and response bodies.
	BytesIn, BytesOut int64
	// P50, P95 and P99 are latency percentiles (nearest rank) of the other
	// hits, within 1.6% of the exact ones; zero when there are none.
	P50, P95, P99 time.Duration
	// Max is the slowest of those hits.
	Max time.Duration
}

// A SummaryOption changes what Summary and Series select.
type SummaryOption func(*summaryOptions)

type summaryOptions struct {
	byRoute  bool
	services []string
	total    bool
}

// ByRoute makes Summary return one row per service, method and route
// instead of one per service.
func ByRoute() SummaryOption { return func(o *summaryOptions) { o.byRoute = true } }

// ForServices keeps only the named services (default: all).
func ForServices(names ...string) SummaryOption {
	return func(o *summaryOptions) { o.services = append(o.services, names...) }
}

// FleetTotal makes Series return one series for the whole fleet, with
// Service "", instead of one per service.
func FleetTotal() SummaryOption { return func(o *summaryOptions) { o.total = true } }

// Summary is Reader.Summary on the Store's read-only connections.
func (s *Store) Summary(ctx context.Context, since time.Time, opts ...SummaryOption) ([]ServiceSummary, error) {
	return s.reader.Summary(ctx, since, opts...)
}

// Summary returns, for every service with requests since since, its hits,
// 4xx and 5xx rates, failed handlers, statuses, upgraded connections, bytes
// and latency percentiles, ordered by service (and route). It reads the
// rollups, not the raw rows, so its cost grows with the number of services,
// routes and days in the window, not with the traffic: the minutes from
// since to the next hour, the hours from there to the next day, and the
// days after.
//
// The window starts at the beginning of the minute that holds since; for a
// window of a day or more at the beginning of since's hour (so the last 24
// hours are 24 to 25 hours), and past HourRollupRetention at the beginning
// of its day (UTC). Without ByRoute it reads service_rollups, one row per
// service and status; with it, rollups.
func (r *Reader) Summary(ctx context.Context, since time.Time, opts ...SummaryOption) ([]ServiceSummary, error) {
	var o summaryOptions
	for _, opt := range opts {
		opt(&o)
	}
	table := rollupTables[1]
	if o.byRoute {
		table = rollupTables[0]
	}
	stmt, all, err := r.windowQuery(ctx, table, since, time.Now(), o.services)
	if err != nil {
		return nil, fmt.Errorf("logger: summary: %w", err)
	}
	acc := summaryAcc{byRoute: o.byRoute}
	if err := r.rollupRows(ctx, stmt, all, acc.add); err != nil {
		return nil, fmt.Errorf("logger: summary: %w", err)
	}
	return acc.result(), nil
}

// summaryAcc adds rollup rows up into summaries, per service or, with
// byRoute, per service, method and route.
type summaryAcc struct {
	byRoute bool
	by      map[[3]string]*summaryRow
}

type summaryRow struct {
	ServiceSummary
	h histAcc
}

func (a *summaryAcc) add(row *rollupRow) {
	k := [3]string{row.service}
	if a.byRoute {
		k[1], k[2] = row.method, row.route
	}
	if a.by == nil {
		a.by = map[[3]string]*summaryRow{}
	}
	s := a.by[k]
	if s == nil {
		s = &summaryRow{ServiceSummary: ServiceSummary{Service: k[0], Method: k[1], Route: k[2], Statuses: map[int]int64{}}}
		a.by[k] = s
	}
	s.Hits += row.count
	s.Failed += row.failed
	s.BytesIn += row.bytesIn
	s.BytesOut += row.bytesOut
	s.Statuses[row.status] += row.count
	switch {
	case row.status == http.StatusSwitchingProtocols:
		s.Streams += row.count
		return
	case row.status >= 500:
		s.Errors += row.count
	case row.status >= 400:
		s.ClientErrors += row.count
	}
	s.Max = max(s.Max, time.Duration(row.maxUS)*time.Microsecond)
	s.h.add(row.hist)
}

// result returns the summaries, ordered by service, route and method.
func (a *summaryAcc) result() []ServiceSummary {
	out := make([]ServiceSummary, 0, len(a.by))
	for _, s := range a.by {
		s.ErrorRate = float64(s.Errors) / float64(s.Hits)
		s.ClientErrorRate = float64(s.ClientErrors) / float64(s.Hits)
		s.P50, s.P95, s.P99 = s.h.quantile(0.50), s.h.quantile(0.95), s.h.quantile(0.99)
		out = append(out, s.ServiceSummary)
	}
	slices.SortFunc(out, func(a, b ServiceSummary) int {
		return cmp.Or(strings.Compare(a.Service, b.Service), strings.Compare(a.Route, b.Route), strings.Compare(a.Method, b.Method))
	})
	return out
}

// Series is one service's traffic in each step of a window, for charts:
// Points[i] covers [Start+i*Step, Start+(i+1)*Step).
type Series struct {
	// Service is the service's name, "" for FleetTotal.
	Service string
	// Start is the start of the first step, since rounded down to a
	// multiple of Step.
	Start time.Time
	// Step is each point's width.
	Step time.Duration
	// Points are the steps from Start up to the one that holds now.
	Points []Point
}

// Point is the traffic of one step of a Series.
type Point struct {
	// Hits, ClientErrors (4xx), Errors (5xx) and Failed (the handler
	// returned an error) count requests.
	Hits, ClientErrors, Errors, Failed int64
	// P50, P95 and P99 are latency percentiles of the step's requests,
	// upgraded connections left out; zero when there are none.
	P50, P95, P99 time.Duration
}

// Series is Reader.Series on the Store's read-only connections.
func (s *Store) Series(ctx context.Context, since time.Time, step time.Duration, opts ...SummaryOption) ([]Series, error) {
	return s.reader.Series(ctx, since, step, opts...)
}

// Series returns, for every service with requests since since (or the
// whole fleet, with FleetTotal), its traffic per step up to now. step is a
// whole number of minutes; a multiple of a day may read day rollups, of an
// hour hour rollups, any other minute rollups only. Start is since rounded
// down to a multiple of step (UTC). Past the retention of the finest level
// the step may read, the points are zero.
func (r *Reader) Series(ctx context.Context, since time.Time, step time.Duration, opts ...SummaryOption) ([]Series, error) {
	var o summaryOptions
	for _, opt := range opts {
		opt(&o)
	}
	acc, stmt, args, err := newSeriesAcc(since, step, o)
	if err != nil {
		return nil, fmt.Errorf("logger: series: %w", err)
	}
	if err := r.rollupRows(ctx, stmt, args, acc.add); err != nil {
		return nil, fmt.Errorf("logger: series: %w", err)
	}
	return acc.result(), nil
}

// seriesAcc adds rollup rows up into series, per service or, with total,
// for the fleet.
type seriesAcc struct {
	start, st int64 // the first step's start and the step, in seconds
	n         int   // steps
	step      time.Duration
	total     bool
	by        map[string]*seriesRow
}

type seriesRow struct {
	s     Series
	hists []*histAcc
}

// newSeriesAcc returns the accumulator of a series from since by step, and
// the query of the rows it adds up.
func newSeriesAcc(since time.Time, step time.Duration, o summaryOptions) (*seriesAcc, string, []any, error) {
	if step < time.Minute || step%time.Minute != 0 {
		return nil, "", nil, fmt.Errorf("step %v must be a whole number of minutes", step)
	}
	st := int64(step / time.Second)
	level := int64(levelMinute)
	for _, l := range []int64{levelDay, levelHour} {
		if st%l == 0 {
			level = l
			break
		}
	}
	start := floorTo(since.Unix(), st)
	now := time.Now().Unix()
	if start > now {
		start = floorTo(now, st)
	}
	a := &seriesAcc{start: start, st: st, n: int((now-start)/st) + 1, step: step, total: o.total, by: map[string]*seriesRow{}}
	stmt, args := planQuery(rollupTables[1], plan(start, level, math.MaxInt64, math.MaxInt64), o.services)
	return a, stmt, args, nil
}

func (a *seriesAcc) add(row *rollupRow) {
	name := row.service
	if a.total {
		name = ""
	}
	s := a.by[name]
	if s == nil {
		s = &seriesRow{s: Series{Service: name, Start: time.Unix(a.start, 0), Step: a.step, Points: make([]Point, a.n)}, hists: make([]*histAcc, a.n)}
		a.by[name] = s
	}
	i := int((row.ts - a.start) / a.st)
	if i < 0 || i >= a.n {
		return
	}
	p := &s.s.Points[i]
	p.Hits += row.count
	p.Failed += row.failed
	switch {
	case row.status == http.StatusSwitchingProtocols:
		return
	case row.status >= 500:
		p.Errors += row.count
	case row.status >= 400:
		p.ClientErrors += row.count
	}
	if s.hists[i] == nil {
		s.hists[i] = new(histAcc)
	}
	s.hists[i].add(row.hist)
}

// result returns the series, ordered by service.
func (a *seriesAcc) result() []Series {
	out := make([]Series, 0, len(a.by))
	for _, s := range a.by {
		for i, h := range s.hists {
			p := &s.s.Points[i]
			p.P50, p.P95, p.P99 = h.quantile(0.50), h.quantile(0.95), h.quantile(0.99)
		}
		out = append(out, s.s)
	}
	slices.SortFunc(out, func(a, b Series) int { return strings.Compare(a.Service, b.Service) })
	return out
}

// Overview is the fleet's traffic over the steps of a window.
type Overview struct {
	// Services is each service's summary over the window, as Summary
	// gives it, but over Fleet's steps: from since rounded down to a
	// multiple of the step.
	Services []ServiceSummary
	// Fleet is the whole fleet's series, as Series with FleetTotal gives
	// it; its Points are zero where there was no traffic.
	Fleet Series
}

// Overview is Reader.Overview on the Store's read-only connections.
func (s *Store) Overview(ctx context.Context, since time.Time, step time.Duration, opts ...SummaryOption) (Overview, error) {
	return s.reader.Overview(ctx, since, step, opts...)
}

// Overview returns each service's summary and the fleet's series, from
// since by step, from one read of the service rollups: what a fleet's
// overview page shows, for about the cost of Series alone. ForServices
// keeps some services; ByRoute and FleetTotal change nothing.
func (r *Reader) Overview(ctx context.Context, since time.Time, step time.Duration, opts ...SummaryOption) (Overview, error) {
	var o summaryOptions
	for _, opt := range opts {
		opt(&o)
	}
	o.byRoute, o.total = false, true
	series, stmt, args, err := newSeriesAcc(since, step, o)
	if err != nil {
		return Overview{}, fmt.Errorf("logger: overview: %w", err)
	}
	var sums summaryAcc
	err = r.rollupRows(ctx, stmt, args, func(row *rollupRow) {
		series.add(row)
		sums.add(row)
	})
	if err != nil {
		return Overview{}, fmt.Errorf("logger: overview: %w", err)
	}
	v := Overview{Services: sums.result(), Fleet: Series{Start: time.Unix(series.start, 0), Step: step, Points: make([]Point, series.n)}}
	if fleet := series.result(); len(fleet) > 0 {
		v.Fleet = fleet[0]
	}
	return v, nil
}

// windowQuery returns the query of the rollup rows of table that make up
// the window from since to now (see plan).
func (r *Reader) windowQuery(ctx context.Context, table string, since, now time.Time, services []string) (string, []any, error) {
	hw, dw, err := r.marks(ctx, table, services)
	if err != nil {
		return "", nil, err
	}
	stmt, args := planQuery(table, plan(windowStart(since, now), levelDay, hw, dw), services)
	return stmt, args, nil
}

// windowStart returns the start, in Unix seconds, of the rollup window that
// holds since: its minute for a window under a day, its hour for longer
// ones (so that they read hours, not minutes, before their first day), or
// its day past HourRollupRetention.
func windowStart(since, now time.Time) int64 {
	a := floorTo(since.Unix(), levelMinute)
	if !since.After(now.Add(-24 * time.Hour)) {
		a = floorTo(a, levelHour)
	}
	if since.Before(now.Add(-HourRollupRetention)) {
		a = floorTo(a, levelDay)
	}
	return a
}

// fromRollups returns the FROM clause of a query of table for services.
// Without statistics SQLite reads a time range through the primary key,
// every service's rows; a few services are read faster through their own
// index.
func fromRollups(table string, services []string) string {
	if len(services) > 0 && len(services) <= 8 {
		return " FROM " + table + " INDEXED BY " + table + "_service"
	}
	return " FROM " + table
}

func serviceFilter(services []string) (string, []any) {
	if len(services) == 0 {
		return "", nil
	}
	return " AND service IN (?" + strings.Repeat(",?", len(services)-1) + ")", anys(services)
}

// rollupRow is one row of the rollups table, as the queries read it.
type rollupRow struct {
	service, method, route string
	status                 int
	level, ts              int64
	rollupVal
}

// rollupSelect selects the columns rollupRows reads, in its order.
const rollupSelect = `SELECT service, method, route, status, count, failed, bytes_in, bytes_out, max_us, hist, level, ts`

// rollupRows runs stmt, which begins with rollupSelect, and calls fn with
// each row, checked: a row whose
// histogram cannot be read or does not add up to its count is
// ErrRollupsDamaged, and stops the query.
func (r *Reader) rollupRows(ctx context.Context, stmt string, args []any, fn func(*rollupRow)) error {
	rows, err := r.db.QueryContext(ctx, stmt, args...)
	if err != nil {
		return r.explainRollups(ctx, err)
	}
	defer rows.Close()
	var (
		row                         rollupRow
		raw, service, method, route sql.RawBytes
		names                       = map[string]string{} // each name allocated once
	)
	intern := func(b []byte) string {
		if s, ok := names[string(b)]; ok {
			return s
		}
		s := string(b)
		names[s] = s
		return s
	}
	for rows.Next() {
		if err := rows.Scan(&service, &method, &route, &row.status, &row.count, &row.failed,
			&row.bytesIn, &row.bytesOut, &row.maxUS, &raw, &row.level, &row.ts); err != nil {
			return err
		}
		row.service, row.method, row.route = intern(service), intern(method), intern(route)
		if err := row.decode(raw); err != nil {
			return fmt.Errorf("%s rollup of %s at %s (%s %q, status %d): %w: rebuild them with `flotilla rollups rebuild` (Store.RebuildRollups)",
				levelName(row.level), row.service, time.Unix(row.ts, 0).UTC().Format(time.DateTime), row.method, row.route, row.status, err)
		}
		fn(&row)
	}
	return rows.Err()
}

// explainRollups says what to do when the rollups cannot be read because
// the file predates them.
func (r *Reader) explainRollups(ctx context.Context, err error) error {
	var n int
	if r.db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE name = 'rollups'`).Scan(&n) == nil && n == 0 {
		return fmt.Errorf("%s has no rollups yet (an older version wrote it): start any service of this version on it once, which migrates it: %w", r.path, err)
	}
	return err
}

func levelName(l int64) string {
	switch l {
	case levelMinute:
		return "minute"
	case levelHour:
		return "hour"
	case levelDay:
		return "day"
	}
	return fmt.Sprintf("level-%d", l)
}
