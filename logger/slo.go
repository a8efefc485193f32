package logger

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Objective is a service's service-level objectives. Its fields are those
// of discovery.SLO, so a port map's slo converts: logger.Objective(*svc.SLO).
type Objective struct {
	// Availability is the fraction of requests that must not fail, such as
	// 0.999; 0 for none.
	Availability float64
	// Latency is the threshold of the latency objective; 0 for none.
	Latency time.Duration
	// LatencyTarget is the fraction of requests (upgraded connections
	// left out) that must take at most Latency, such as 0.99.
	LatencyTarget float64
	// Window is the period the objectives hold over, such as 30 days
	// (default DefaultObjectiveWindow).
	Window time.Duration
	// Errors are the statuses that count against availability, as
	// inclusive ranges such as {500, 599}. Nil means DefaultErrors.
	Errors [][2]int
}

// DefaultObjectiveWindow is an Objective's window when it sets none.
const DefaultObjectiveWindow = 30 * 24 * time.Hour

// DefaultErrors are the statuses that count against availability unless an
// Objective says otherwise: every 5xx (the platform's timeouts are 503 and
// 504), 429 (shed or rate limited: the client was refused service) and 408
// (the request timed out). Other 4xx are the client's mistakes and count as
// served.
var DefaultErrors = [][2]int{{500, 599}, {429, 429}, {408, 408}}

// The multi-window, multi-burn-rate alert rule of the Google SRE Workbook
// (chapter 5): an objective pages when its error budget burns at FastBurn
// times the sustainable rate over both the last hour and the last 5
// minutes, and opens a ticket at SlowBurn over both 6 hours and 30
// minutes. At 14.4× a 30-day budget is 2% spent in an hour; at 6×, 5% in 6
// hours. The short window makes the alert stop soon after the burning does.
const (
	FastBurn = 14.4
	SlowBurn = 6.0
)

// Alert severities of a Budget.
const (
	FastBurnAlert = "fast burn"
	SlowBurnAlert = "slow burn"
)

// Budget is one objective's error budget over its window, and how fast it
// burns now.
type Budget struct {
	// Objective names it, such as "availability 99.9%" or "latency 300ms
	// at 99%".
	Objective string
	// Target is the objective, such as 0.999.
	Target float64
	// Good and Total count the requests of the window that met it, and all
	// of them.
	Good, Total int64
	// Remaining is the fraction of the window's error budget left: 1 when
	// nothing failed, 0 when exactly the budget failed, below 0 when it is
	// overspent. The budget is (1 - Target) × Total.
	Remaining float64
	// Burn5m, Burn30m, Burn1h and Burn6h are the burn rates over the last
	// 5 minutes, 30 minutes, hour and 6 hours: the share of requests that
	// failed the objective, over (1 - Target). 1 spends the budget exactly
	// over the window; 0 without requests. The first three read the last
	// 5, 30 and 60 minute rollups, the current minute among them; 6h the
	// current hour and the 5 before.
	Burn5m, Burn30m, Burn1h, Burn6h float64
	// Alert is FastBurnAlert, SlowBurnAlert or "" (see FastBurn).
	Alert string
}

// SLOReport is one service's objectives and their budgets.
type SLOReport struct {
	// Service is the service's name.
	Service string
	// Objective is what it was given, its Window defaulted.
	Objective Objective
	// Availability and Latency are the budgets of the objectives set, nil
	// for one that is not.
	Availability, Latency *Budget
}

// SLOs is Reader.SLOs on the Store's read-only connections.
func (s *Store) SLOs(ctx context.Context, objectives map[string]Objective) ([]SLOReport, error) {
	return s.reader.SLOs(ctx, objectives)
}

