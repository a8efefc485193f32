package main

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/flotilla-go/flotilla/logger"
)

// followEvery is how often logs -f asks the file for new rows: each ask is
// one lookup on the primary key, so an idle follower costs next to nothing,
// and a row shows within this time of its commit.
const followEvery = 100 * time.Millisecond

// logRow is one row of logs --json and trace --json.
type logRow struct {
	ID         int64     `json:"id"`
	Time       time.Time `json:"time"`
	Service    string    `json:"service"`
	Method     string    `json:"method"`
	Path       string    `json:"path"`
	Route      string    `json:"route"`
	Status     int       `json:"status"`
	DurationMs float64   `json:"duration_ms"`
	BytesIn    int64     `json:"bytes_in"`
	BytesOut   int64     `json:"bytes_out"`
	IP         string    `json:"ip"`
	UserAgent  string    `json:"user_agent"`
	RequestID  string    `json:"request_id"`
	TraceID    string    `json:"trace_id"`
	Error      string    `json:"error,omitempty"`
}

func toRow(r logger.Record) logRow {
	return logRow{ID: r.ID, Time: r.Time, Service: r.Service, Method: r.Method, Path: r.Path, Route: r.Route,
		Status: r.Status, DurationMs: float64(r.Duration) / float64(time.Millisecond), BytesIn: r.BytesIn,
		BytesOut: r.BytesOut, IP: r.IP, UserAgent: r.UserAgent, RequestID: r.RequestID, TraceID: r.TraceID, Error: r.Error}
}

// lineWriter prints records as readable lines.
type lineWriter struct {
	w       io.Writer
	json    bool
	colours bool
	width   int // of the service column
}

func (lw *lineWriter) write(r logger.Record) error {
	if lw.json {
		return writeJSON(lw.w, toRow(r))
	}
	status := strconv.Itoa(r.Status)
	if lw.colours {
		status = paintStatus(r.Status, status)
	}
	line := fmt.Sprintf("%s  %-*s  %s  %-6s %s  %s", r.Time.Local().Format("2006-01-02 15:04:05.000"),
		lw.width, r.Service, status, r.Method, r.Path, ms(r.Duration))
	if r.TraceID != "" {
		line += "  " + r.TraceID
	}
	if r.Error != "" {
		e := r.Error
		if lw.colours {
			e = red.Render(e)
		}
		line += "  " + e
	}
	_, err := fmt.Fprintln(lw.w, line)
	return err
}

var statusClass = regexp.MustCompile(`^[1-5]xx$`)

// parseStatus reads --status: a class such as 5xx, or one code.
func parseStatus(s string) (lo, hi int, err error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if statusClass.MatchString(s) {
		lo = int(s[0]-'0') * 100
		return lo, lo + 99, nil
	}
	if code, err := strconv.Atoi(s); err == nil && code >= 100 && code <= 599 {
		return code, code, nil
	}
	return 0, 0, usagef("--status %q: give a class (1xx to 5xx) or a code from 100 to 599, such as 503", s)
}

func (a *app) logsCmd() *cobra.Command {
	var (
		asJSON, follow       bool
		since, status, route string
		trace                string
		slower               time.Duration
		lines                int
	)
	c := &cobra.Command{
		Use:   "logs [SERVICE...]",
		Short: "The request log as readable lines, oldest first; -f follows (like pm2 logs)",
		Long: `logs prints the shared request log as lines, oldest first: time, service,
status (coloured on a terminal), method, path, duration, trace id and error.
It prints the last -n rows (default 100) since --since (default 10m) that
match the filters.

-f then follows the rows as the writers of every service commit them, until
Ctrl-C. It follows by row id, the order in which batches commit, so no row is
missed or shown twice however the batches of many writers interleave; it
asks the file every 100 ms, one primary-key lookup, and needs no index.

--json prints one object per row: id, time, service, method, path, route,
status, duration_ms, bytes_in, bytes_out, ip, user_agent, request_id,
trace_id, error.`,
		Example: `  flotilla logs
  flotilla logs -f agent-geo agent-gateway
  flotilla logs --status 5xx --since 1h
  flotilla logs --route '/geo/:ip' --slower 200ms -n 20
  flotilla logs --trace 4bf92f35
  flotilla logs --json --since 24h | jq -r 'select(.status >= 500) | .path'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			from, err := parseSince(since, time.Now())
			if err != nil {
				return err
			}
			if lines < 0 {
				return usagef("-n %d: give a number of lines, 0 or more", lines)
			}
			q := logger.Query{Since: from, Route: route, Slower: slower}
			if status != "" {
				if q.MinStatus, q.MaxStatus, err = parseStatus(status); err != nil {
					return err
				}
			}
			width := 14
			if reg, err := a.portMap(); err == nil { // the log may be read without a map
				services, err := pick(reg, args)
				if err != nil {
					return err
				}
				for _, s := range reg.Services() {
					width = max(width, len(s.Name))
				}
				if len(args) > 0 {
					for _, s := range services {
						q.Services = append(q.Services, s.Name)
					}
				}
			} else {
				q.Services = args
			}
			r, err := a.openLog()
			if err != nil {
				return err
			}
			defer r.Close()
			if trace != "" {
				id, err := r.FindTrace(ctx, trace, from)
				if err != nil {
					return err
				}
				if rid, ok := strings.CutPrefix(id, "request:"); ok {
					q.RequestID = rid
				} else {
					q.TraceID = id
				}
			}
			lw := &lineWriter{w: a.stdout, json: asJSON, colours: colour(a.stdout), width: width}
			last, err := r.LastID(ctx)
			if err != nil {
				return err
			}
			if lines > 0 {
				q.Limit, q.Newest, q.UpToID = lines, true, last
				rows, err := r.Requests(ctx, q)
				if err != nil {
					return err
				}
				for _, rec := range rows {
					if err := lw.write(rec); err != nil {
						return err
					}
				}
			}
			if !follow {
				return nil
			}
			return followLog(ctx, r, last, q, lw)
		},
	}
	f := c.Flags()
	f.BoolVar(&asJSON, "json", false, "print one JSON object per row")
	f.BoolVarP(&follow, "follow", "f", false, "then print rows as they are committed, until Ctrl-C")
	f.StringVar(&since, "since", "10m", "rows since: "+sinceFormats)
	f.StringVar(&status, "status", "", "only this status class (4xx, 5xx) or code (503)")
	f.StringVar(&route, "route", "", "only this route template, such as '/geo/:ip'")
	f.DurationVar(&slower, "slower", 0, "only requests that took longer, such as 200ms")
	f.StringVar(&trace, "trace", "", "only the rows of this trace id, request id, or a unique prefix of either")
	f.IntVarP(&lines, "lines", "n", 100, "how many of the newest matching rows to print first")
	return c
}

// followLog prints every row committed after last that q selects, in commit
// order, until ctx ends.
func followLog(ctx context.Context, r *logger.Reader, last int64, q logger.Query, lw *lineWriter) error {
	q.Since, q.Limit, q.Newest, q.UpToID = time.Time{}, 1000, false, 0
	t := time.NewTicker(followEvery)
	defer t.Stop()
	for {
		// Rows filtered out still move the follower on: ask the
		// unfiltered last id first, so a quiet filter is not rescanned.
		top, err := r.LastID(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for top > last {
			q.UpToID = top
			rows, err := r.After(ctx, last, q)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			for _, rec := range rows {
				if err := lw.write(rec); err != nil {
					return err
				}
			}
			if len(rows) < q.Limit {
				last = top
			} else {
				last = rows[len(rows)-1].ID
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
