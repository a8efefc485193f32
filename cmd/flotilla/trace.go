package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/flotilla-go/flotilla/logger"
)

// barWidth is the width of the waterfall's bars, in cells.
const barWidth = 30

func (a *app) traceCmd() *cobra.Command {
	var (
		asJSON bool
		since  string
	)
	c := &cobra.Command{
		Use:   "trace ID",
		Short: "Every row of one request across the fleet, as a waterfall",
		Long: `trace shows every row of one request across the fleet in time order: the
offset of its start from the first row, its duration, service, status and
route, a bar for where it falls in the whole, and its error text.

ID is a trace id, a request id (X-Request-ID), or a prefix of either that only
one of them begins with. Trace ids are looked up through their index; request
ids are searched among the rows since --since (default 24h).

--json prints one object per row, as logs --json does, with offset_ms.`,
		Example: `  flotilla trace 4bf92f3577b34da6a3ce929d0e0e4736
  flotilla trace 4bf92f35
  flotilla trace --since 7d 9f1c2a`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("trace takes one id (a trace id, a request id, or a prefix), not %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			from, err := parseSince(since, time.Now())
			if err != nil {
				return err
			}
			r, err := a.openLog()
			if err != nil {
				return err
			}
			defer r.Close()
			id, err := r.FindTrace(ctx, args[0], from)
			if err != nil {
				return err
			}
			rows, err := r.ByTrace(ctx, id)
			if err != nil {
				return err
			}
			if asJSON {
				for _, rec := range rows {
					row := struct {
						logRow
						OffsetMs float64 `json:"offset_ms"`
					}{toRow(rec), float64(rec.Time.Sub(rows[0].Time)) / float64(time.Millisecond)}
					if err := writeJSON(a.stdout, row); err != nil {
						return err
					}
				}
				return nil
			}
			waterfall(a.stdout, id, rows, colour(a.stdout))
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per row")
	c.Flags().StringVar(&since, "since", "24h", "how far back to search request ids: "+sinceFormats)
	return c
}

// waterfall prints the rows of one trace with bars on a common time scale.
func waterfall(w io.Writer, id string, rows []logger.Record, colours bool) {
	start, end := rows[0].Time, rows[0].Time
	services := map[string]bool{}
	for _, r := range rows {
		if r.Time.Before(start) {
			start = r.Time
		}
		if e := r.Time.Add(r.Duration); e.After(end) {
			end = e
		}
		services[r.Service] = true
	}
	total := end.Sub(start)
	fmt.Fprintf(w, "trace %s: %d requests, %d services, %s\n", strings.TrimPrefix(id, "request:"), len(rows), len(services), ms(total))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "OFFSET\tDURATION\tSERVICE\tSTATUS\tREQUEST\tWATERFALL\tERROR")
	for _, r := range rows {
		what := r.Route
		if what == "" {
			what = r.Path
		}
		status := strconv.Itoa(r.Status)
		errText := r.Error
		if colours {
			status = paintStatus(r.Status, status)
			errText = red.Render(errText)
		}
		fmt.Fprintf(tw, "+%s\t%s\t%s\t%s\t%s %s\t|%s|\t%s\n", ms(r.Time.Sub(start)), ms(r.Duration), r.Service, status,
			r.Method, what, bar(r.Time.Sub(start), r.Duration, total), errText)
	}
	tw.Flush()
}

// bar draws [offset, offset+d) of total in barWidth cells; every request
// gets at least one cell.
func bar(offset, d, total time.Duration) string {
	if total <= 0 {
		return strings.Repeat("█", barWidth)
	}
	from := int(int64(offset) * barWidth / int64(total))
	n := int((int64(d)*barWidth + int64(total) - 1) / int64(total))
	from = min(max(from, 0), barWidth-1)
	n = min(max(n, 1), barWidth-from)
	return strings.Repeat(" ", from) + strings.Repeat("█", n) + strings.Repeat(" ", barWidth-from-n)
}
