package logger

import (
	"log/slog"
	"time"
)

// Defaults of the options of Open. Each can be changed with the WithX option
// of the same name.
const (
	// DefaultQueueSize is the most records a Store holds in memory while
	// they wait to be written. Past it, Log drops records and counts them.
	DefaultQueueSize = 1 << 17 // 131,072
	// DefaultFlushInterval is how often the writer commits a partial batch.
	// Each wait is jittered by ±25% so that processes do not flush in step.
	DefaultFlushInterval = 100 * time.Millisecond
	// DefaultBusyTimeout is how long SQLite itself waits for a lock held by
	// another process before a statement fails with SQLITE_BUSY, which the
	// Store then retries with backoff.
	DefaultBusyTimeout = 5 * time.Second
	// DefaultOpenTimeout bounds how long Open keeps retrying lock contention
	// while it switches the file to WAL mode and migrates the schema.
	DefaultOpenTimeout = time.Minute
	// DefaultCloseTimeout bounds how long Close waits for queued records to
	// be written when the file cannot be written to.
	DefaultCloseTimeout = 30 * time.Second
	// DefaultRetention is how long rows are kept by the automatic pruning.
	DefaultRetention = 30 * 24 * time.Hour
	// DefaultRollupRetention is how long the daily rollups are kept, long
	// after the raw rows are gone (see MinuteRollupRetention and
	// HourRollupRetention for the finer ones).
	DefaultRollupRetention = 400 * 24 * time.Hour
	// DefaultPruneInterval is how often the automatic pruning runs.
	DefaultPruneInterval = time.Hour
	// DefaultCheckpointInterval is how often the Store runs
	// PRAGMA wal_checkpoint(TRUNCATE) to give the WAL file's space back.
	DefaultCheckpointInterval = 5 * time.Minute
	// DefaultJournalSizeLimit is the size, in bytes, the WAL file is cut
	// back to after a checkpoint (PRAGMA journal_size_limit).
	DefaultJournalSizeLimit = 64 << 20
	// DefaultWarnInterval is the least time between two warnings about
	// dropped records or failed writes.
	DefaultWarnInterval = 10 * time.Second
)

// An Option changes a default of Open.
type Option func(*options)

type options struct {
	queueSize          int
	flushInterval      time.Duration
	busyTimeout        time.Duration
	openTimeout        time.Duration
	closeTimeout       time.Duration
	retention          time.Duration
	rollupRetention    time.Duration
	pruneInterval      time.Duration
	checkpointInterval time.Duration
	journalSizeLimit   int64
	warnInterval       time.Duration
	log                *slog.Logger
	noRollupTasks      bool // the package's tests run backfill and compaction by hand
}

func defaultOptions() options {
	return options{
		queueSize:          DefaultQueueSize,
		flushInterval:      DefaultFlushInterval,
		busyTimeout:        DefaultBusyTimeout,
		openTimeout:        DefaultOpenTimeout,
		closeTimeout:       DefaultCloseTimeout,
		retention:          DefaultRetention,
		rollupRetention:    DefaultRollupRetention,
		pruneInterval:      DefaultPruneInterval,
		checkpointInterval: DefaultCheckpointInterval,
		journalSizeLimit:   DefaultJournalSizeLimit,
		warnInterval:       DefaultWarnInterval,
	}
}

// WithQueueSize sets how many records may wait in memory to be written
// (default DefaultQueueSize). Values below 1 keep the default.
func WithQueueSize(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.queueSize = n
		}
	}
}

// WithFlushInterval sets how often a partial batch is committed (default
// DefaultFlushInterval). Values of 0 or less keep the default.
func WithFlushInterval(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.flushInterval = d
		}
	}
}

// WithBusyTimeout sets SQLite's busy timeout for the Store's connections
// (default DefaultBusyTimeout). Values of 0 or less keep the default.
func WithBusyTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.busyTimeout = d
		}
	}
}

// WithOpenTimeout bounds the retries of Open on lock contention (default
// DefaultOpenTimeout). Values of 0 or less keep the default.
func WithOpenTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.openTimeout = d
		}
	}
}

// WithCloseTimeout bounds how long Close keeps retrying writes that fail
// (default DefaultCloseTimeout). Values of 0 or less keep the default.
func WithCloseTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.closeTimeout = d
		}
	}
}

// WithRetention sets how long rows are kept: every prune interval the Store
// deletes rows older than d with Prune (default DefaultRetention, run every
// DefaultPruneInterval). Zero or less turns the automatic pruning off.
func WithRetention(d time.Duration) Option {
	return func(o *options) { o.retention = d }
}

// WithRollupRetention sets how long rollups are kept (default
// DefaultRollupRetention): day rollups for d, hour and minute rollups for d
// or their own retention (HourRollupRetention, MinuteRollupRetention),
// whichever is shorter. The prune that WithRetention runs deletes them.
// Zero or less keeps them forever.
func WithRollupRetention(d time.Duration) Option {
	return func(o *options) { o.rollupRetention = d }
}

// WithPruneInterval sets how often the automatic pruning runs (default
// DefaultPruneInterval). Values of 0 or less keep the default.
func WithPruneInterval(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.pruneInterval = d
		}
	}
}

// WithCheckpointInterval sets how often the WAL is checkpointed and
// truncated (default DefaultCheckpointInterval). Zero or less turns the
// periodic checkpoint off; SQLite's automatic checkpoints still run.
func WithCheckpointInterval(d time.Duration) Option {
	return func(o *options) { o.checkpointInterval = d }
}

// WithJournalSizeLimit sets PRAGMA journal_size_limit in bytes (default
// DefaultJournalSizeLimit). Values below 0 keep the default.
func WithJournalSizeLimit(n int64) Option {
	return func(o *options) {
		if n >= 0 {
			o.journalSizeLimit = n
		}
	}
}

// WithLogger sets where warnings about dropped records and failed writes go
// (default slog.Default()). Warnings are rate limited to one per
// DefaultWarnInterval.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.log = l }
}
