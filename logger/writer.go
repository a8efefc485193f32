package logger

import (
	"math/rand/v2"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// columns of the requests table that a Record fills, in insert order.
const columns = "ts, service, method, path, route, status, duration_us, bytes_in, bytes_out, ip, user_agent, request_id, trace_id, error"

const numColumns = 14

func insertSQL(rows int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO requests (" + columns + ") VALUES ")
	row := "(" + strings.Repeat("?,", numColumns-1) + "?)"
	for i := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(row)
	}
	return b.String()
}

// jitter returns d changed by a random amount of up to ±25%.
func jitter(d time.Duration) time.Duration {
	return d*3/4 + rand.N(d/2+1)
}

// runWriter is the Store's one writer goroutine.
func (s *Store) runWriter() {
	defer close(s.writerEnd)
	timer := time.NewTimer(jitter(s.opts.flushInterval))
	defer timer.Stop()
	w := writer{s: s}
	for {
		closing := false
		select {
		case <-timer.C:
		case <-s.wake:
		case <-s.closing:
			closing = true
		}
		w.drain()
		if closing {
			return
		}
		w.warn()
		timer.Reset(jitter(s.opts.flushInterval))
	}
}

// writer holds the state of the writer goroutine.
type writer struct {
	s        *Store
	chunks   []*chunk
	warnedAt time.Time
	warnedN  uint64 // dropped count at the last warning
	errSeen  time.Time
	damaged  int // damaged rollup rows met since the last warning about them
}

// drain writes everything queued, one transaction per chunk.
func (w *writer) drain() {
	var seq uint64
	w.chunks, seq = w.s.q.takeAll(w.chunks[:0])
	if len(w.chunks) == 0 {
		return
	}
	w.followPath()
	now := time.Now()
	for _, c := range w.chunks {
		for i := range c.recs[:c.n] {
			c.recs[i].normalize(now)
		}
		w.commit(c)
	}
	w.s.q.recycle(w.chunks)
	clear(w.chunks)
	w.s.setProgress(seq)
}

// commit writes one chunk, retrying with exponential backoff and jitter until
// it succeeds or Close gives up. The backoff has no elapsed-time bound of its
// own on purpose: the records are kept and retried for as long as the Store
// is open; Close's timeout is the bound.
func (w *writer) commit(c *chunk) {
	s := w.s
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 2 * time.Millisecond
	b.MaxInterval = time.Second
	b.MaxElapsedTime = 0 // bounded by s.giveUp, canceled by Close's timeout
	b.Reset()
	for {
		err := w.write(c)
		if err == nil {
			s.written.Add(uint64(c.n))
			s.errMu.Lock()
			s.lastOKAt = time.Now()
			s.errMu.Unlock()
			return
		}
		s.setErr(err)
		if s.giveUp.Err() != nil {
			s.dropped.Add(uint64(c.n))
			return
		}
		s.retried.Add(1)
		t := time.NewTimer(b.NextBackOff())
		select {
		case <-t.C:
		case <-s.giveUp.Done():
			t.Stop()
		}
	}
}

// write commits c in one BEGIN IMMEDIATE transaction.
func (w *writer) write(c *chunk) error {
	err := w.s.bc.insert(c.recs[:c.n])
	if err == nil {
		w.damaged += w.s.bc.damaged
	}
	return err
}

// warn logs, at most once per DefaultWarnInterval, that records were dropped
// or that writes are failing.
func (w *writer) warn() {
	s := w.s
	now := time.Now()
	if now.Sub(w.warnedAt) < s.opts.warnInterval || s.giveUp.Err() != nil {
		return // (once Close gives up, its error says what was lost)
	}
	if d := s.dropped.Load(); d > w.warnedN {
		s.log.Warn("request log queue full: records dropped",
			"path", s.path, "dropped", d-w.warnedN, "dropped_total", d)
		w.warnedN, w.warnedAt = d, now
		return
	}
	if w.damaged > 0 {
		s.log.Warn("request log: damaged rollup rows left as they are; rebuild them with flotilla rollups rebuild",
			"path", s.path, "rows", w.damaged)
		w.damaged, w.warnedAt = 0, now
		return
	}
	st := s.Stats()
	if st.LastError != nil && st.LastErrorAt.After(w.errSeen) {
		s.log.Warn("request log write failed; retrying", "path", s.path, "err", st.LastError)
		w.errSeen, w.warnedAt = st.LastErrorAt, now
	}
}
