package logger

// SchemaVersion is the version of the requests table layout this package
// writes, kept in PRAGMA user_version. Open migrates older files in place and
// refuses newer ones with ErrSchemaTooNew.
const SchemaVersion = 4

// migrations[v-1] takes a file from schema version v-1 to v. Each runs in the
// same IMMEDIATE transaction that sets the new user_version, so a process
// killed halfway leaves the file at the old version, never in between.
var migrations = []string{
	// 1: the requests table. Times are Unix microseconds (UTC), so
	// datetime(ts/1000000, 'unixepoch') shows them.
	`CREATE TABLE IF NOT EXISTS requests (
		id          INTEGER PRIMARY KEY,
		ts          INTEGER NOT NULL,
		service     TEXT    NOT NULL,
		method      TEXT    NOT NULL,
		path        TEXT    NOT NULL,
		route       TEXT    NOT NULL,
		status      INTEGER NOT NULL,
		duration_us INTEGER NOT NULL,
		bytes_in    INTEGER NOT NULL,
		bytes_out   INTEGER NOT NULL,
		ip          TEXT    NOT NULL,
		user_agent  TEXT    NOT NULL,
		request_id  TEXT    NOT NULL,
		trace_id    TEXT    NOT NULL,
		error       TEXT    NOT NULL
	);
	CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts);`,

	// 2: indexes for the dashboard queries. requests_ts_cover answers
	// Summary from the index alone; requests_trace only holds traced rows.
	`DROP INDEX IF EXISTS requests_ts;
	CREATE INDEX IF NOT EXISTS requests_ts_cover ON requests (ts, service, status, duration_us);
	CREATE INDEX IF NOT EXISTS requests_trace ON requests (trace_id, ts) WHERE trace_id <> '';`,

	// 3: the rollups, written with every batch (see rollup.go), the
	// backfill of the rows written before them, and views over both for
	// sqlite3.
	rollupSchema + rollupBackfillAll + rollupViews,

	// 4: histograms are written as arrays of counts (hist.appendJSON); the
	// views read both shapes. Rows written before keep theirs until they
	// are next written.
	`DROP VIEW IF EXISTS latency_buckets; DROP VIEW IF EXISTS traffic_last_hour; DROP VIEW IF EXISTS traffic_last_day;` + rollupViews,
}

// rollupSchema holds the rollups: in rollups one row per level, bucket
// start, service, method, route and status; in service_rollups the same
// per service and status alone (method and route empty), so that fleet views
// read one row where a service has many routes. level is the bucket's width
// in seconds (60, 3600, 86400); ts is its start in Unix seconds (UTC);
// hist is the latency histogram as JSON (see hist.appendJSON).
var rollupSchema = rollupTable("rollups") + rollupTable("service_rollups") + `
	CREATE TABLE IF NOT EXISTS rollup_marks (
		service TEXT PRIMARY KEY,
		hours   INTEGER NOT NULL,
		days    INTEGER NOT NULL
	) WITHOUT ROWID;
	CREATE TABLE IF NOT EXISTS rollup_backfill (
		id      INTEGER PRIMARY KEY CHECK (id = 1),
		next_id INTEGER NOT NULL,
		end_id  INTEGER NOT NULL,
		since   INTEGER NOT NULL
	);`

// rollupTables are the tables rollupTable makes, per-route first.
var rollupTables = [2]string{"rollups", "service_rollups"}

func rollupTable(name string) string {
	return `
	CREATE TABLE IF NOT EXISTS ` + name + ` (
		level       INTEGER NOT NULL,
		ts          INTEGER NOT NULL,
		service     TEXT    NOT NULL,
		method      TEXT    NOT NULL,
		route       TEXT    NOT NULL,
		status      INTEGER NOT NULL,
		count       INTEGER NOT NULL,
		failed      INTEGER NOT NULL,
		bytes_in    INTEGER NOT NULL,
		bytes_out   INTEGER NOT NULL,
		duration_us INTEGER NOT NULL,
		max_us      INTEGER NOT NULL,
		hist        TEXT    NOT NULL,
		PRIMARY KEY (level, ts, service, method, route, status)
	) WITHOUT ROWID;
	CREATE INDEX IF NOT EXISTS ` + name + `_service ON ` + name + ` (level, service, ts);`
}

