package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mattn/go-isatty"

	"github.com/flotilla-go/flotilla/discovery"
	"github.com/flotilla-go/flotilla/logger"
	"github.com/flotilla-go/flotilla/platform"
)

// options are the platform lookups with the global flags applied.
func (a *app) options() []platform.Option {
	var opts []platform.Option
	if a.registry != "" {
		opts = append(opts, platform.WithRegistry(a.registry))
	}
	if a.db != "" {
		opts = append(opts, platform.WithDB(a.db))
	}
	return opts
}

// portMap loads the port map as the services do.
func (a *app) portMap() (*discovery.Registry, error) {
	return platform.PortMap(a.options()...)
}

// logPath finds the shared request log as the services do.
func (a *app) logPath() (string, error) {
	return platform.LogPath(a.options()...)
}

// openLog opens the shared request log read-only.
func (a *app) openLog() (*logger.Reader, error) {
	path, err := a.logPath()
	if err != nil {
		return nil, err
	}
	return logger.OpenReader(path)
}

// services loads the port map and picks the services named (all of them
// when none is).
func (a *app) services(names []string) (*discovery.Registry, []discovery.Service, error) {
	reg, err := a.portMap()
	if err != nil {
		return nil, nil, err
	}
	services, err := pick(reg, names)
	return reg, services, err
}

// pick returns the services named, in the map's order, or all of them when
// names is empty. An unknown name is bad usage that lists the known ones.
func pick(reg *discovery.Registry, names []string) ([]discovery.Service, error) {
	all := reg.Services()
	if len(names) == 0 {
		return all, nil
	}
	var out []discovery.Service
	for _, n := range names {
		s, ok := reg.Service(n)
		if !ok {
			known := make([]string, len(all))
			for i, s := range all {
				known[i] = s.Name
			}
			return nil, usagef("no service %q in %s; the services are: %s", n, reg.Path(), strings.Join(known, ", "))
		}
		if !slices.ContainsFunc(out, func(o discovery.Service) bool { return o.Name == n }) {
			out = append(out, s)
		}
	}
	return out, nil
}

// sinceFormats is what --since takes, for its error.
const sinceFormats = `a duration back from now (90s, 10m, 2h, 7d, 1h30m), ` +
	`an RFC 3339 time (2026-12-01T09:00:00Z), or a local "2026-12-01 09:00[:05]" or "2026-12-01"`

// parseSince reads a --since value as a time before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if d, ok := parseDays(s); ok {
		return now.Add(-d), nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, usagef("--since %q: give a positive duration, such as 10m", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usagef("--since %q: not a time; give %s", s, sinceFormats)
}

// parseDays reads "7d" (days, which time.ParseDuration lacks).
func parseDays(s string) (time.Duration, bool) {
	n, ok := strings.CutSuffix(s, "d")
	if !ok {
		return 0, false
	}
	days, err := strconv.ParseFloat(n, 64)
	if err != nil || days < 0 {
		return 0, false
	}
	return time.Duration(days * float64(24*time.Hour)), true
}

// writeJSON writes v as one line of JSON.
func writeJSON(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

// colour says whether w is a terminal that takes colours: not when NO_COLOR
// is set or TERM is dumb.
func colour(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	return isatty.IsTerminal(f.Fd())
}

// isTerminal says whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}

// noLog reports whether err means there is no log file yet.
func noLog(err error) bool { return errors.Is(err, logger.ErrNoLog) }

// ms formats a duration for people: µs under 1 ms, ms with one decimal
// under 10 ms, whole ms under 10 s, else seconds.
func ms(d time.Duration) string {
	f := float64(d) / float64(time.Millisecond)
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case f < 10:
		return fmt.Sprintf("%.1fms", f)
	case f < 10000:
		return fmt.Sprintf("%.0fms", f)
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}
