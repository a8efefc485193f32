package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/flotilla-go/flotilla/discovery"
	"github.com/flotilla-go/flotilla/logger"
)

// sloRow is one objective of one service, a row of slo and a JSON object
// of slo --json.
type sloRow struct {
	Service   string  `json:"service"`
	Objective string  `json:"objective"`
	Window    string  `json:"window"`
	Target    float64 `json:"target"`
	Good      int64   `json:"good"`
	Total     int64   `json:"total"`
	Remaining float64 `json:"budget_remaining"`
	Burn5m    float64 `json:"burn_5m"`
	Burn30m   float64 `json:"burn_30m"`
	Burn1h    float64 `json:"burn_1h"`
	Burn6h    float64 `json:"burn_6h"`
	Alert     string  `json:"alert,omitempty"`
}

// objectives returns the objectives of the port map's services.
func objectives(services []discovery.Service) map[string]logger.Objective {
	out := map[string]logger.Objective{}
	for _, s := range services {
		if s.SLO != nil {
			out[s.Name] = logger.Objective(*s.SLO)
		}
	}
	return out
}

// sloRows flattens reports into one row per objective.
func sloRows(reports []logger.SLOReport) []sloRow {
	var rows []sloRow
	for _, r := range reports {
		for _, b := range []*logger.Budget{r.Availability, r.Latency} {
			if b == nil {
				continue
			}
			rows = append(rows, sloRow{Service: r.Service, Objective: b.Objective, Window: days(r.Objective.Window), Target: b.Target,
				Good: b.Good, Total: b.Total, Remaining: b.Remaining,
				Burn5m: b.Burn5m, Burn30m: b.Burn30m, Burn1h: b.Burn1h, Burn6h: b.Burn6h, Alert: b.Alert})
		}
	}
	return rows
}

func days(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

func (a *app) sloCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "slo [SERVICE...]",
		Short: "Each service's objectives: error budget left and burn rates",
		Long: `slo prints one row per objective of the port map's slo keys, such as

  slo = { availability = "99.9%", latency = "300ms", latency_target = "99%", window = "30d" }

  OBJECTIVE   availability: the share of requests that did not fail (5xx, 429
              and 408 by default; errors = ["5xx"] changes it); latency: the
              share that took at most the threshold
  GOOD/TOTAL  over the window
  BUDGET      the share of the window's error budget left; negative when
              overspent
  BURN        how fast the budget burns over 5m, 30m, 1h and 6h: 1 spends it
              exactly over the window
  ALERT       fast burn (14.4x over both 1h and 5m: page) or slow burn (6x over
              both 6h and 30m: ticket), the SRE Workbook's rule

It reads the log's rollups, so it costs the same on a year of traffic as on
an hour. It exits 1 when an objective alerts.

--json prints one object per line: service, objective, window, target, good,
total, budget_remaining, burn_5m, burn_30m, burn_1h, burn_6h, alert.`,
		Example: `  flotilla slo
  flotilla slo agent-geo
  flotilla slo --json | jq -r 'select(.alert != null) | .service'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, services, err := a.services(args)
			if err != nil {
				return err
			}
			objs := objectives(services)
			if len(objs) == 0 {
				fmt.Fprintln(a.stderr, `no service has an slo: add one to the port map, such as slo = { availability = "99.9%" }`)
				return nil
			}
			r, err := a.openLog()
			if err != nil {
				return err
			}
			defer r.Close()
			reports, err := r.SLOs(cmd.Context(), objs)
			if err != nil {
				return err
			}
			rows := sloRows(reports)
			alerting := false
			for _, row := range rows {
				alerting = alerting || row.Alert != ""
			}
			if asJSON {
				for _, row := range rows {
					if err := writeJSON(a.stdout, row); err != nil {
						return err
					}
				}
			} else {
				writeSLOTable(a.stdout, rows, colour(a.stdout))
			}
			if left, since, err := r.Backfilling(cmd.Context()); err == nil && left > 0 {
				fmt.Fprintf(a.stderr, "the log's rollups are being rebuilt: %d rows left; windows after %s count less than they should\n", left, since.Format(time.DateTime))
			}
			if alerting {
				return errFinding
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per objective")
	return c
}

func writeSLOTable(w io.Writer, rows []sloRow, colours bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tOBJECTIVE\tWINDOW\tGOOD/TOTAL\tBUDGET\tBURN 5M\t30M\t1H\t6H\tALERT")
	for _, r := range rows {
		alert := r.Alert
		switch {
		case alert == "":
			alert = "-"
		case !colours:
		case alert == logger.FastBurnAlert:
			alert = red.Render(alert)
		default:
			alert = yellow.Render(alert)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%.1f%%\t%.1f\t%.1f\t%.1f\t%.1f\t%s\n", r.Service, r.Objective, r.Window,
			r.Good, r.Total, 100*r.Remaining, r.Burn5m, r.Burn30m, r.Burn1h, r.Burn6h, alert)
	}
	tw.Flush()
}

func (a *app) rollupsCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "rollups",
		Short: "The log's rollups: their state, and a rebuild from the raw rows",
	}
	c.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "Say whether raw rows wait to be rolled up",
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := a.openLog()
			if err != nil {
				return err
			}
			defer r.Close()
			left, since, err := r.Backfilling(cmd.Context())
			if err != nil {
				return err
			}
			if left == 0 {
				fmt.Fprintln(a.stdout, "rollups up to date")
				return nil
			}
			fmt.Fprintf(a.stdout, "%d raw rows wait to be rolled up (from %s)\n", left, since.UTC().Format(time.DateTime))
			return nil
		},
	})
	c.AddCommand(&cobra.Command{
		Use:   "rebuild",
		Short: "Rebuild the rollups from the raw rows (after ErrRollupsDamaged)",
		Long: `rebuild replaces the rollups of every day the raw rows cover, for rollups
that a query found damaged or that you doubt. In one short transaction it
deletes them and schedules the raw rows; it then rolls them up itself in
transactions of about 30 ms, as the running services also do in the
background. Services keep serving and logging meanwhile: their requests never
wait for it. Older rollups, whose raw rows retention deleted, are kept.

This is the one flotilla command that writes the log.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := a.logPath()
			if err != nil {
				return err
			}
			r, err := logger.OpenReader(path) // never create a log that is not there
			if err != nil {
				return err
			}
			r.Close()
			s, err := logger.Open(path, logger.WithRetention(0), logger.WithRollupRetention(0), logger.WithCheckpointInterval(0))
			if err != nil {
				return err
			}
			defer s.Close()
			began := time.Now()
			n, err := s.RebuildRollups(cmd.Context())
			if err != nil {
				return err
			}
			if _, err := s.Backfill(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "rolled up %d raw rows again in %v\n", n, time.Since(began).Round(time.Millisecond))
			return nil
		},
	})
	return c
}
