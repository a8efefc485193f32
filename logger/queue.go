package logger

import "sync"

// chunkSize is the number of records in one queue chunk. The writer commits
// a chunk, or several small ones merged, per transaction.
const chunkSize = 1024

// chunk is a fixed block of queued records. Chunks are recycled so that a
// steady stream of requests allocates nothing.
type chunk struct {
	recs [chunkSize]Record
	n    int
}

// queue is the bounded hand-off between request goroutines and the writer.
// Log appends under a short mutex; the writer takes every queued chunk at
// once. Memory grows with the backlog, one chunk at a time, never past the
// bound, and shrinks back when the backlog is gone.
type queue struct {
	mu     sync.Mutex
	full   []*chunk // complete chunks, oldest first
	cur    *chunk   // chunk being filled, or nil
	free   []*chunk // recycled chunks
	n      int      // records queued or being written
	limit  int      // most records queued or being written at once
	seq    uint64   // records ever accepted
	closed bool     // no more records are accepted
	onFull func()   // called (under mu) when a chunk fills up
}

// maxFree is how many spare chunks the queue keeps for reuse.
const maxFree = 8

// push queues r and reports whether it was accepted.
func (q *queue) push(r *Record) bool {
	q.mu.Lock()
	if q.n >= q.limit || q.closed {
		q.mu.Unlock()
		return false
	}
	c := q.cur
	if c == nil {
		c = q.newChunk()
		q.cur = c
	}
	c.recs[c.n] = *r
	c.n++
	q.n++
	q.seq++
	if c.n == chunkSize {
		q.full = append(q.full, c)
		q.cur = nil
		if q.onFull != nil {
			q.onFull()
		}
	}
	q.mu.Unlock()
	return true
}

// newChunk returns an empty chunk; q.mu must be held.
func (q *queue) newChunk() *chunk {
	if k := len(q.free); k > 0 {
		c := q.free[k-1]
		q.free = q.free[:k-1]
		return c
	}
	return new(chunk)
}

// takeAll removes every queued chunk, oldest first, appending them to dst.
// It returns dst and the sequence number of the last record taken.
func (q *queue) takeAll(dst []*chunk) ([]*chunk, uint64) {
	q.mu.Lock()
	dst = append(dst, q.full...)
	clear(q.full)
	q.full = q.full[:0]
	if q.cur != nil && q.cur.n > 0 {
		dst = append(dst, q.cur)
		q.cur = nil
	}
	seq := q.seq
	q.mu.Unlock()
	return dst, seq
}

// recycle gives chunks the writer is done with back for reuse and frees
// their place in the queue.
func (q *queue) recycle(cs []*chunk) {
	done := 0
	for _, c := range cs {
		done += c.n
		clear(c.recs[:c.n]) // drop references to request strings
		c.n = 0
	}
	q.mu.Lock()
	q.n -= done
	for _, c := range cs {
		if len(q.free) >= maxFree {
			break
		}
		q.free = append(q.free, c)
	}
	q.mu.Unlock()
}

// stats returns the records queued or being written and the sequence number
// of the last record accepted.
func (q *queue) stats() (queued int, seq uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n, q.seq
}

// close makes every later push fail. Records already queued stay queued.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
}
