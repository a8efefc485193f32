package logger_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/internal/testwait"
	"github.com/flotilla-go/flotilla/logger"
)

// querier is a *sql.DB or a *sql.Tx.
type querier interface {
	Query(q string, args ...any) (*sql.Rows, error)
}

// rollupCounts returns the requests per bucket start, service and status
// that the rollups of level in table hold.
func rollupCounts(t testing.TB, db querier, table string, level int) map[string]int64 {
	t.Helper()
	return groupCounts(t, db, `SELECT ts, service, status, sum(count), sum(failed), sum(bytes_out) FROM `+table+` WHERE level = ? GROUP BY 1, 2, 3`, level)
}

// rawCounts returns the same from the raw rows.
func rawCounts(t testing.TB, db querier, level int) map[string]int64 {
	t.Helper()
	return groupCounts(t, db, `SELECT ts / 1000000 / ? * ?, service, status, count(*), sum(error <> ''), sum(bytes_out) FROM requests GROUP BY 1, 2, 3`, level, level)
}

func groupCounts(t testing.TB, db querier, q string, args ...any) map[string]int64 {
	rows, err := db.Query(q, args...)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var (
			ts, n, failed, bytes int64
			svc                  string
			status               int
		)
		require.NoError(t, rows.Scan(&ts, &svc, &status, &n, &failed, &bytes))
		out[fmt.Sprintf("%d %s %d", ts, svc, status)] = n*1_000_000_000 + failed*1_000_000 + bytes
	}
	require.NoError(t, rows.Err())
	return out
}

// rollupsMatchRaw requires that both rollup tables count exactly the raw
// rows of each of their buckets, read in one snapshot: every bucket of
// service_rollups, and of rollups every minute and the hours and days
// compacted so far (before each service's marks).
func rollupsMatchRaw(t testing.TB, sdb *sql.DB) {
	t.Helper()
	db, err := sdb.Begin()
	require.NoError(t, err)
	defer db.Rollback()
	marks := map[string][2]int64{}
	rows, err := db.Query(`SELECT service, hours, days FROM rollup_marks`)
	require.NoError(t, err)
	for rows.Next() {
		var svc string
		var h, d int64
		require.NoError(t, rows.Scan(&svc, &h, &d))
		marks[svc] = [2]int64{h, d}
	}
	require.NoError(t, rows.Close())
	for i, level := range []int{60, 3600, 86400} {
		raw := rawCounts(t, db, level)
		require.Equal(t, raw, rollupCounts(t, db, "service_rollups", level), "service_rollups, level %d", level)
		for k := range raw {
			var ts int64
			var svc string
			fmt.Sscanf(k, "%d %s", &ts, &svc)
			if i > 0 && ts >= marks[svc][i-1] {
				delete(raw, k) // not compacted yet
			}
		}
		require.Equal(t, raw, rollupCounts(t, db, "rollups", level), "rollups, level %d", level)
	}
	var keyed int
	require.NoError(t, sdb.QueryRow(`SELECT count(*) FROM service_rollups WHERE method <> '' OR route <> ''`).Scan(&keyed))
	require.Zero(t, keyed, "service_rollups are per service and status alone")
}

// The rollups are written with their batch: the same rows, every level.
func TestRollups_AddUpToTheRawRows(t *testing.T) {
	s, path := openStore(t)
	now := time.Now()
	for i := range 3000 {
		r := testRecord(fmt.Sprintf("svc-%d", i%3), i)
		r.Time = now.Add(-time.Duration(i) * 37 * time.Second) // 31 hours
		if i%7 == 0 {
			r.Error = "boom"
		}
		s.Log(r)
	}
	require.NoError(t, s.Flush(context.Background()))
	db := rawDB(t, path)
	rollupsMatchRaw(t, db)
	var minutes int
	require.NoError(t, db.QueryRow(`SELECT count(DISTINCT ts) FROM rollups WHERE level = 60`).Scan(&minutes))
	assert.Greater(t, minutes, 1800, "one row per minute and key, over 31 hours")
}

// 45 processes write the file at once; their rollups count every row once.
func TestRollups_FromManyProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleet.db")
	storm(t, path, "svc", 45, 500)
	db := rawDB(t, path)
	require.Equal(t, 45*500, count(t, db, ""))
	rollupsMatchRaw(t, db)
}

