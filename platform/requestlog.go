package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flotilla-go/flotilla/health"
	"github.com/flotilla-go/flotilla/logger"
)

// requestLog is the service's sink for request records. When the shared
// file cannot be opened at start, the service runs without it: records are
// counted as lost, /health warns with the reason, and the file is opened
// again in the background until it works.
type requestLog struct {
	path  string
	store atomic.Pointer[logger.Store]
	lost  atomic.Uint64 // records logged while no store was open

	mu      sync.Mutex
	openErr error
	stop    chan struct{}
	done    chan struct{}

	lastDropped uint64
	off         bool // FLOTILLA_DB=off: no file at all
}

// logOff is the FLOTILLA_DB value that turns the shared file off, for
// hosts that only export request records (OTEL_LOGS_EXPORTER=otlp).
const logOff = "off"

func openRequestLog(path string, retry time.Duration, log *slog.Logger) *requestLog {
	rl := &requestLog{path: path, stop: make(chan struct{}), done: make(chan struct{})}
	if path == logOff {
		rl.off = true
		close(rl.done)
		return rl
	}
	s, err := logger.Open(path, logger.WithLogger(log))
	if err == nil {
		rl.store.Store(s)
		close(rl.done)
		return rl
	}
	rl.openErr = err
	log.Warn("request log unavailable; serving without it and retrying", "path", path, "err", err)
	go rl.retry(retry, log)
	return rl
}

func (rl *requestLog) retry(every time.Duration, log *slog.Logger) {
	defer close(rl.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-rl.stop:
			return
		case <-t.C:
		}
		s, err := logger.Open(rl.path, logger.WithLogger(log))
		if err != nil {
			rl.mu.Lock()
			rl.openErr = err
			rl.mu.Unlock()
			continue
		}
		rl.store.Store(s)
		rl.mu.Lock()
		rl.openErr = nil
		rl.mu.Unlock()
		log.Info("request log opened", "path", rl.path)
		return
	}
}

var _ logger.Sink = (*requestLog)(nil)

// Log implements logger.Sink.
func (rl *requestLog) Log(r logger.Record) {
	if rl.off {
		return
	}
	if s := rl.store.Load(); s != nil {
		s.Log(r)
		return
	}
	rl.lost.Add(1)
}

// Store returns the open store, or nil.
func (rl *requestLog) Store() *logger.Store { return rl.store.Load() }

// Close stops retrying, and flushes and closes the store, giving up when
// ctx ends.
func (rl *requestLog) Close(ctx context.Context) error {
	select {
	case <-rl.stop:
	default:
		close(rl.stop)
	}
	<-rl.done
	if s := rl.store.Load(); s != nil {
		return s.Shutdown(ctx)
	}
	return nil
}

// check is the request log's health check, "requestlog:queue". It never
// fails the service (a service without its log still serves); it warns
// when the log is unavailable, when records were dropped since the last
// check, when a write failed in the last minute, for a minute after the
// file was removed or replaced under the service (and reopened at its
// path), or when the queue is more than 90% full.
func (rl *requestLog) check() health.Check {
	return health.Check{
		Component:     "requestlog",
		Measurement:   "queue",
		ComponentType: "datastore",
		ObservedUnit:  "records",
		Run: func(context.Context) (any, error) {
			s := rl.store.Load()
			if s == nil {
				rl.mu.Lock()
				err := rl.openErr
				rl.mu.Unlock()
				return 0, health.Warnf("request log unavailable (%d records lost): %v", rl.lost.Load(), err)
			}
			st := s.Stats()
			var problems []error
			if st.Dropped > rl.lastDropped {
				problems = append(problems, fmt.Errorf("%d records dropped", st.Dropped-rl.lastDropped))
				rl.lastDropped = st.Dropped
			}
			if st.LastError != nil && time.Since(st.LastErrorAt) < time.Minute {
				problems = append(problems, fmt.Errorf("write failed: %w", st.LastError))
			}
			if !st.ReopenedAt.IsZero() && time.Since(st.ReopenedAt) < time.Minute {
				problems = append(problems, errors.New(st.Reopened))
			}
			if st.Queued > logger.DefaultQueueSize*9/10 {
				problems = append(problems, fmt.Errorf("queue %d%% full", st.Queued*100/logger.DefaultQueueSize))
			}
			if len(problems) > 0 {
				return st.Queued, health.Warnf("%v", errors.Join(problems...))
			}
			return st.Queued, nil
		},
	}
}
