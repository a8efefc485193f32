package main

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/flotilla-go/flotilla/logger"
)

// The charts are SVG drawn on the server: a plot area with a labelled time
// axis (UTC) below and a value axis on the left.
const (
	plotW, plotH         = 640.0, 150.0
	padLeft, padBottom   = 52.0, 22.0
	padTop, padRight     = 10.0, 8.0
	chartW, chartH       = padLeft + plotW + padRight, padTop + plotH + padBottom
	minBarGap, maxTicksY = 1.0, 5
)

type chart struct {
	ID, Title, Unit string
	W, H            float64 // the whole SVG
	Left, Top       float64 // the plot area's corner
	PlotW, PlotH    float64
	Bars            []bar
	Lines           []line
	XTicks, YTicks  []tick
	Legend          []legendItem
	Empty           bool
}

type bar struct {
	X, W  float64
	Segs  []seg
	Label string // the hover title
	// The values, for tests and for anyone reading the DOM.
	T          string
	Hits, C4xx int64
	C5xx       int64
}

type seg struct {
	Y, H  float64
	Class string
}

type line struct {
	Class, Name, Points string
	Dots                []dot
}

type dot struct {
	X, Y  float64
	Label string
	MS    string
}

type tick struct {
	Pos   float64
	Label string
}

type legendItem struct{ Class, Name string }

func newChart(id, title, unit string) chart {
	return chart{ID: id, Title: title, Unit: unit, W: chartW, H: chartH, Left: padLeft, Top: padTop, PlotW: plotW, PlotH: plotH}
}

// requestsChart stacks each step's requests: 5xx on top of 4xx on top of
// the rest.
func requestsChart(id string, s logger.Series) chart {
	c := newChart(id, "Requests per "+stepName(s.Step), "req")
	c.Legend = []legendItem{{"ok", "2xx/3xx"}, {"c4", "4xx"}, {"c5", "5xx"}}
	var top int64
	for _, p := range s.Points {
		top = max(top, p.Hits)
	}
	c.Empty = top == 0
	ymax := niceCeil(float64(top))
	c.YTicks = yTicks(ymax, trimFloat)
	n := float64(len(s.Points))
	w := plotW / n
	for i, p := range s.Points {
		t := s.Start.Add(time.Duration(i) * s.Step)
		b := bar{X: padLeft + float64(i)*w, W: max(w-minBarGap, 0.5), T: t.UTC().Format(time.RFC3339),
			Hits: p.Hits, C4xx: p.ClientErrors, C5xx: p.Errors,
			Label: fmt.Sprintf("%s: %d requests, %d 4xx, %d 5xx", stamp(t, s.Step), p.Hits, p.ClientErrors, p.Errors)}
		y := padTop + plotH
		for _, part := range []struct {
			n     int64
			class string
		}{{p.Hits - p.ClientErrors - p.Errors, "ok"}, {p.ClientErrors, "c4"}, {p.Errors, "c5"}} {
			if part.n <= 0 {
				continue
			}
			h := plotH * float64(part.n) / ymax
			y -= h
			b.Segs = append(b.Segs, seg{Y: y, H: h, Class: part.class})
		}
		c.Bars = append(c.Bars, b)
	}
	c.XTicks = xTicks(s.Start, s.Step, len(s.Points))
	return c
}

// latencyChart draws p50, p95 and p99 of each step as lines, in ms.
func latencyChart(id string, s logger.Series) chart {
	c := newChart(id, "Latency per "+stepName(s.Step)+", ms", "ms")
	var top time.Duration
	for _, p := range s.Points {
		top = max(top, p.P99)
	}
	c.Empty = top == 0
	ymax := niceCeil(ms(top))
	c.YTicks = yTicks(ymax, trimFloat)
	n := float64(len(s.Points))
	w := plotW / n
	for _, q := range []struct {
		class, name string
		get         func(logger.Point) time.Duration
	}{
		{"p50", "p50", func(p logger.Point) time.Duration { return p.P50 }},
		{"p95", "p95", func(p logger.Point) time.Duration { return p.P95 }},
		{"p99", "p99", func(p logger.Point) time.Duration { return p.P99 }},
	} {
		l := line{Class: q.class, Name: q.name}
		var pts []string
		for i, p := range s.Points {
			if p.Hits == 0 {
				continue
			}
			x := padLeft + (float64(i)+0.5)*w
			y := padTop + plotH - plotH*ms(q.get(p))/ymax
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
			t := s.Start.Add(time.Duration(i) * s.Step)
			l.Dots = append(l.Dots, dot{X: x, Y: y, MS: trimFloat(ms(q.get(p))),
				Label: fmt.Sprintf("%s: %s %s ms", stamp(t, s.Step), q.name, trimFloat(ms(q.get(p))))})
		}
		l.Points = strings.Join(pts, " ")
		c.Lines = append(c.Lines, l)
		c.Legend = append(c.Legend, legendItem{q.class, q.name})
	}
	c.XTicks = xTicks(s.Start, s.Step, len(s.Points))
	return c
}

// xTicks labels about six moments of the axis, on round times.
func xTicks(start time.Time, step time.Duration, n int) []tick {
	span := time.Duration(n) * step
	every := time.Minute
	for _, e := range []time.Duration{10 * time.Minute, 30 * time.Minute, time.Hour, 3 * time.Hour, 6 * time.Hour, 24 * time.Hour, 2 * 24 * time.Hour, 5 * 24 * time.Hour, 7 * 24 * time.Hour} {
		if span/every <= 7 {
			break
		}
		every = e
	}
	var out []tick
	first := start.UTC().Truncate(every)
	if first.Before(start) {
		first = first.Add(every)
	}
	for t := first; t.Before(start.Add(span)); t = t.Add(every) {
		x := padLeft + plotW*float64(t.Sub(start))/float64(span)
		label := t.Format("15:04")
		if every >= 24*time.Hour {
			label = t.Format("Jan 2")
		} else if t.Hour() == 0 && t.Minute() == 0 && span > 12*time.Hour {
			label = t.Format("Jan 2")
		}
		out = append(out, tick{Pos: x, Label: label})
	}
	return out
}

func yTicks(ymax float64, label func(float64) string) []tick {
	var out []tick
	for i := 0; i <= maxTicksY; i++ {
		v := ymax * float64(i) / maxTicksY
		out = append(out, tick{Pos: padTop + plotH - plotH*float64(i)/maxTicksY, Label: label(v)})
	}
	return out
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (at least 1), so
// that the axis's five steps are round too.
func niceCeil(v float64) float64 {
	if v <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func stepName(d time.Duration) string {
	switch {
	case d == time.Minute:
		return "minute"
	case d == time.Hour:
		return "hour"
	case d == 24*time.Hour:
		return "day"
	case d%time.Hour == 0:
		return fmt.Sprintf("%d hours", d/time.Hour)
	}
	return fmt.Sprintf("%d minutes", d/time.Minute)
}

func stamp(t time.Time, step time.Duration) string {
	if step >= 24*time.Hour {
		return t.UTC().Format("Mon Jan 2")
	}
	return t.UTC().Format("Jan 2 15:04") + " UTC"
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// trimFloat writes v with up to three significant decimals.
func trimFloat(v float64) string {
	switch {
	case v == math.Trunc(v) || v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
}
