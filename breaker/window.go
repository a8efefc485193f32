package breaker

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

// window is the sliding window of the rate rules: either the last n calls,
// or the calls of the last d in ten buckets of d/10. It takes no lock on
// the path of a call (only the move to a new time bucket locks), so that a
// call that succeeds fast costs a few atomic operations. A breaker replaces
// its window with a fresh one when it closes, so calls that end late count
// in the old one.
//
// Counts are exact with one call at a time. Concurrent calls may make the
// totals lag by the calls in flight, never drift: each call's slot or
// bucket is updated with one atomic operation and its totals follow.
type window struct {
	// calls window: a ring of the last len(ring) outcomes
	ring  []atomic.Uint32 // an outcome's bits, or empty
	pos   atomic.Uint64
	n     uint64 // len(ring)
	magic uint64 // for pos % n without a division

	calls, fails, slows atomic.Int64 // the ring's totals

	// time window
	width   int64        // a bucket's width in nanoseconds
	cur     atomic.Int64 // the epoch (time/width) of the newest bucket
	roll    sync.Mutex   // taken to move to a new bucket
	buckets [10]bucket
}

// The bits of an outcome in the ring.
const (
	bitFailed = 1
	bitSlow   = 2
	empty     = 4 // the slot holds no call yet
)

type bucket struct {
	epoch               atomic.Int64 // which width-long period the bucket counts
	calls, fails, slows atomic.Int64
}

func newWindow(calls int, width int64) *window {
	w := &window{}
	if width > 0 {
		w.width = width / int64(len(w.buckets))
		return w
	}
	w.n = uint64(calls)
	w.magic = ^uint64(0)/w.n + 1
	w.ring = make([]atomic.Uint32, calls)
	for i := range w.ring {
		w.ring[i].Store(empty)
	}
	return w
}

// slot returns i mod n by multiplication (Lemire's fastmod), exact for any
// i below 2^32; the position wraps at 2^32 for that reason.
func (w *window) slot(i uint64) *atomic.Uint32 {
	hi, _ := bits.Mul64(w.magic*uint64(uint32(i)), w.n)
	return &w.ring[hi]
}

// outcomeBits returns the ring's bits for an outcome.
func outcomeBits(failed, slow bool) uint32 {
	var v uint32
	if failed {
		v |= bitFailed
	}
	if slow {
		v |= bitSlow
	}
	return v
}

// add counts one call; now matters only for a time window.
func (w *window) add(failed, slow bool, now int64) {
	v := outcomeBits(failed, slow)
	if w.width > 0 {
		w.addTimed(v, now)
		return
	}
	if s := w.slot(w.pos.Add(1) - 1); s.Load() != v {
		w.replace(s, v)
	} // else the oldest call had the same outcome: no total moves
}

// replace puts v in the ring slot s and moves the totals.
func (w *window) replace(s *atomic.Uint32, v uint32) {
	old := s.Swap(v)
	if old == v {
		return
	}
	if old == empty {
		w.calls.Add(1)
		old = 0
	}
	if d := int64(v&bitFailed) - int64(old&bitFailed); d != 0 {
		w.fails.Add(d)
	}
	if d := int64(v&bitSlow>>1) - int64(old&bitSlow>>1); d != 0 {
		w.slows.Add(d)
	}
}

func (w *window) addTimed(v uint32, now int64) {
	e := w.cur.Load()
	if now >= (e+1)*w.width {
		e = w.advance(now)
	}
	bk := &w.buckets[e%int64(len(w.buckets))]
	bk.calls.Add(1)
	if v&bitFailed != 0 {
		bk.fails.Add(1)
	}
	if v&bitSlow != 0 {
		bk.slows.Add(1)
	}
}

// advance makes the bucket of now's period the newest, emptying it.
func (w *window) advance(now int64) int64 {
	e := now / w.width
	w.roll.Lock()
	defer w.roll.Unlock()
	if cur := w.cur.Load(); cur >= e {
		return cur
	}
	bk := &w.buckets[e%int64(len(w.buckets))]
	bk.calls.Store(0)
	bk.fails.Store(0)
	bk.slows.Store(0)
	bk.epoch.Store(e)
	w.cur.Store(e)
	return e
}

// totals returns the calls, failures and slow calls in the window at now
// (now matters only for a time window).
func (w *window) totals(now int64) (calls, fails, slows int) {
	if w.width == 0 {
		return int(max(w.calls.Load(), 0)), int(max(w.fails.Load(), 0)), int(max(w.slows.Load(), 0))
	}
	e := max(now/w.width, w.cur.Load())
	for i := range w.buckets {
		bk := &w.buckets[i]
		if age := e - bk.epoch.Load(); age < 0 || age >= int64(len(w.buckets)) {
			continue
		}
		calls += int(bk.calls.Load())
		fails += int(bk.fails.Load())
		slows += int(bk.slows.Load())
	}
	return calls, fails, slows
}
