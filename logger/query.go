package logger

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// ServiceSummary is the traffic of one service over a period.
type ServiceSummary struct {
	// Service is the service's name.
	Service string
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
	// Streams is how many of the hits were upgraded connections (status
	// 101, WebSockets say), whose duration is a whole session.
	Streams int64
	// P50, P95 and P99 are latency percentiles (nearest rank) of the other
	// hits; zero when there are none.
	P50, P95, P99 time.Duration
}

// Summary is Reader.Summary on the Store's read-only connections.
func (s *Store) Summary(ctx context.Context, since time.Time) ([]ServiceSummary, error) {
	return s.reader.Summary(ctx, since)
}

// Summary returns, for every service with requests at or after since, its
// hits, 4xx and 5xx rates, upgraded connections and latency percentiles,
// ordered by service name. It reads only the covering index on (ts,
// service, status, duration_us), so it does not touch the table rows and
// does not block writers.
func (r *Reader) Summary(ctx context.Context, since time.Time) ([]ServiceSummary, error) {
	rows, err := r.db.QueryContext(ctx,
		`SELECT service, status, duration_us FROM requests INDEXED BY requests_ts_cover WHERE ts >= ?`,
		since.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("logger: summary: %w", err)
	}
	defer rows.Close()
	type acc struct {
		errors, clientErrors, streams int64
		durs                          []int64
	}
	by := map[string]*acc{}
	var (
		service string
		status  int
		dur     int64
	)
	for rows.Next() {
		if err := rows.Scan(&service, &status, &dur); err != nil {
			return nil, fmt.Errorf("logger: summary: %w", err)
		}
		a := by[service]
		if a == nil {
			a = &acc{}
			by[service] = a
		}
		switch {
		case status == http.StatusSwitchingProtocols:
			a.streams++
			continue
		case status >= 500:
			a.errors++
		case status >= 400:
			a.clientErrors++
		}
		a.durs = append(a.durs, dur)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("logger: summary: %w", err)
	}
	out := make([]ServiceSummary, 0, len(by))
	for name, a := range by {
		slices.Sort(a.durs)
		n := int64(len(a.durs)) + a.streams
		out = append(out, ServiceSummary{
			Service:         name,
			Hits:            n,
			Errors:          a.errors,
			ErrorRate:       float64(a.errors) / float64(n),
			ClientErrors:    a.clientErrors,
			ClientErrorRate: float64(a.clientErrors) / float64(n),
			Streams:         a.streams,
			P50:             rank(a.durs, 50),
			P95:             rank(a.durs, 95),
			P99:             rank(a.durs, 99),
		})
	}
	slices.SortFunc(out, func(a, b ServiceSummary) int { return strings.Compare(a.Service, b.Service) })
	return out, nil
}

// rank returns the p-th percentile of sorted microsecond durations by the
// nearest-rank method.
func rank(sorted []int64, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100 // ceil(n*p/100)
	if i < 1 {
		i = 1
	}
	return time.Duration(sorted[i-1]) * time.Microsecond
}

// MaxTraceRows is the most rows ByTrace returns.
const MaxTraceRows = 1000

// ByTrace returns the requests of one trace, oldest first, at most
// MaxTraceRows of them: the whole path of a request through the fleet. It
// is Reader.ByTrace on the Store's read-only connections.
func (s *Store) ByTrace(ctx context.Context, traceID string) ([]Record, error) {
	return s.reader.ByTrace(ctx, traceID)
}
