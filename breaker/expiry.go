package breaker

import (
	"context"
	"sync"
	"time"
)

// expiryTicks is how many ticks an attempt timeout spans: an attempt ends
// between its timeout and a sixteenth of it later.
const expiryTicks = 16

// minExpiryTick bounds the tick of short timeouts.
const minExpiryTick = time.Millisecond

// expiry ends the attempts of one transport that outlive the attempt
// timeout. It does the job of a runtime timer per attempt for less: an
// attempt joins the current bucket (a lock and an append) and leaves its
// bucket when it ends (a lock and a swap), so buckets hold only attempts
// that are out. One timer per transport ticks while attempts are out,
// expiryTicks times per timeout. Each tick closes the current bucket and
// ends the attempts of every bucket closed a timeout ago or more. An
// attempt joined its bucket before the bucket closed, so it never ends
// early, and at most a tick late, more only on a machine too busy to run
// the tick on time. When no attempt is out the timer stops, so an idle
// transport costs nothing.
type expiry struct {
	timeout time.Duration
	tick    time.Duration
	now     func() time.Time // time.Now; tests set their own

	mu      sync.Mutex
	cur     *expiryBucket   // joined since the last tick
	old     []*expiryBucket // closed, oldest first
	spare   []*attempt      // an expired bucket's memory, for the next
	running bool            // a tick is due
	timer   *time.Timer
}

// expiryBucket is the attempts, still out, that joined between two ticks.
type expiryBucket struct {
	exp      *expiry
	closed   time.Time // when it stopped taking attempts
	attempts []*attempt
}

func newExpiry(timeout time.Duration) *expiry {
	e := &expiry{timeout: timeout, tick: max(timeout/expiryTicks, minExpiryTick), now: time.Now}
	e.cur = &expiryBucket{exp: e}
	return e
}

// add makes e end a when it is out for longer than the timeout.
func (e *expiry) add(a *attempt) {
	e.mu.Lock()
	a.bucket, a.slot = e.cur, int32(len(e.cur.attempts))
	e.cur.attempts = append(e.cur.attempts, a)
	if !e.running {
		e.running = true
		if e.timer == nil {
			e.timer = time.AfterFunc(e.tick, e.run)
		} else {
			e.timer.Reset(e.tick)
		}
	}
	e.mu.Unlock()
}

// remove forgets a, which has ended, so that the collector can have it at
// once. The last attempt of its bucket takes its place.
func (e *expiry) remove(a *attempt) {
	e.mu.Lock()
	if a.slot >= 0 {
		b := a.bucket
		last := len(b.attempts) - 1
		moved := b.attempts[last]
		b.attempts[a.slot], moved.slot = moved, a.slot
		b.attempts[last] = nil
		b.attempts = b.attempts[:last]
		a.slot = -1
	}
	e.mu.Unlock()
}

// run is a tick. Ticks never overlap: the next is set at the end of this one.
func (e *expiry) run() {
	e.mu.Lock()
	now := e.now() // after every attempt of cur joined
	if len(e.cur.attempts) > 0 {
		e.cur.closed = now
		e.old = append(e.old, e.cur)
		e.cur = &expiryBucket{exp: e, attempts: e.spare}
		e.spare = nil
	}
	var expired []*attempt
	keep := e.old[:0]
	for i, b := range e.old {
		switch {
		case len(b.attempts) == 0:
		case now.Sub(b.closed) >= e.timeout:
			for _, a := range b.attempts {
				a.slot = -1 // it ends below; remove has nothing to do
			}
			expired = append(expired, b.attempts...)
			if e.spare == nil {
				clear(b.attempts)
				e.spare = b.attempts[:0]
			}
		default:
			keep = append(keep, e.old[i])
		}
	}
	clear(e.old[len(keep):])
	e.old = keep
	if len(e.cur.attempts) == 0 && len(e.old) == 0 {
		e.running = false
	} else {
		e.timer.Reset(e.tick)
	}
	e.mu.Unlock()
	for _, a := range expired {
		a.End(context.DeadlineExceeded)
	}
}
