package logger_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/logger"
)

func TestStore_Summary(t *testing.T) {
	s, _ := openStore(t)
	now := time.Now()
	// agent-geo: 100 requests lasting 1..100 ms, 5 of them 5xx.
	for i := 1; i <= 100; i++ {
		status := 200
		if i%20 == 0 {
			status = 503
		}
		s.Log(logger.Record{Time: now, Service: "agent-geo", Status: status, Duration: time.Duration(i) * time.Millisecond})
	}
	// crypto-feeds: 4 requests, one 404 (not an error), one 500.
	for i, st := range []int{200, 404, 500, 200} {
		s.Log(logger.Record{Time: now, Service: "crypto-feeds", Status: st, Duration: time.Duration(i+1) * time.Second})
	}
	// crypto-feeds also had two WebSocket sessions of an hour: hits, but
	// not latencies. ws-only had nothing else.
	for _, svc := range []string{"crypto-feeds", "crypto-feeds", "ws-only"} {
		s.Log(logger.Record{Time: now, Service: svc, Status: http.StatusSwitchingProtocols, Duration: time.Hour})
	}
	// Old traffic is outside the window.
	s.Log(logger.Record{Time: now.Add(-2 * time.Hour), Service: "old", Status: 200})
	require.NoError(t, s.Flush(context.Background()))

	got, err := s.Summary(context.Background(), now.Add(-time.Hour))
	require.NoError(t, err)
	require.Len(t, got, 3)

	geo := got[0]
	assert.Equal(t, "agent-geo", geo.Service)
	assert.Equal(t, int64(100), geo.Hits)
	assert.Equal(t, int64(5), geo.Errors)
	assert.InDelta(t, 0.05, geo.ErrorRate, 1e-9)
	within(t, 50*time.Millisecond, geo.P50)
	within(t, 95*time.Millisecond, geo.P95)
	within(t, 99*time.Millisecond, geo.P99)
	within(t, 100*time.Millisecond, geo.Max)
	assert.Equal(t, map[int]int64{200: 95, 503: 5}, geo.Statuses)

	cf := got[1]
	assert.Equal(t, "crypto-feeds", cf.Service)
	assert.Equal(t, int64(6), cf.Hits)
	assert.Equal(t, int64(2), cf.Streams)
	assert.Equal(t, int64(1), cf.Errors)
	assert.Equal(t, int64(1), cf.ClientErrors, "the 404")
	assert.InDelta(t, 1.0/6, cf.ClientErrorRate, 1e-9)
	within(t, 2*time.Second, cf.P50)
	within(t, 4*time.Second, cf.P99, "sessions are not latencies")

	ws := got[2]
	assert.Equal(t, logger.ServiceSummary{Service: "ws-only", Hits: 1, Streams: 1, Statuses: map[int]int64{101: 1}}, ws)

	none, err := s.Summary(context.Background(), now.Add(time.Hour))
	require.NoError(t, err)
	assert.Empty(t, none)
}

func TestStore_ByTrace(t *testing.T) {
	s, _ := openStore(t)
	now := time.Now()
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	s.Log(logger.Record{Time: now.Add(2 * time.Millisecond), Service: "agent-geo", Path: "/geo/1.1.1.1", Status: 502, TraceID: trace, Error: "upstream"})
	s.Log(logger.Record{Time: now, Service: "agent-gateway", Path: "/v1/agent-geo/geo/1.1.1.1", Status: 502, TraceID: trace})
	s.Log(logger.Record{Time: now.Add(time.Millisecond), Service: "other", TraceID: "0af7651916cd43dd8448eb211c80319c"})
	s.Log(logger.Record{Time: now.Add(time.Millisecond), Service: "untraced"})
	require.NoError(t, s.Flush(context.Background()))

	got, err := s.ByTrace(context.Background(), trace)
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, "agent-gateway", got[0].Service, "oldest first")
	assert.Equal(t, "agent-geo", got[1].Service)
	assert.Equal(t, "upstream", got[1].Error)
	assert.Equal(t, now.UnixMicro(), got[0].Time.UnixMicro())

	empty, err := s.ByTrace(context.Background(), "")
	require.NoError(t, err)
	assert.Empty(t, empty, "the empty trace id matches nothing")
}

// The dashboard queries use their indexes rather than scanning the table.
func TestStore_QueriesUseIndexes(t *testing.T) {
	_, path := openStore(t)
	db := rawDB(t, path)
	plan := func(q string, args ...any) string {
		rows, err := db.Query("EXPLAIN QUERY PLAN "+q, args...)
		require.NoError(t, err)
		defer rows.Close()
		var all string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			require.NoError(t, rows.Scan(&id, &parent, &unused, &detail))
			all += detail + "\n"
		}
		return all
	}
	assert.Contains(t, plan("SELECT service, status, duration_us FROM requests WHERE ts >= ?", 0), "COVERING INDEX requests_ts_cover")
	assert.Contains(t, plan("SELECT * FROM requests WHERE trace_id = ? AND trace_id <> '' ORDER BY ts, id", "x"), "INDEX requests_trace")
	assert.Contains(t, plan("SELECT id FROM requests WHERE ts < ? ORDER BY ts LIMIT 5000", 0), "INDEX requests_ts_cover")
}

// The p95 query of docs/migrating-from-pm2.md gives Summary's number.
func TestSummary_MatchesTheDocumentedSQL(t *testing.T) {
	s, path := openStore(t)
	now := time.Now()
	for i := 1; i <= 137; i++ {
		s.Log(logger.Record{Time: now, Service: "a", Status: 200, Duration: time.Duration(i*i) * time.Microsecond})
	}
	for i := 1; i <= 9; i++ {
		s.Log(logger.Record{Time: now, Service: "b", Status: 200, Duration: time.Duration(10-i) * time.Millisecond})
	}
	s.Log(logger.Record{Time: now, Service: "b", Status: http.StatusSwitchingProtocols, Duration: time.Hour})
	require.NoError(t, s.Flush(context.Background()))
	sum, err := s.Summary(context.Background(), now.Add(-time.Hour))
	require.NoError(t, err)

	rows, err := rawDB(t, path).Query(`WITH d AS (
  SELECT service, duration_us,
         row_number() OVER (PARTITION BY service ORDER BY duration_us) AS rn,
         count(*) OVER (PARTITION BY service) AS n
  FROM requests
  WHERE ts >= (unixepoch() - 3600) * 1000000 AND status <> 101
)
SELECT service, duration_us / 1000.0 AS p95_ms
FROM d WHERE rn = (n * 95 + 99) / 100
ORDER BY service;`)
	require.NoError(t, err)
	defer rows.Close()
	var got []float64
	for rows.Next() {
		var svc string
		var p95 float64
		require.NoError(t, rows.Scan(&svc, &p95))
		got = append(got, p95)
	}
	require.Len(t, sum, 2)
	require.Len(t, got, 2)
	for i := range got {
		within(t, time.Duration(got[i]*1000)*time.Microsecond, sum[i].P95, sum[i].Service)
	}
}

// within asserts that a percentile read from the rollups is within 1.6% of
// the exact one.
func within(t *testing.T, exact, got time.Duration, msg ...any) {
	t.Helper()
	assert.InEpsilon(t, float64(exact), float64(got), 1.0/64, msg...)
}
