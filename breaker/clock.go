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

// The coarse clock's tick: fine enough for 1% of what it times, within
// these bounds; the call rate above which it runs; and how long it runs
// before it checks that rate again.
const (
	minCoarseTick = time.Millisecond
	maxCoarseTick = 50 * time.Millisecond
	coarseRate    = 1_000_000 // readings per second
	coarseRun     = time.Second
	rateBatch     = 4096 // readings between two checks of the rate
)

// coarse reads the time for breakers on the system clock that time their
// calls (the slow-call rule) or place them in a time window.
//
// Reading the system clock costs 35 to 70 ns on many virtual machines, more
// than a breaker's whole closed path may. But waking a goroutine to keep a
// cheap clock costs about 100 µs of CPU on them too, so that only pays
// above some hundred thousand readings a second. So: below coarseRate the
// clock is read for every reading; above it, a goroutine stores the time
// every tick (1% of the shortest slow-call threshold or time-window bucket
// of the process's breakers, from 1 to 50 ms) and readings load it, late by
// at most a tick (more only on a machine too busy to run the goroutine on
// time). After coarseRun the goroutine stops, and readings measure the rate
// again.
var coarse coarseClock

func init() { coarse.init() }

type coarseClock struct {
	base    time.Time    // readings are nanoseconds since base
	now     atomic.Int64 // the latest tick's reading
	tick    atomic.Int64 // nanoseconds between ticks
	running atomic.Bool
	reads   atomic.Int64 // exact readings, counted to measure the rate
	checked atomic.Int64 // when the rate was last checked
	batch   int64        // the nanoseconds rateBatch readings take at the rate that starts ticking
}

func (c *coarseClock) init() {
	c.base = time.Now()
	c.tick.Store(int64(maxCoarseTick))
	c.batch = rateBatch * int64(time.Second) / coarseRate
}

// want makes the clock's tick at most 1% of d (within the bounds).
func (c *coarseClock) want(d time.Duration) {
	t := int64(min(max(d/100, minCoarseTick), maxCoarseTick))
	for {
		cur := c.tick.Load()
		if t >= cur || c.tick.CompareAndSwap(cur, t) {
			return
		}
	}
}

// nanos returns the time in nanoseconds since c.base: exact, or to a tick
// while the ticking goroutine runs.
func (c *coarseClock) nanos() int64 {
	if c.running.Load() {
		return c.now.Load()
	}
	return c.read()
}

// read reads the system clock, and starts the ticking goroutine when the
// last rateBatch readings came faster than coarseRate.
func (c *coarseClock) read() int64 {
	now := int64(time.Since(c.base))
	if c.reads.Add(1)%rateBatch == 0 {
		last := c.checked.Swap(now)
		if now-last < c.batch && c.running.CompareAndSwap(false, true) {
			c.now.Store(now)
			go c.run(now)
		}
	}
	return now
}

func (c *coarseClock) run(start int64) {
	for {
		time.Sleep(time.Duration(c.tick.Load()))
		now := int64(time.Since(c.base))
		c.now.Store(now)
		if now-start >= int64(coarseRun) {
			c.checked.Store(now)
			c.running.Store(false)
			return
		}
	}
}