// SLOs reports, for each service of objectives, the budget remaining over
// its window and the burn rates of its objectives, ordered by service. It
// reads the rollups: the window's days, hours and minutes, and the minutes
// of the last 6 hours for the burn rates. Latency is judged from the
// histogram, so a request within 1.6% of the threshold may count on either
// side of it.
func (r *Reader) SLOs(ctx context.Context, objectives map[string]Objective) ([]SLOReport, error) {
	now := time.Now()
	names := make([]string, 0, len(objectives))
	for name := range objectives {
		names = append(names, name)
	}
	slices.Sort(names)
	type acc struct {
		rep        SLOReport
		win        [2]tally    // availability, latency over the window
		short      [4][2]tally // the same over 5m, 30m, 1h, 6h
		errRanges  [][2]int
		latencyCut int64 // µs
	}
	by := map[string]*acc{}
	byWindow := map[time.Duration][]string{}
	for _, name := range names {
		o := objectives[name]
		if o.Window <= 0 {
			o.Window = DefaultObjectiveWindow
		}
		a := &acc{rep: SLOReport{Service: name, Objective: o}, errRanges: o.Errors, latencyCut: o.Latency.Microseconds()}
		if a.errRanges == nil {
			a.errRanges = DefaultErrors
		}
		by[name] = a
		byWindow[o.Window] = append(byWindow[o.Window], name)
	}
	count := func(a *acc, t *[2]tally, row *rollupRow) {
		bad := false
		for _, e := range a.errRanges {
			if row.status >= e[0] && row.status <= e[1] {
				bad = true
			}
		}
		t[0].total += row.count
		if !bad {
			t[0].good += row.count
		}
		if row.status == http.StatusSwitchingProtocols {
			return
		}
		t[1].total += row.count
		for _, b := range row.hist {
			if b.us > a.latencyCut {
				break
			}
			t[1].good += b.n
		}
	}
	for w, svcs := range byWindow {
		stmt, args, err := r.windowQuery(ctx, rollupTables[1], now.Add(-w), now, svcs)
		if err != nil {
			return nil, fmt.Errorf("logger: slos: %w", err)
		}
		err = r.rollupRows(ctx, stmt, args, func(row *rollupRow) {
			a := by[row.service]
			count(a, &a.win, row)
		})
		if err != nil {
			return nil, fmt.Errorf("logger: slos: %w", err)
		}
	}
	// 5m, 30m and 1h from the last 5, 30 and 60 minute rollups (the
	// current minute among them); 6h from the last 6 hour rollups.
	cur, curHour := floorTo(now.Unix(), levelMinute), floorTo(now.Unix(), levelHour)
	filter, args := serviceFilter(names)
	q := rollupSelect + fromRollups(rollupTables[1], names) + ` WHERE level = ? AND ts > ?` + filter
	err := r.rollupRows(ctx, q+` UNION ALL `+q, append(append(append([]any{levelMinute, cur - 60*60}, args...), levelHour, curHour-6*3600), args...),
		func(row *rollupRow) {
			a := by[row.service]
			if row.level == levelHour {
				count(a, &a.short[3], row)
				return
			}
			for i, m := range [3]int64{5, 30, 60} {
				if row.ts > cur-m*60 {
					count(a, &a.short[i], row)
				}
			}
		})
	if err != nil {
		return nil, fmt.Errorf("logger: slos: %w", err)
	}
	out := make([]SLOReport, 0, len(names))
	for _, name := range names {
		a := by[name]
		o := a.rep.Objective
		if o.Availability > 0 {
			a.rep.Availability = budget(o.availabilityName(), o.Availability, a.win[0], [4]tally{a.short[0][0], a.short[1][0], a.short[2][0], a.short[3][0]})
		}
		if o.Latency > 0 && o.LatencyTarget > 0 {
			a.rep.Latency = budget(o.latencyName(), o.LatencyTarget, a.win[1], [4]tally{a.short[0][1], a.short[1][1], a.short[2][1], a.short[3][1]})
		}
		out = append(out, a.rep)
	}
	return out, nil
}

// tally counts requests that met an objective, and all.
type tally struct{ good, total int64 }

func (t tally) burn(target float64) float64 {
	if t.total == 0 {
		return 0
	}
	return float64(t.total-t.good) / float64(t.total) / (1 - target)
}

func budget(name string, target float64, win tally, short [4]tally) *Budget {
	b := &Budget{Objective: name, Target: target, Good: win.good, Total: win.total, Remaining: 1,
		Burn5m: short[0].burn(target), Burn30m: short[1].burn(target), Burn1h: short[2].burn(target), Burn6h: short[3].burn(target)}
	if win.total > 0 {
		b.Remaining = 1 - float64(win.total-win.good)/(float64(win.total)*(1-target))
	}
	switch {
	case b.Burn1h >= FastBurn && b.Burn5m >= FastBurn:
		b.Alert = FastBurnAlert
	case b.Burn6h >= SlowBurn && b.Burn30m >= SlowBurn:
		b.Alert = SlowBurnAlert
	}
	return b
}

// String names the objective, such as "availability 99.9%" or "latency
// 300ms at 99%".
func (o Objective) String() string {
	var parts []string
	if o.Availability > 0 {
		parts = append(parts, o.availabilityName())
	}
	if o.Latency > 0 {
		parts = append(parts, o.latencyName())
	}
	return strings.Join(parts, ", ")
}

func (o Objective) availabilityName() string { return "availability " + Percent(o.Availability) }

func (o Objective) latencyName() string {
	return fmt.Sprintf("latency %v at %s", o.Latency, Percent(o.LatencyTarget))
}

// Percent writes a fraction such as 0.999 as "99.9%", with the digits it
// needs.
func Percent(f float64) string {
	s := fmt.Sprintf("%.4f", 100*f)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s + "%"
}