// rollupBackfillAll schedules every row of the file for the backfill.
const rollupBackfillAll = `
	INSERT OR REPLACE INTO rollup_backfill (id, next_id, end_id, since)
		SELECT 1, coalesce(min(id), 1), coalesce(max(id), 0), 0 FROM requests;`

// rollupViews are for sqlite3 users; the package's queries do not use them.
var rollupViews = `
	CREATE VIEW IF NOT EXISTS rollup_rows AS
		SELECT CASE level WHEN 60 THEN 'minute' WHEN 3600 THEN 'hour' ELSE 'day' END AS level,
			datetime(ts, 'unixepoch') AS time, service, method, route, status, count, failed,
			bytes_in, bytes_out, round(duration_us / 1000.0 / count, 3) AS mean_ms,
			round(max_us / 1000.0, 3) AS max_ms, ts, hist
		FROM rollups;
	CREATE VIEW IF NOT EXISTS latency_buckets AS ` + bucketsSQL("rollups") + `;` +
	serviceWindowView("traffic_last_hour", `SELECT * FROM service_rollups
		WHERE level = 60 AND ts >= (unixepoch('now') - 3600) / 60 * 60`) +
	serviceWindowView("traffic_last_day", `SELECT * FROM service_rollups
		WHERE level = 3600 AND ts >= (unixepoch('now') - 86400) / 3600 * 3600`)

// serviceWindowView returns a view of each service's hits, 4xx and 5xx
// percentages and p50/p95/p99 in milliseconds over the service rollups
// that rows selects.
func serviceWindowView(name, rows string) string {
	pct := func(p string) string {
		return `(SELECT round(min(us) / 1000.0, 3) FROM q WHERE q.service = c.service AND q.cum * 100 >= q.total * ` + p + `)`
	}
	return `
	CREATE VIEW IF NOT EXISTS ` + name + ` AS
		WITH r AS (` + rows + `),
		c AS (SELECT service, sum(count) AS hits,
			sum(CASE WHEN status BETWEEN 400 AND 499 THEN count ELSE 0 END) AS c4,
			sum(CASE WHEN status >= 500 THEN count ELSE 0 END) AS c5
			FROM r GROUP BY service),
		b AS (SELECT service, us, sum(n) AS n FROM (` + bucketsSQL("r") + `) WHERE status <> 101 GROUP BY 1, 2),
		q AS (SELECT service, us, sum(n) OVER (PARTITION BY service ORDER BY us) AS cum,
			sum(n) OVER (PARTITION BY service) AS total FROM b)
		SELECT service, hits, round(100.0 * c4 / hits, 2) AS pct_4xx, round(100.0 * c5 / hits, 2) AS pct_5xx,
			` + pct("50") + ` AS p50_ms, ` + pct("95") + ` AS p95_ms, ` + pct("99") + ` AS p99_ms
		FROM c ORDER BY service;`
}

// bucketsSQL selects each histogram bucket of the rollup rows of from (a
// table or a CTE with its columns) as level, ts, service, method, route,
// status, us (the bucket's middle value in microseconds) and n (its count).
// It reads both shapes: the array of counts, whose element k's bucket is
// the first index plus one for each count and the run's length for each
// negative run before it (histIndex, histName); and the object of bucket
// names that versions before 4 wrote.
func bucketsSQL(from string) string {
	const pk = "r.level, r.ts, r.service, r.method, r.route, r.status"
	name := "CASE WHEN i < 64 THEN i ELSE ((32 + i % 32) << (i / 32 - 1)) + ((1 << (i / 32 - 1)) - 1) / 2 END"
	return `SELECT level, ts, service, method, route, status, ` + name + ` AS us, v AS n FROM (
			SELECT ` + pk + `, j.value AS v, json_extract(r.hist, '$[0]') + coalesce(sum(CASE WHEN j.value < 0 THEN -j.value ELSE 1 END)
				OVER (PARTITION BY ` + pk + ` ORDER BY j.key ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS i
			FROM ` + from + ` r, json_each(r.hist) j WHERE json_type(r.hist) = 'array' AND j.key > 0)
		WHERE v > 0
		UNION ALL
		SELECT ` + pk + `, CAST(j.key AS INTEGER), j.value
		FROM ` + from + ` r, json_each(r.hist) j WHERE json_type(r.hist) = 'object'`
}
