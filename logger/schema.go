package logger

// SchemaVersion is the version of the requests table layout this package
// writes, kept in PRAGMA user_version. Open migrates older files in place and
// refuses newer ones with ErrSchemaTooNew.
const SchemaVersion = 2

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
}