// A row is rolled up into the minute it was logged in; a time ahead of the
// writer's clock (a clock stepped back since) goes into the current minute,
// never into one still to come.
func TestRollups_ClockStepsNeverReachTheFuture(t *testing.T) {
	s, path := openStore(t)
	now := time.Now()
	s.Log(logger.Record{Time: now.Add(2 * time.Hour), Service: "ahead", Status: 200})
	s.Log(logger.Record{Time: now.Add(-3 * time.Hour), Service: "behind", Status: 200})
	require.NoError(t, s.Flush(context.Background()))
	after := time.Now()
	db := rawDB(t, path)
	minute := func(svc string) int64 {
		var ts int64
		require.NoError(t, db.QueryRow(`SELECT ts FROM rollups WHERE level = 60 AND service = ?`, svc).Scan(&ts))
		return ts
	}
	assert.LessOrEqual(t, minute("ahead"), after.Unix())
	assert.GreaterOrEqual(t, minute("ahead"), now.Unix()/60*60)
	assert.Equal(t, now.Add(-3*time.Hour).Unix()/60*60, minute("behind"))
}

// A method no standard names is one key, so clients cannot grow the keys.
func TestRollups_UnknownMethodsShareOneKey(t *testing.T) {
	s, path := openStore(t)
	for i := range 50 {
		s.Log(logger.Record{Service: "a", Method: fmt.Sprintf("FOO%d", i), Status: 405})
	}
	s.Log(logger.Record{Service: "a", Method: "GET", Status: 200})
	require.NoError(t, s.Flush(context.Background()))
	var methods []string
	rows, err := rawDB(t, path).Query(`SELECT DISTINCT method FROM rollups WHERE level = 60 ORDER BY 1`)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var m string
		require.NoError(t, rows.Scan(&m))
		methods = append(methods, m)
	}
	assert.Equal(t, []string{"GET", "_OTHER"}, methods)
}

// Summary from the rollups gives the raw rows' counts, and percentiles
// within 1.6% of theirs, per service and per route.
func TestSummary_ByRouteAgainstRawRows(t *testing.T) {
	s, path := openStore(t)
	now := time.Now()
	for i := 1; i <= 400; i++ {
		route := []string{"/a", "/b/:id"}[i%2]
		status := []int{200, 200, 200, 404, 500, 200, 429}[i%7]
		s.Log(logger.Record{Time: now.Add(-time.Duration(i) * time.Second), Service: "svc", Method: "GET", Route: route,
			Status: status, Duration: time.Duration(i*i) * time.Microsecond, BytesOut: 10})
	}
	require.NoError(t, s.Flush(context.Background()))
	got, err := s.Summary(context.Background(), now.Add(-time.Hour), logger.ByRoute())
	require.NoError(t, err)
	require.Len(t, got, 2)
	db := rawDB(t, path)
	for _, g := range got {
		var hits, c4, c5 int64
		require.NoError(t, db.QueryRow(`SELECT count(*), sum(status BETWEEN 400 AND 499), sum(status >= 500) FROM requests WHERE route = ?`, g.Route).
			Scan(&hits, &c4, &c5))
		assert.Equal(t, "GET", g.Method)
		assert.Equal(t, hits, g.Hits, g.Route)
		assert.Equal(t, c4, g.ClientErrors, g.Route)
		assert.Equal(t, c5, g.Errors, g.Route)
		assert.Equal(t, hits*10, g.BytesOut)
		for _, q := range []struct {
			p   int
			got time.Duration
		}{{50, g.P50}, {95, g.P95}, {99, g.P99}} {
			var exact int64
			require.NoError(t, db.QueryRow(`WITH d AS (SELECT duration_us, row_number() OVER (ORDER BY duration_us) AS rn,
				count(*) OVER () AS n FROM requests WHERE route = ?) SELECT duration_us FROM d WHERE rn = (n * ? + 99) / 100`, g.Route, q.p).Scan(&exact))
			within(t, time.Duration(exact)*time.Microsecond, q.got, g.Route, q.p)
		}
	}
	one, err := s.Summary(context.Background(), now.Add(-time.Hour), logger.ForServices("nobody"))
	require.NoError(t, err)
	assert.Empty(t, one)
}

