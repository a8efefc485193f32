package breaker

import "time"

// window is the sliding window of the rate rules: either the last n calls,
// or the calls of the last d in ten buckets. It is guarded by Breaker.mu.
type window struct {
	// calls window
	ring []uint8 // bit 0 failed, bit 1 slow
	pos  int
	full bool
	// time window
	width   time.Duration
	buckets [10]bucket

	calls, fails, slows int
}

type bucket struct {
	epoch               int64 // which width-long period the bucket counts
	calls, fails, slows int
}

func (w *window) init(calls int, d time.Duration) {
	if d > 0 {
		w.width = d / time.Duration(len(w.buckets))
		return
	}
	w.ring = make([]uint8, calls)
}

func (w *window) add(failed, slow bool, now time.Time) {
	var v uint8
	if failed {
		v |= 1
	}
	if slow {
		v |= 2
	}
	if w.width > 0 {
		w.expire(now)
		bk := &w.buckets[w.epoch(now)%int64(len(w.buckets))]
		bk.calls++
		bk.fails += int(v & 1)
		bk.slows += int(v >> 1)
		w.calls++
		w.fails += int(v & 1)
		w.slows += int(v >> 1)
		return
	}
	if w.full {
		old := w.ring[w.pos]
		w.calls--
		w.fails -= int(old & 1)
		w.slows -= int(old >> 1)
	}
	w.ring[w.pos] = v
	w.calls++
	w.fails += int(v & 1)
	w.slows += int(v >> 1)
	w.pos++
	if w.pos == len(w.ring) {
		w.pos, w.full = 0, true
	}
}

func (w *window) epoch(now time.Time) int64 { return now.UnixNano() / int64(w.width) }

// expire drops the buckets older than the window and makes the current
// period's bucket ready.
func (w *window) expire(now time.Time) {
	e := w.epoch(now)
	n := int64(len(w.buckets))
	for i := range w.buckets {
		bk := &w.buckets[i]
		if bk.calls > 0 && e-bk.epoch >= n {
			w.drop(bk)
		}
	}
	if cur := &w.buckets[e%n]; cur.epoch != e {
		w.drop(cur)
		cur.epoch = e
	}
}

func (w *window) drop(bk *bucket) {
	w.calls -= bk.calls
	w.fails -= bk.fails
	w.slows -= bk.slows
	*bk = bucket{}
}

func (w *window) totals() (calls, fails, slows int) { return w.calls, w.fails, w.slows }

func (w *window) reset() {
	clear(w.ring)
	w.pos, w.full = 0, false
	w.buckets = [10]bucket{}
	w.calls, w.fails, w.slows = 0, 0, 0
}
