package discovery

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// SLO is a service's objectives, from its slo key:
//
//	slo = { availability = "99.9%", latency = "300ms", latency_target = "99%", window = "30d" }
//
// It converts to logger.Objective, which computes its error budget and
// burn rates from the shared log: logger.Objective(*svc.SLO).
type SLO struct {
	// Availability is the fraction of requests that must not fail, such as
	// 0.999 for "99.9%"; 0 when the service has no availability objective.
	Availability float64
	// Latency is the threshold of the latency objective, such as 300ms;
	// 0 when it has none.
	Latency time.Duration
	// LatencyTarget is the fraction of requests that must take at most
	// Latency (latency_target, default DefaultLatencyTarget).
	LatencyTarget float64
	// Window is the period the objectives hold over (default
	// DefaultSLOWindow), such as "30d" or "4w".
	Window time.Duration
	// Errors are the statuses that count against availability, as
	// inclusive ranges: errors = ["5xx", "429"] is {{500, 599}, {429,
	// 429}}. Nil means the default: 5xx, 429 (shed or rate limited) and
	// 408 (timed out); other 4xx are the client's and do not count.
	Errors [][2]int
}

// Defaults of an slo key.
const (
	// DefaultLatencyTarget is latency_target when latency is set alone.
	DefaultLatencyTarget = 0.99
	// DefaultSLOWindow is an objective's window.
	DefaultSLOWindow = 30 * 24 * time.Hour
)

var sloKeys = []string{"availability", "latency", "latency_target", "window", "errors"}

var (
	percent    = regexp.MustCompile(`^([0-9]+(\.[0-9]+)?)%$`)
	statusSpec = regexp.MustCompile(`^([1-5])xx$|^([1-5][0-9][0-9])$`)
	sloWindow  = regexp.MustCompile(`^([1-9][0-9]*)([hdw])$`)
)

// readSLO reads a service's slo table.
func readSLO(probs *problems, t *table, svc *Service) {
	v, ok := t.values["slo"]
	if !ok {
		return
	}
	line := t.keyLine("slo")
	name := svc.Name
	m, ok := v.(map[string]any)
	if !ok {
		probs.add(line, `service %q: slo must be a table, such as slo = { availability = "99.9%%", latency = "300ms" }, not %s`, name, kind(v))
		return
	}
	st := &table{line: line, values: m, lines: map[string]int{}}
	before := len(probs.list)
	unknownKeys(probs, st, "slo.", sloKeys)
	f := fields{probs: probs, t: st, what: fmt.Sprintf("service %q", name)}
	slo := SLO{Window: DefaultSLOWindow}
	fraction := func(key string) float64 {
		s := f.str(key)
		if s == "" {
			return 0
		}
		mm := percent.FindStringSubmatch(s)
		frac, _ := strconv.ParseFloat(strings.TrimSuffix(s, "%")+"e-2", 64) // 99.9e-2 is 0.999 exactly rounded
		if mm == nil || frac <= 0 || frac >= 1 {
			probs.add(line, "service %q: slo %s %q: give a percentage above 0%% and below 100%%, such as \"99.9%%\" (100%% leaves no error budget)", name, key, s)
			return 0
		}
		return frac
	}
	slo.Availability = fraction("availability")
	if s := f.str("latency"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			probs.add(line, "service %q: slo latency %q: give a positive duration, such as \"300ms\"", name, s)
		}
		slo.Latency = d
		slo.LatencyTarget = DefaultLatencyTarget
	}
	if _, set := m["latency_target"]; set {
		slo.LatencyTarget = fraction("latency_target")
		if slo.Latency == 0 {
			probs.add(line, "service %q: slo latency_target without latency: add latency = \"300ms\"", name)
		}
	}
	if s := f.str("window"); s != "" {
		mm := sloWindow.FindStringSubmatch(s)
		if mm == nil {
			probs.add(line, "service %q: slo window %q: give hours, days or weeks, such as \"30d\", \"4w\" or \"72h\"", name, s)
		} else {
			n, _ := strconv.Atoi(mm[1])
			unit := map[string]time.Duration{"h": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour}[mm[2]]
			slo.Window = time.Duration(n) * unit
			if slo.Window < 6*time.Hour || slo.Window > 400*24*time.Hour {
				probs.add(line, "service %q: slo window %q: give at least 6h (the slow-burn alert's window) and at most 400d (the rollups' retention)", name, s)
			}
		}
	}
	if _, set := m["errors"]; set {
		slo.Errors = [][2]int{}
		for _, e := range f.strs("errors") {
			mm := statusSpec.FindStringSubmatch(e)
			switch {
			case mm == nil:
				probs.add(line, "service %q: slo errors entry %q: give a status such as \"429\" or a class such as \"5xx\"", name, e)
			case mm[1] != "":
				c := int(mm[1][0]-'0') * 100
				slo.Errors = append(slo.Errors, [2]int{c, c + 99})
			default:
				n, _ := strconv.Atoi(mm[2])
				slo.Errors = append(slo.Errors, [2]int{n, n})
			}
		}
	}
	if slo.Availability == 0 && slo.Latency == 0 && len(probs.list) == before {
		probs.add(line, "service %q: slo has no objective: give availability = \"99.9%%\", latency = \"300ms\", or both", name)
	}
	svc.SLO = &slo
}