// The views give sqlite3 users what Summary gives.
func TestViews_MatchSummary(t *testing.T) {
	s, path := openStore(t)
	now := time.Now()
	for i := 1; i <= 300; i++ {
		s.Log(logger.Record{Time: now.Add(-time.Duration(i) * 5 * time.Second), Service: []string{"a", "b"}[i%2],
			Status: []int{200, 404, 503}[i%3], Duration: time.Duration(i) * 997 * time.Microsecond})
	}
	require.NoError(t, s.Flush(context.Background()))
	sum, err := s.Summary(context.Background(), now.Add(-time.Hour))
	require.NoError(t, err)
	for _, view := range []string{"traffic_last_hour", "traffic_last_day"} {
		rows, err := rawDB(t, path).Query(`SELECT service, hits, pct_4xx, pct_5xx, p50_ms, p95_ms, p99_ms FROM ` + view)
		require.NoError(t, err)
		i := 0
		for rows.Next() {
			var (
				svc                   string
				hits                  int64
				p4, p5, p50, p95, p99 float64
			)
			require.NoError(t, rows.Scan(&svc, &hits, &p4, &p5, &p50, &p95, &p99))
			require.Less(t, i, len(sum))
			w := sum[i]
			assert.Equal(t, w.Service, svc, view)
			assert.Equal(t, w.Hits, hits, view)
			assert.InDelta(t, 100*w.ClientErrorRate, p4, 0.01, view)
			assert.InDelta(t, 100*w.ErrorRate, p5, 0.01, view)
			assert.InDelta(t, float64(w.P50.Microseconds())/1000, p50, 0.001, view)
			assert.InDelta(t, float64(w.P95.Microseconds())/1000, p95, 0.001, view)
			assert.InDelta(t, float64(w.P99.Microseconds())/1000, p99, 0.001, view)
			i++
		}
		require.NoError(t, rows.Err())
		rows.Close()
		assert.Equal(t, len(sum), i, view)
	}
}

func TestSeries_PerMinuteAndFleet(t *testing.T) {
	s, _ := openStore(t)
	now := time.Now()
	start := now.Add(-10 * time.Minute).Truncate(time.Minute)
	for m := range 10 {
		for i := range m + 1 { // m+1 requests in minute m, one a 500 from minute 5 on
			st := 200
			if m >= 5 && i == 0 {
				st = 500
			}
			s.Log(logger.Record{Time: start.Add(time.Duration(m)*time.Minute + time.Duration(i)*time.Second), Service: "svc",
				Status: st, Duration: time.Duration(m+1) * time.Millisecond})
		}
	}
	s.Log(logger.Record{Time: start, Service: "other", Status: 404})
	require.NoError(t, s.Flush(context.Background()))
	r, err := logger.OpenReader(s.Path())
	require.NoError(t, err)
	defer r.Close()

	series, err := r.Series(context.Background(), start, time.Minute, logger.ForServices("svc"))
	require.NoError(t, err)
	require.Len(t, series, 1)
	sv := series[0]
	assert.Equal(t, start.Unix(), sv.Start.Unix())
	require.GreaterOrEqual(t, len(sv.Points), 10)
	for m := range 10 {
		p := sv.Points[m]
		assert.Equal(t, int64(m+1), p.Hits, "minute %d", m)
		assert.Equal(t, int64(map[bool]int{true: 1}[m >= 5]), p.Errors, "minute %d", m)
		within(t, time.Duration(m+1)*time.Millisecond, p.P95)
	}

	fleet, err := r.Series(context.Background(), start, time.Hour, logger.FleetTotal())
	require.NoError(t, err)
	require.Len(t, fleet, 1)
	var hits, c4 int64
	for _, p := range fleet[0].Points {
		hits += p.Hits
		c4 += p.ClientErrors
	}
	assert.Equal(t, int64(56), hits)
	assert.Equal(t, int64(1), c4)

	_, err = r.Series(context.Background(), start, 90*time.Second)
	assert.ErrorContains(t, err, "whole number of minutes")
}

