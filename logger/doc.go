// Package logger is the fleet's shared request log: one SQLite file in WAL
// mode that every service writes at once, and the queries that read it.
//
// # Writing
//
// Open the file (it is created, with its folder, when missing) and log each
// request with Middleware, or Store.Log from anywhere:
//
//	store, err := logger.Open("/var/lib/flotilla/flotilla.db")
//	...
//	defer store.Close() // writes what is still queued
//	app.Use(logger.Middleware(store, "agent-geo"))
//
// Log never blocks and never fails: it puts the record in a bounded queue
// (DefaultQueueSize; past it records are dropped and counted in Stats). One
// writer goroutine per Store commits the queue in batches of up to 1,024
// rows, each one BEGIN IMMEDIATE transaction, every DefaultFlushInterval.
// Lock contention from the other processes is retried with backoff. Open
// retries the WAL switch and the schema migration while many processes
// open the file at once. Only the URL path is stored, never the query
// string or a header but User-Agent and X-Request-ID; text is bounded and
// control characters escaped (see MaxPathLen).
//
// # Rollups
//
// Each batch also adds itself, in the same transaction, to rollups: per
// minute, hour and day, the count of each status, the rows whose handler
// returned an error, bytes, and a log-linear latency histogram whose
// percentiles are within 1.6% of the exact ones. Per service
// (service_rollups) every level is written with the batch; per route
// (rollups) the minutes are, and the hours and days are compacted from
// them once the hour is over (CompactRollups, run every minute by every
// Store). Summary, Series and SLOs read them, so their cost follows the
// number of services, routes and days in a window, not the traffic. Raw
// rows are kept DefaultRetention (WithRetention), day rollups
// DefaultRollupRetention (WithRollupRetention). Files from an older
// version are migrated at Open and their history rolled up in the
// background (Backfill); rollups that do not add up are refused with
// ErrRollupsDamaged and rebuilt with RebuildRollups.
//
// # Reading
//
// Tools and dashboards use OpenReader, which opens the file read-only and
// starts no writer; a Store answers the same queries. Requests, After,
// FindTrace and ByTrace read the raw rows; Summary (per service or route:
// hits, 4xx, 5xx, failed, p50/p95/p99), Series (the same per step, for
// charts), Overview (each service's summary and the fleet's series from one
// read, for a fleet's page) and SLOs (error budgets and burn rates of an Objective, with
// the SRE Workbook's fast- and slow-burn alerts) read the rollups. The
// views traffic_last_hour, traffic_last_day, rollup_rows and
// latency_buckets give sqlite3 users the same numbers.
//
// # The file
//
// The requests table holds one row per request (times in Unix
// microseconds, UTC); SchemaVersion is its layout, kept in PRAGMA
// user_version. A file from a newer version is ErrSchemaTooNew, one that is
// not SQLite ErrNotDatabase. See docs/manual.md for the columns, the
// indexes and the queries from the shell.
package logger
