package logger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by Flush after Close.
var ErrClosed = errors.New("logger: store is closed")

// Sink receives request records. *Store is the Sink that writes them to
// SQLite; tests and adapters may supply their own.
type Sink interface {
	// Log takes r without blocking and without failing the caller.
	Log(r Record)
}

// Store writes Records into the requests table of one SQLite file in WAL
// mode. Many Stores, in one process or in many, may write the same file at
// once. A Store is safe for concurrent use.
//
// Log only puts the record in a bounded in-memory queue. One writer
// goroutine per Store commits the queue in batches of up to 1,024 rows, each
// one BEGIN IMMEDIATE transaction on the writer's own connection, every DefaultFlushInterval or as soon as a
// batch is full, retrying lock contention with backoff.
type Store struct {
	path   string
	opts   options
	log    *slog.Logger
	wdb    *sql.DB // one connection: setup, pruning and checkpoints (the writer has bc)
	rdb    *sql.DB // read-only connections for queries
	reader *Reader // queries on rdb

	q    queue
	wake chan struct{}

	written atomic.Uint64
	dropped atomic.Uint64
	retried atomic.Uint64

	errMu     sync.Mutex
	lastErr   error
	lastErrAt time.Time
	lastOKAt  time.Time

	progMu sync.Mutex
	prog   uint64        // sequence number of the last record written or given up
	progCh chan struct{} // closed when prog moves

	bcMu sync.Mutex // bc changes (in the writer) while Shutdown may stop it
	bc   *batchConn // the writer's connection

	reopenedAt   time.Time // errMu
	reopenReason string    // errMu

	closing   chan struct{}
	giveUp    context.Context // canceled when Close stops waiting for writes
	cancel    context.CancelFunc
	writerEnd chan struct{}
	maintEnd  chan struct{}

	backfillWake chan struct{}
	backfillEnd  chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// Open opens the shared request log at path, creating the file and its
// folder (mode 0750) when missing, switches it to WAL mode, migrates its
// schema, and starts the Store's writer. Lock contention from other
// processes opening the same file is retried for up to DefaultOpenTimeout.
//
// A path that is a directory, a folder that cannot be written, a file that is
// not SQLite (ErrNotDatabase) or a schema newer than SchemaVersion
// (ErrSchemaTooNew) are errors that say what to fix.
func Open(path string, opts ...Option) (*Store, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	abs, err := prepareFile(path)
	if err != nil {
		return nil, err
	}
	s := &Store{
		path:      abs,
		opts:      o,
		log:       o.log,
		wake:      make(chan struct{}, 1),
		progCh:    make(chan struct{}),
		closing:   make(chan struct{}),
		writerEnd: make(chan struct{}),
		maintEnd:  make(chan struct{}),

		backfillWake: make(chan struct{}, 1),
		backfillEnd:  make(chan struct{}),
	}
	s.q.limit = o.queueSize
	s.q.onFull = s.signal
	s.wdb = newDB(abs, &o, false)
	s.wdb.SetMaxOpenConns(1)
	s.wdb.SetMaxIdleConns(1)
	s.wdb.SetConnMaxLifetime(0)
	if err := setup(s.wdb, abs, &o); err != nil {
		s.wdb.Close()
		return nil, err
	}
	if s.bc, err = openBatchConn(abs, &o); err != nil {
		s.wdb.Close()
		return nil, explain(abs, err)
	}
	s.rdb = newDB(abs, &o, true)
	s.rdb.SetMaxOpenConns(4)
	s.reader = &Reader{path: abs, db: s.rdb}
	s.giveUp, s.cancel = context.WithCancel(context.Background())
	go s.runWriter()
	go s.runMaintenance()
	go s.runBackfill()
	return s, nil
}

// Path returns the absolute path of the file.
func (s *Store) Path() string { return s.path }

// Log queues r to be written. It never blocks and never fails: when the
// queue is full, or the Store is closed, r is dropped and counted in
// Stats().Dropped. Text fields are bounded as documented on MaxPathLen and
// the other Max constants when written.
func (s *Store) Log(r Record) {
	if !s.q.push(&r) {
		s.dropped.Add(1)
	}
}

// signal wakes the writer without blocking.
func (s *Store) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Flush returns once every record logged before the call has been committed
// (or given up on by Close), or with ctx's error. It returns ErrClosed when
// called after Close, or when Close ends the writer before everything was
// written.
func (s *Store) Flush(ctx context.Context) error {
	select {
	case <-s.closing:
		return ErrClosed
	default:
	}
	_, target := s.q.stats()
	for {
		s.progMu.Lock()
		done, ch := s.prog, s.progCh
		s.progMu.Unlock()
		if done >= target {
			return nil
		}
		s.signal()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("logger: flush: %w", ctx.Err())
		case <-s.writerEnd:
			s.progMu.Lock()
			done = s.prog
			s.progMu.Unlock()
			if done >= target {
				return nil
			}
			return ErrClosed
		}
	}
}