// Minute rollups go after MinuteRollupRetention, once compacted; the hour
// and day rollups they made stay.
func TestPruneRollups_KeepsTheDaysLonger(t *testing.T) {
	s, path := openStore(t)
	old := time.Now().Add(-20 * 24 * time.Hour)
	s.Log(logger.Record{Time: old, Service: "svc", Status: 200})
	s.Log(logger.Record{Service: "svc", Status: 200})
	require.NoError(t, s.Flush(context.Background()))
	db := rawDB(t, path)
	levels := func() map[string]int64 {
		return groupCounts(t, db, `SELECT level, '', 0, count(*), 0, 0 FROM rollups GROUP BY level`)
	}
	_, err := s.CompactRollups(context.Background()) // (the Store may have begun in the background)
	require.NoError(t, err)
	n, err := s.PruneRollups(context.Background(), time.Now())
	require.NoError(t, err)
	assert.Equal(t, int64(2), n, "the old minute, per route and per service")
	assert.Equal(t, map[string]int64{"60  0": 1e9, "3600  0": 1e9, "86400  0": 1e9}, levels(), "the old hour and day stay")
	sum, err := s.Summary(context.Background(), old.Add(-time.Hour))
	require.NoError(t, err)
	assert.Equal(t, int64(2), sum[0].Hits, "the pruned minute is counted in its hour")
}

// schemaV2 is the file layout before the rollups.
const schemaV2 = `CREATE TABLE requests (
	id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, service TEXT NOT NULL, method TEXT NOT NULL,
	path TEXT NOT NULL, route TEXT NOT NULL, status INTEGER NOT NULL, duration_us INTEGER NOT NULL,
	bytes_in INTEGER NOT NULL, bytes_out INTEGER NOT NULL, ip TEXT NOT NULL, user_agent TEXT NOT NULL,
	request_id TEXT NOT NULL, trace_id TEXT NOT NULL, error TEXT NOT NULL);
CREATE INDEX requests_ts_cover ON requests (ts, service, status, duration_us);
CREATE INDEX requests_trace ON requests (trace_id, ts) WHERE trace_id <> '';
PRAGMA user_version = 2;
PRAGMA journal_mode = WAL;`

// oldFile writes a file as the version before the rollups did, with n rows
// over the last two days.
func oldFile(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "old.db")
	db := rawDB(t, path)
	_, err := db.Exec(schemaV2)
	require.NoError(t, err)
	_, err = db.Exec(`WITH RECURSIVE i(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM i WHERE n < ?)
		INSERT INTO requests (ts, service, method, path, route, status, duration_us, bytes_in, bytes_out, ip, user_agent, request_id, trace_id, error)
		SELECT (unixepoch() - n * 5) * 1000000, 'old-' || (n % 4), 'GET', '/x', '/x', CASE WHEN n % 10 = 0 THEN 500 ELSE 200 END,
			n % 5000, 0, n % 100, '', '', '', '', CASE WHEN n % 13 = 0 THEN 'e' ELSE '' END FROM i`, n)
	require.NoError(t, err)
	require.NoError(t, db.Close())
	return path
}

// A file from the version before opens, migrates at once while a fleet
// opens it, and its history is rolled up in the background, each row once.
func TestRollups_BackfillTheHistoryOfAnOldFile(t *testing.T) {
	path := oldFile(t, 30_000)
	storm(t, path, "new", 45, 200) // a fleet migrates and writes at once
	db := rawDB(t, path)
	var version int
	require.NoError(t, db.QueryRow(`PRAGMA user_version`).Scan(&version))
	require.Equal(t, logger.SchemaVersion, version)

	s, err := logger.Open(path)
	require.NoError(t, err)
	_, err = s.Backfill(context.Background()) // whatever the fleet left
	require.NoError(t, err)
	_, err = s.CompactRollups(context.Background())
	require.NoError(t, err)
	require.NoError(t, s.Close())
	r, err := logger.OpenReader(path)
	require.NoError(t, err)
	defer r.Close()
	left, _, err := r.Backfilling(context.Background())
	require.NoError(t, err)
	assert.Zero(t, left)
	rollupsMatchRaw(t, db)
}

