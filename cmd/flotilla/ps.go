package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/flotilla-go/flotilla/discovery"
	"github.com/flotilla-go/flotilla/health"
	"github.com/flotilla-go/flotilla/logger"
)

// serviceStatus is one row of ps, and one JSON object of ps --json.
type serviceStatus struct {
	Name     string `json:"name"`
	Endpoint string `json:"endpoint"`
	// State is pass, warn or fail as the service reports it, or down when
	// it could not be reached.
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// PID, Started, RSS and Unit are known for a service whose process
	// runs on this machine; PID is 0 otherwise.
	PID     int        `json:"pid"`
	Started *time.Time `json:"started,omitempty"`
	RSS     int64      `json:"rss_bytes"`
	Unit    string     `json:"unit,omitempty"`
	// From the request log over the window (--since).
	Requests   int64   `json:"requests"`
	PerMinute  float64 `json:"req_per_min"`
	ClientErrs float64 `json:"4xx_pct"`
	ServerErrs float64 `json:"5xx_pct"`
	P95        float64 `json:"p95_ms"`
}

// fleetStatus probes every service's health at once, finds its process,
// and reads its traffic since since. note says why traffic is missing,
// such as "no request log at PATH".
func (a *app) fleetStatus(ctx context.Context, reg *discovery.Registry, services []discovery.Service, window, timeout time.Duration) (rows []serviceStatus, note string) {
	var (
		wg    sync.WaitGroup
		snap  health.Snapshot
		procs map[string]proc
		sums  map[string]logger.ServiceSummary
	)
	wg.Add(3)
	go func() {
		defer wg.Done()
		client := &http.Client{Transport: reg.Transport(nil, discovery.WithStrictNames())}
		targets := make([]health.Target, len(services))
		for i, s := range services {
			targets[i] = health.Target{Name: s.Name, URL: "http://" + s.Name + s.Health, Client: client}
		}
		snap = health.NewMonitor(targets, health.WithProbeTimeout(timeout),
			health.WithConcurrency(len(targets)), health.WithDownAfter(1)).Poll(ctx)
	}()
	go func() {
		defer wg.Done()
		procs = findProcs(ctx, services)
	}()
	go func() {
		defer wg.Done()
		sums, note = a.traffic(ctx, time.Now().Add(-window))
	}()
	wg.Wait()
	states := map[string]health.TargetState{}
	for _, t := range snap.Targets {
		states[t.Name] = t
	}
	for _, s := range services {
		st := states[s.Name]
		row := serviceStatus{Name: s.Name, Endpoint: s.Endpoint.String(), State: string(st.Status), Reason: st.Detail}
		if !st.Answered {
			row.State = "down"
		}
		if p, ok := procs[s.Name]; ok {
			started := p.Started
			row.PID, row.Started, row.RSS, row.Unit = p.PID, &started, p.RSS, p.Unit
		}
		if sum, ok := sums[s.Name]; ok {
			row.Requests = sum.Hits
			row.PerMinute = float64(sum.Hits) / window.Minutes()
			row.ClientErrs = 100 * sum.ClientErrorRate
			row.ServerErrs = 100 * sum.ErrorRate
			row.P95 = float64(sum.P95) / float64(time.Millisecond)
		}
		rows = append(rows, row)
	}
	return rows, note
}

// traffic reads every service's summary since since from the log.
func (a *app) traffic(ctx context.Context, since time.Time) (map[string]logger.ServiceSummary, string) {
	r, err := a.openLog()
	if noLog(err) {
		path, _ := a.logPath()
		return nil, "no request log at " + path
	}
	if err != nil {
		return nil, err.Error()
	}
	defer r.Close()
	sums, err := r.Summary(ctx, since)
	if err != nil {
		return nil, err.Error()
	}
	out := make(map[string]logger.ServiceSummary, len(sums))
	for _, s := range sums {
		out[s.Service] = s
	}
	return out, ""
}

func (a *app) psCmd() *cobra.Command {
	var (
		asJSON  bool
		since   string
		timeout time.Duration
	)
	c := &cobra.Command{
		Use:   "ps [SERVICE...]",
		Short: "One row per service: state, pid, uptime, memory and traffic (like pm2 ls)",
		Long: `ps prints one row per service of the port map:

  NAME, ENDPOINT    from the map
  STATE             pass, warn or fail as its /health says, or down when it
                    cannot be reached; REASON says why in short
  PID, UPTIME, RSS  of its process, found from the owner of its listening
                    socket (as ss -p does), else from systemd's MainPID of
                    flotilla@NAME.service; - when it cannot be known
  REQ/MIN, 4XX, 5XX, P95
                    from the shared request log over --since (default 5m)

Every probe runs at once with --timeout, so a hung service costs one timeout.
A service that is down is a row, not an error: ps exits 0.

--json prints one object per line: name, endpoint, state, reason, pid,
started, rss_bytes, unit, requests, req_per_min, 4xx_pct, 5xx_pct, p95_ms.`,
		Example: `  flotilla ps
  flotilla ps agent-geo agent-gateway
  flotilla ps --since 1h
  flotilla ps --json | jq -r 'select(.state != "pass") | .name'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			window, err := windowFlag(since)
			if err != nil {
				return err
			}
			reg, services, err := a.services(args)
			if err != nil {
				return err
			}
			rows, note := a.fleetStatus(cmd.Context(), reg, services, window, timeout)
			if asJSON {
				for _, r := range rows {
					if err := writeJSON(a.stdout, r); err != nil {
						return err
					}
				}
			} else {
				writeTable(a.stdout, rows, time.Now(), colour(a.stdout))
			}
			if note != "" {
				fmt.Fprintln(a.stderr, note)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per service")
	c.Flags().StringVar(&since, "since", "5m", "the traffic window: a duration back from now")
	c.Flags().DurationVar(&timeout, "timeout", time.Second, "how long each health probe may take")
	return c
}

// windowFlag reads a --since that must be a duration back from now.
func windowFlag(since string) (time.Duration, error) {
	now := time.Now()
	t, err := parseSince(since, now)
	if err != nil {
		return 0, err
	}
	if d := now.Sub(t); d > 0 {
		return d, nil
	}
	return 0, usagef("--since %q is not in the past", since)
}

// writeTable prints rows as an aligned table.
func writeTable(w io.Writer, rows []serviceStatus, now time.Time, colours bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tENDPOINT\tSTATE\tPID\tUPTIME\tRSS\tREQ/MIN\t4XX\t5XX\tP95\tREASON")
	for _, r := range rows {
		pid, up, rss := "-", "-", "-"
		if r.PID > 0 {
			pid, up, rss = fmt.Sprint(r.PID), uptime(now.Sub(*r.Started)), megabytes(r.RSS)
		}
		perMin, c4, c5, p95 := "-", "-", "-", "-"
		if r.Requests > 0 {
			perMin, c4, c5, p95 = fmt.Sprintf("%.1f", r.PerMinute), pct(r.ClientErrs), pct(r.ServerErrs), ms(time.Duration(r.P95*float64(time.Millisecond)))
		}
		state := r.State
		if colours {
			state = paintState(state)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Endpoint, state, pid, up, rss, perMin, c4, c5, p95, r.Reason)
	}
	tw.Flush()
}

func pct(f float64) string { return fmt.Sprintf("%.1f%%", f) }

func megabytes(b int64) string { return fmt.Sprintf("%.1fM", float64(b)/(1<<20)) }

// uptime formats a duration the way ps and pm2 do, in its two largest units.
func uptime(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}
