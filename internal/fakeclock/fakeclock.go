// Package fakeclock is a clock for tests that moves only when the test says
// so. It has the method set of every Flotilla package's Clock (breaker,
// health, discovery), so one fake drives them all.
package fakeclock

import (
	"sort"
	"sync"
	"time"
)

// Clock is a fake clock. Timers that come due run in the goroutine of the
// Advance that reaches them, in time order.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*timer
}

type timer struct {
	at      time.Time
	f       func()
	stopped bool
}

// New returns a clock set to start.
func New(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc arranges for f to run once the clock has moved by d, and
// returns the function that cancels it, which reports whether it did.
func (c *Clock) AfterFunc(d time.Duration, f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !t.stopped
		t.stopped = true
		return was
	}
}

// Advance moves the clock by d, running every timer that comes due.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	for {
		next := c.popDue(end)
		if next == nil {
			break
		}
		c.now = next.at
		c.mu.Unlock()
		next.f()
		c.mu.Lock()
	}
	c.now = end
	c.mu.Unlock()
}

// popDue removes and returns the earliest pending timer due by end, nil if
// none is. c.mu is held.
func (c *Clock) popDue(end time.Time) *timer {
	sort.SliceStable(c.timers, func(i, j int) bool { return c.timers[i].at.Before(c.timers[j].at) })
	for i, t := range c.timers {
		if t.stopped {
			continue
		}
		if t.at.After(end) {
			return nil
		}
		c.timers = append(c.timers[:i:i], c.timers[i+1:]...)
		t.stopped = true
		return t
	}
	return nil
}

// AdvanceWhenWaiting waits (polling, up to 10 s) until a timer is pending,
// then moves the clock to it, and returns how far that was; false if no
// timer came.
func (c *Clock) AdvanceWhenWaiting() (time.Duration, bool) {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		c.mu.Lock()
		var next *timer
		for _, t := range c.timers {
			if !t.stopped && (next == nil || t.at.Before(next.at)) {
				next = t
			}
		}
		c.mu.Unlock()
		if next != nil {
			d := next.at.Sub(c.Now())
			c.Advance(d)
			return d, true
		}
	}
	return 0, false
}
