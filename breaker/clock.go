package breaker

import (
	"sync/atomic"
	"time"
)

// Clock is the breaker's source of time. Tests inject one that they move by
// hand; the default is the system clock.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f in its own goroutine after d.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call.
type Timer interface {
	// Stop prevents the call if it has not happened, and reports whether
	// it stopped it.
	Stop() bool
}

type systemClock struct{}

func (systemClock) Now() time.Time                            { return time.Now() }
func (systemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// coarseTick is how often the coarse clock moves while it is in use, and
// coarseIdle how many ticks without a reader stop it.
const (
	coarseTick = time.Millisecond
	coarseIdle = 1000
)

// coarse times the calls of breakers on the system clock. Reading the
// system clock costs tens of nanoseconds on many virtual machines, more than
// a breaker's whole closed path may, so a goroutine stores the time every
// coarseTick while breakers read it, and stops after coarseIdle ticks
// without a reader; the next read starts it again. A reading is late by at
// most one tick, more only when the machine is too busy to run the
// goroutine on time.
var coarse coarseClock

func init() { coarse.init() }

type coarseClock struct {
	base    time.Time    // readings are nanoseconds since base
	now     atomic.Int64 // the latest reading
	quiet   atomic.Int32 // ticks since a reader last came
	running atomic.Bool
}

func (c *coarseClock) init() {
	c.base = time.Now()
	c.quiet.Store(coarseIdle) // not running: the first reader starts it
}

// nanos returns the time in nanoseconds since c.base, to about a tick.
func (c *coarseClock) nanos() int64 {
	if c.quiet.Load() != 0 {
		c.wake()
	}
	return c.now.Load()
}

// wake tells the ticking goroutine a reader came, and starts it if it had
// stopped, with an exact reading meanwhile.
func (c *coarseClock) wake() {
	c.quiet.Store(0)
	if !c.running.Load() && c.running.CompareAndSwap(false, true) {
		c.now.Store(int64(time.Since(c.base)))
		go c.run()
	}
}

func (c *coarseClock) run() {
	t := time.NewTicker(coarseTick)
	defer t.Stop()
	for range t.C {
		c.now.Store(int64(time.Since(c.base)))
		if c.quiet.Add(1) < coarseIdle {
			continue
		}
		c.running.Store(false)
		// A reader that came between the last check and the Store above
		// found the clock running and started nothing: carry on for it.
		if c.quiet.Load() != 0 || !c.running.CompareAndSwap(false, true) {
			return
		}
	}
}

// time converts a reading to a time.Time (with a monotonic reading).
func (c *coarseClock) time(nanos int64) time.Time { return c.base.Add(time.Duration(nanos)) }