// Close writes every queued record, stops the writer and closes the file.
// It is Shutdown without a deadline of the caller's: it gives up after
// DefaultCloseTimeout (see WithCloseTimeout) if the file cannot be written.
func (s *Store) Close() error { return s.Shutdown(context.Background()) }

// Shutdown writes every queued record, stops the writer and closes the
// file. Records logged after it are dropped. If the records cannot all be
// written before ctx ends or DefaultCloseTimeout passes (a full disk, a
// lock held by another process), it gives up, counts what was left as
// dropped and says so in its error. Shutdown and Close are idempotent:
// later calls return the first call's result.
func (s *Store) Shutdown(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.q.close()
		close(s.closing)
		began := time.Now()
		ctx, cancel := context.WithTimeout(ctx, s.opts.closeTimeout)
		defer cancel()
		stopped := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			s.cancel()
			s.bcMu.Lock()
			s.bc.stop()
			s.bcMu.Unlock()
			close(stopped)
		})
		<-s.writerEnd
		<-s.maintEnd
		<-s.backfillEnd
		if !stop() {
			<-stopped // before bc is closed
		}
		gaveUp := s.giveUp.Err() != nil
		s.cancel()
		var errs []error
		if gaveUp {
			st := s.Stats()
			errs = append(errs, fmt.Errorf("logger: close %s: gave up after %v with records unwritten (%d dropped in all): %w",
				s.path, time.Since(began).Round(time.Millisecond), st.Dropped, st.LastError))
		}
		errs = append(errs, s.bc.close(), s.rdb.Close(), s.wdb.Close())
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// Stats is a snapshot of a Store's counters.
type Stats struct {
	// Written is the number of records committed to the file.
	Written uint64
	// Dropped is the number of records lost: logged while the queue was
	// full or after Close, or still unwritten when Close gave up.
	Dropped uint64
	// Retried is the number of batches retried after lock contention or a
	// failed write.
	Retried uint64
	// Queued is the number of records waiting or being written.
	Queued int
	// LastError is the most recent write error, or nil if none happened.
	LastError error
	// LastErrorAt is when LastError happened.
	LastErrorAt time.Time
	// LastWriteAt is when a batch was last committed.
	LastWriteAt time.Time
	// ReopenedAt is when the writer last found that the file at the path
	// was removed or replaced and reopened the path (zero if never), and
	// Reopened says what happened.
	ReopenedAt time.Time
	Reopened   string
}

// Stats returns the Store's counters. It is cheap and safe to call often,
// for example from a health check.
func (s *Store) Stats() Stats {
	queued, _ := s.q.stats()
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return Stats{
		Written:     s.written.Load(),
		Dropped:     s.dropped.Load(),
		Retried:     s.retried.Load(),
		Queued:      queued,
		LastError:   s.lastErr,
		LastErrorAt: s.lastErrAt,
		LastWriteAt: s.lastOKAt,
		ReopenedAt:  s.reopenedAt,
		Reopened:    s.reopenReason,
	}
}

func (s *Store) setErr(err error) {
	s.errMu.Lock()
	s.lastErr, s.lastErrAt = err, time.Now()
	s.errMu.Unlock()
}

func (s *Store) setProgress(seq uint64) {
	s.progMu.Lock()
	if seq > s.prog {
		s.prog = seq
		close(s.progCh)
		s.progCh = make(chan struct{})
	}
	s.progMu.Unlock()
}