// Damaged rollups are refused with the way out, and rebuilt from the raw
// rows; rollups dropped by hand come back at the next open.
func TestRollups_DamagedAreRefusedAndRebuilt(t *testing.T) {
	var out testwait.Buffer
	s, path := openStore(t, logger.WithLogger(slog.New(slog.NewTextHandler(&out, nil))))
	for i := range 500 {
		s.Log(testRecord("svc", i))
	}
	require.NoError(t, s.Flush(context.Background()))
	db := rawDB(t, path)
	_, err := db.Exec(`UPDATE rollups SET count = count + 1; UPDATE service_rollups SET count = count + 1`)
	require.NoError(t, err)
	_, err = s.Summary(context.Background(), time.Now().Add(-24*time.Hour))
	require.ErrorIs(t, err, logger.ErrRollupsDamaged)
	assert.ErrorContains(t, err, "flotilla rollups rebuild")
	_, err = db.Exec(`UPDATE rollups SET count = count - 1, hist = '{"5":'; UPDATE service_rollups SET count = count - 1, hist = '{"5":'`)
	require.NoError(t, err)
	_, err = s.Summary(context.Background(), time.Now().Add(-5*time.Minute))
	require.ErrorIs(t, err, logger.ErrRollupsDamaged)

	s.Log(testRecord("svc", 500)) // a batch over damaged rows leaves them to the rebuild, and says so
	require.NoError(t, s.Flush(context.Background()))
	waitFor(t, 10*time.Second, "a warning about the damaged rows", func() bool {
		return strings.Contains(out.String(), "damaged rollup rows left as they are; rebuild them with flotilla rollups rebuild")
	})

	_, err = s.RebuildRollups(context.Background())
	require.NoError(t, err)
	_, err = s.Backfill(context.Background())
	require.NoError(t, err)
	rollupsMatchRaw(t, db)
	sum, err := s.Summary(context.Background(), time.Now().Add(-24*time.Hour))
	require.NoError(t, err)
	require.Len(t, sum, 1)
	assert.Equal(t, int64(501), sum[0].Hits)

	require.NoError(t, s.Close())
	_, err = db.Exec(`DROP TABLE service_rollups`)
	require.NoError(t, err)
	s2, err := logger.Open(path)
	require.NoError(t, err)
	defer s2.Close()
	_, err = s2.Backfill(context.Background())
	require.NoError(t, err)
	rollupsMatchRaw(t, db)
}

// Compaction changes how a window is read, never what it says; a row that
// arrives for an hour already compacted is counted at every level.
func TestCompactRollups_QueriesAgreeAndLateRowsCount(t *testing.T) {
	s, path := openStore(t)
	now := time.Now()
	for i := range 4000 {
		r := testRecord([]string{"a", "b"}[i%2], i)
		r.Time = now.Add(-time.Duration(i) * 61 * time.Second) // 2.8 days
		s.Log(r)
	}
	require.NoError(t, s.Flush(context.Background()))
	ctx := context.Background()
	type view struct {
		sum30, sum24, byRoute []logger.ServiceSummary
		daily, hourly         []logger.Series
	}
	read := func() view {
		var v view
		var err error
		v.sum30, err = s.Summary(ctx, now.Add(-30*24*time.Hour))
		require.NoError(t, err)
		v.sum24, err = s.Summary(ctx, now.Add(-24*time.Hour))
		require.NoError(t, err)
		v.byRoute, err = s.Summary(ctx, now.Add(-7*24*time.Hour), logger.ByRoute())
		require.NoError(t, err)
		v.daily, err = s.Series(ctx, now.Add(-7*24*time.Hour), 24*time.Hour)
		require.NoError(t, err)
		v.hourly, err = s.Series(ctx, now.Add(-48*time.Hour), time.Hour, logger.FleetTotal())
		require.NoError(t, err)
		return v
	}
	before := read()
	at := time.Now()
	_, err := s.CompactRollups(ctx)
	require.NoError(t, err)
	var hours, days int64
	require.NoError(t, rawDB(t, path).QueryRow(`SELECT min(hours), min(days) FROM rollup_marks`).Scan(&hours, &days))
	assert.GreaterOrEqual(t, hours, at.Truncate(time.Hour).Unix(), "every hour that is over is compacted")
	assert.GreaterOrEqual(t, days, at.UTC().Truncate(24*time.Hour).Unix(), "and every day")
	assert.Equal(t, before, read())
	var viewHits int64
	require.NoError(t, rawDB(t, path).QueryRow(`SELECT sum(hits) FROM traffic_last_day`).Scan(&viewHits))
	assert.Equal(t, before.sum24[0].Hits+before.sum24[1].Hits, viewHits, "the view reads hours, then minutes")
	assert.Equal(t, int64(4000), before.sum30[0].Hits+before.sum30[1].Hits)

	late := testRecord("a", 1)
	late.Time = now.Add(-50 * time.Hour)
	s.Log(late)
	require.NoError(t, s.Flush(ctx))
	after := read()
	assert.Equal(t, before.sum30[0].Hits+1, after.sum30[0].Hits)
	require.NoError(t, s.Close())
	rollupsMatchRaw(t, rawDB(t, path))
}

// histObjects rewrites every histogram of the file as the object of bucket
// names → counts that versions before 4 wrote, and puts the file back at
// version 3 with that version's views, as an older version leaves it.
func histObjects(t *testing.T, path string) {
	t.Helper()
	db := rawDB(t, path)
	for _, table := range []string{"rollups", "service_rollups"} {
		_, err := db.Exec(`UPDATE ` + table + ` SET hist = (SELECT coalesce(json_group_object(us, n), '{}') FROM (
			SELECT b.us, b.n FROM latency_buckets_all b WHERE b.level = ` + table + `.level AND b.ts = ` + table + `.ts AND b.service = ` + table + `.service
				AND b.method = ` + table + `.method AND b.route = ` + table + `.route AND b.status = ` + table + `.status ORDER BY b.us))`)
		require.NoError(t, err, table)
	}
	_, err := db.Exec(`DROP VIEW latency_buckets_all; DROP VIEW latency_buckets;
		CREATE VIEW latency_buckets AS SELECT r.level, r.ts, r.service, r.method, r.route, r.status,
			CAST(j.key AS INTEGER) AS us, j.value AS n FROM rollups r, json_each(r.hist) j;
		PRAGMA user_version = 3;`)
	require.NoError(t, err)
	var arrays int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM rollups WHERE hist LIKE '[%'`).Scan(&arrays))
	require.Zero(t, arrays)
}

// A file of version 3 holds histograms as objects. It opens, its views are
// replaced by ones that read both shapes, and the queries, the views and
// the writer (which reads a stored object and writes back an array) give
// the same numbers as for a file written as arrays.
func TestRollups_HistogramsOfBothShapes(t *testing.T) {
	now := time.Now()
	log := func(s *logger.Store) {
		for i := 1; i <= 300; i++ {
			s.Log(logger.Record{Time: now.Add(-time.Duration(i) * 5 * time.Second), Service: []string{"a", "b"}[i%2], Route: []string{"/x", "/y"}[i%3%2],
				Status: []int{200, 404, 503}[i%3], Duration: time.Duration(i*i) * 37 * time.Microsecond})
		}
		require.NoError(t, s.Flush(context.Background()))
	}
	type figures struct {
		sums  []logger.ServiceSummary
		view  []string           // the rows of traffic_last_hour
		bucks map[[2]int64]int64 // (ts, us) → n of the per-route minutes (the hours are there once a Store has compacted them)
	}
	read := func(path string) figures {
		r, err := logger.OpenReader(path)
		require.NoError(t, err)
		defer r.Close()
		var f figures
		f.sums, err = r.Summary(context.Background(), now.Add(-time.Hour), logger.ByRoute())
		require.NoError(t, err)
		rows, err := rawDB(t, path).Query(`SELECT service || ' ' || hits || ' ' || pct_4xx || ' ' || pct_5xx || ' ' || p50_ms || ' ' || p95_ms || ' ' || p99_ms FROM traffic_last_hour`)
		require.NoError(t, err)
		for rows.Next() {
			var v string
			require.NoError(t, rows.Scan(&v))
			f.view = append(f.view, v)
		}
		require.NoError(t, rows.Err())
		rows.Close()
		f.bucks = map[[2]int64]int64{}
		rows, err = rawDB(t, path).Query(`SELECT ts, us, sum(n) FROM latency_buckets WHERE level = 60 GROUP BY 1, 2`)
		require.NoError(t, err)
		for rows.Next() {
			var k [2]int64
			var n int64
			require.NoError(t, rows.Scan(&k[0], &k[1], &n))
			f.bucks[k] = n
		}
		require.NoError(t, rows.Err())
		rows.Close()
		return f
	}

	s, arrays := openStore(t)
	log(s)
	require.NoError(t, s.Close())
	want := read(arrays)
	require.NotEmpty(t, want.view)
	require.NotEmpty(t, want.bucks)

	s, objects := openStore(t)
	log(s)
	require.NoError(t, s.Close())
	_, err := rawDB(t, objects).Exec(`CREATE VIEW latency_buckets_all AS ` + logger.BucketsSQL("rollups") + ` UNION ALL ` + logger.BucketsSQL("service_rollups"))
	require.NoError(t, err)
	histObjects(t, objects)

	got := read(objects) // read as version 3 left it, through the old view too
	assert.Equal(t, want.sums, got.sums, "Summary reads the objects")
	assert.Equal(t, want.bucks, got.bucks, "version 3's view reads its objects")

	s, err = logger.Open(objects) // migrates to 4
	require.NoError(t, err)
	got = read(objects)
	assert.Equal(t, want.sums, got.sums)
	assert.Equal(t, want.view, got.view, "the views read the objects")
	assert.Equal(t, want.bucks, got.bucks)

	// The writer adds to a stored object and writes an array.
	log(s)
	require.NoError(t, s.Close())
	s, err = logger.Open(arrays)
	require.NoError(t, err)
	log(s)
	require.NoError(t, s.Close())
	want, got = read(arrays), read(objects)
	assert.Equal(t, want.sums, got.sums, "after more rows on each")
	assert.Equal(t, want.view, got.view)
	assert.Equal(t, want.bucks, got.bucks)
	var objectsLeft int
	require.NoError(t, rawDB(t, objects).QueryRow(`SELECT count(*) FROM service_rollups WHERE hist LIKE '{%'`).Scan(&objectsLeft))
	assert.Zero(t, objectsLeft, "every service row was written again, as an array")
}

// Overview gives, from one read, what Summary and Series with FleetTotal
// give over the same window.
func TestOverview_IsSummaryAndFleetSeries(t *testing.T) {
	s, _ := openStore(t)
	now := time.Now()
	since := now.Truncate(time.Hour).Add(-3 * time.Hour)
	for i := 1; i <= 600; i++ {
		s.Log(logger.Record{Time: now.Add(-time.Duration(i) * 17 * time.Second), Service: []string{"a", "b", "c"}[i%3], Route: "/x",
			Status: []int{200, 200, 404, 503, 101}[i%5], Duration: time.Duration(i*i) * 13 * time.Microsecond, BytesOut: int64(i)})
	}
	require.NoError(t, s.Flush(context.Background()))
	ctx := context.Background()
	v, err := s.Overview(ctx, since, time.Hour)
	require.NoError(t, err)
	sums, err := s.Summary(ctx, since)
	require.NoError(t, err)
	fleet, err := s.Series(ctx, since, time.Hour, logger.FleetTotal())
	require.NoError(t, err)
	require.Len(t, fleet, 1)
	require.Len(t, sums, 3)
	assert.Equal(t, sums, v.Services)
	assert.Equal(t, fleet[0], v.Fleet)
	var hits int64
	for _, p := range v.Fleet.Points {
		hits += p.Hits
	}
	assert.Equal(t, int64(600), hits)

	one, err := s.Overview(ctx, since, time.Hour, logger.ForServices("b"))
	require.NoError(t, err)
	require.Len(t, one.Services, 1)
	assert.Equal(t, sums[1], one.Services[0])

	none, err := s.Overview(ctx, since, time.Hour, logger.ForServices("nobody"))
	require.NoError(t, err)
	assert.Empty(t, none.Services)
	assert.Len(t, none.Fleet.Points, 4, "the steps of the window, zero")
	_, err = s.Overview(ctx, since, 90*time.Second)
	assert.ErrorContains(t, err, "whole number of minutes")
}
