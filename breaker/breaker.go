// Package breaker is a circuit breaker and an http.RoundTripper with one
// breaker per target host, so that a service stops calling a sick sibling,
// fails fast, retries only what is safe to retry, and says what happened.
package breaker

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Breaker is a circuit breaker. It is safe for concurrent use. The closed
// path takes no lock, and reads the clock only to time calls for the
// slow-call rule or to place them in a time window (twice a call); the
// open path neither locks nor reads the clock.
type Breaker struct {
	s         settings
	mode      atomic.Int32 // the State, plus windowed when a rate rule is on
	consec    atomic.Int64
	win       atomic.Pointer[window]
	openErr   atomic.Pointer[OpenError]
	tooMany   *OpenError
	windowed  int32     // windowed when a rate rule is on, else 0
	timeCalls bool      // the slow-call rule is on: calls are timed
	epoch     time.Time // readings of nanos are since then
	doneFn    func(Outcome)
	stats     counters

	mu        sync.Mutex
	gen       uint64 // bumped by each change of state
	probes    int    // probes in flight
	probeOK   int    // probes that succeeded in this half-open period
	openBO    *backoff.ExponentialBackOff
	hint      time.Duration // Retry-After from the target, for the next trip
	nextProbe time.Time
	stopTimer func() bool // cancels the pending halfOpen or probesTimedOut; nil if none

	evMu        sync.Mutex
	events      []event
	dispatching bool
}

type event struct{ from, to State }

// windowed is set in Breaker.mode when a rate rule is on, so that one
// atomic load tells Execute both the state and which closed path to take.
const (
	windowed  = 4
	stateMask = 3
)

// New returns a closed breaker. With no options it trips after
// DefaultConsecutiveFailures failures in a row, stays open
// DefaultOpenTimeout (doubling on each trip up to DefaultMaxOpenTimeout),
// then admits DefaultMaxProbes probe call.
func New(opts ...Option) *Breaker {
	s := defaultSettings()
	for _, o := range opts {
		o(&s)
	}
	return newBreaker(s)
}

func newBreaker(s settings) *Breaker {
	b := &Breaker{s: s}
	if s.failureRate > 0 || s.slowRate > 0 {
		b.windowed = windowed
	}
	b.timeCalls = s.slowRate > 0 && s.slowThreshold > 0
	b.epoch = s.clock.Now()
	b.win.Store(newWindow(s.windowCalls, int64(s.windowTime)))
	b.mode.Store(b.windowed)
	b.tooMany = &OpenError{Name: s.name, Err: ErrTooManyProbes, clock: s.clock}
	b.openBO = backoff.NewExponentialBackOff()
	b.openBO.InitialInterval = s.openTimeout
	b.openBO.MaxInterval = s.maxOpen
	b.openBO.Multiplier = 2
	b.openBO.RandomizationFactor = 0.2
	b.openBO.MaxElapsedTime = 0 // the bound is MaxInterval: a breaker never gives up probing
	b.openBO.Reset()
	b.doneFn = b.doneClosed
	register(b)
	return b
}

// Name returns the breaker's name.
func (b *Breaker) Name() string { return b.s.name }

// current returns the breaker's state.
func (b *Breaker) current() State { return State(b.mode.Load() & stateMask) }

// nanos reads the clock for timing calls and placing them in a time window,
// in nanoseconds since the breaker was made. On the system clock it reads
// only the monotonic clock (time.Since), which a change of the wall clock
// does not move, and which costs half of time.Now's two readings.
func (b *Breaker) nanos() int64 {
	if _, system := b.s.clock.(systemClock); system {
		return int64(time.Since(b.epoch))
	}
	return int64(b.s.clock.Now().Sub(b.epoch))
}

// Allow asks to make one call. If the breaker refuses, it returns an
// *OpenError (matching ErrOpen or ErrTooManyProbes) and the call must not
// be made. Otherwise the caller makes the call and then calls done exactly
// once with its outcome.
func (b *Breaker) Allow() (done func(Outcome), err error) {
	switch b.current() {
	case Closed:
		if !b.timeCalls {
			return b.doneFn, nil
		}
		start := b.nanos()
		return func(o Outcome) { b.record(o, start) }, nil
	case Open:
		return nil, b.reject()
	}
	return b.allowProbe()
}

// Execute runs fn if the breaker allows it and records its outcome: a nil
// error is a success; an error is a failure, except that the context's own
// cancellation (ctx.Err() != nil, the caller gave up) is neutral.
//
// A panic in fn goes up to the caller. A probe call that panics counts as
// failed; in the closed state a panic is not counted at all (it is a bug of
// the caller, and catching it would cost every call a deferred function).
func (b *Breaker) Execute(ctx context.Context, fn func(ctx context.Context) error) error {
	switch b.mode.Load() {
	case int32(Closed):
		// Only the consecutive failures rule is on: no lock, no clock, and
		// no atomic write while calls succeed.
		if err := fn(ctx); err != nil {
			b.record(outcomeOf(ctx, err), 0)
			return err
		}
		if metricsOn.Load() {
			b.stats.success.Add(1)
		}
		if b.consec.Load() != 0 {
			b.consec.Store(0)
		}
		return nil
	case windowed | int32(Closed):
		return b.executeWindowed(ctx, fn)
	case int32(Open), windowed | int32(Open):
		return b.reject()
	}
	done, err := b.allowProbe()
	if err != nil {
		return err
	}
	return runAndReport(ctx, fn, done)
}

// executeWindowed is Execute's closed path when a rate rule is on.
func (b *Breaker) executeWindowed(ctx context.Context, fn func(ctx context.Context) error) error {
	var start int64
	if b.timeCalls {
		start = b.nanos()
	}
	err := fn(ctx)
	b.record(outcomeOf(ctx, err), start)
	return err
}

func runAndReport(ctx context.Context, fn func(ctx context.Context) error, done func(Outcome)) error {
	reported := false
	defer func() {
		if !reported {
			done(Failure)
		}
	}()
	err := fn(ctx)
	reported = true
	done(outcomeOf(ctx, err))
	return err
}

func outcomeOf(ctx context.Context, err error) Outcome {
	switch {
	case err == nil:
		return Success
	case ctx.Err() != nil:
		return Neutral
	}
	return Failure
}

func (b *Breaker) reject() error {
	if metricsOn.Load() {
		b.stats.rejected.Add(1)
	}
	if e := b.openErr.Load(); e != nil {
		return e
	}
	return b.tooMany // the breaker moved on meanwhile
}

// doneClosed is the done function of calls made in the closed state when
// calls are not timed. It is built once, so Allow allocates nothing.
func (b *Breaker) doneClosed(o Outcome) { b.record(o, 0) }

// record counts the outcome of a call made in the closed state; start is
// when it began, on b.nanos, if calls are timed.
func (b *Breaker) record(o Outcome, start int64) {
	if metricsOn.Load() {
		b.stats.add(o)
	}
	if o == Neutral {
		return
	}
	failed := o == Failure
	trip := false
	if failed {
		n := b.consec.Add(1)
		trip = b.s.consecutive > 0 && n >= int64(b.s.consecutive)
	} else if b.consec.Load() != 0 {
		b.consec.Store(0)
	}
	if b.windowed != 0 {
		var now int64
		if b.timeCalls || b.s.windowTime > 0 {
			now = b.nanos()
		}
		slow := b.timeCalls && now-start > int64(b.s.slowThreshold)
		w := b.win.Load()
		w.add(failed, slow, now)
		if (failed || slow) && !trip {
			trip = b.rateExceeded(w, now)
		}
	}
	if trip {
		b.trip(Closed)
	}
}

// rateExceeded reports whether a rate rule trips on the window w.
func (b *Breaker) rateExceeded(w *window, now int64) bool {
	calls, fails, slows := w.totals(now)
	if calls < b.s.minCalls {
		return false
	}
	return b.s.failureRate > 0 && float64(fails) >= b.s.failureRate*float64(calls) ||
		b.s.slowRate > 0 && float64(slows) >= b.s.slowRate*float64(calls)
}

// trip opens the breaker if it is still in state from.
func (b *Breaker) trip(from State) {
	b.mu.Lock()
	b.tripLocked(from)
	b.mu.Unlock()
	b.dispatch()
}

func (b *Breaker) tripLocked(from State) {
	if b.current() != from {
		return
	}
	d := min(b.openBO.NextBackOff(), b.s.maxOpen) // jitter may overshoot the cap
	if b.hint > d {
		d = b.hint
	}
	b.hint = 0
	b.openFor(d)
	b.change(from, Open)
}

// openFor (re)schedules the end of the open period; mu is held.
func (b *Breaker) openFor(d time.Duration) {
	if b.stopTimer != nil {
		b.stopTimer()
	}
	b.nextProbe = b.s.clock.Now().Add(d)
	b.openErr.Store(&OpenError{Name: b.s.name, NextProbe: b.nextProbe, Err: ErrOpen, clock: b.s.clock})
	b.gen++
	gen := b.gen
	b.stopTimer = b.s.clock.AfterFunc(d, func() { b.halfOpen(gen) })
}

// change records a change of state; mu is held.
func (b *Breaker) change(from, to State) {
	b.mode.Store(int32(to) | b.windowed)
	if to != Open {
		b.gen++
	}
	b.stats.transitions[to].Add(1)
	b.evMu.Lock()
	b.events = append(b.events, event{from, to})
	b.evMu.Unlock()
}

// RetryAfter tells the breaker that the target asked callers to wait d (an
// HTTP Retry-After), capped at the maximum open time (see
// WithMaxOpenTimeout). If the breaker is open it stays open at least d from
// now; otherwise the next trip opens it for at least d.
func (b *Breaker) RetryAfter(d time.Duration) {
	if d <= 0 {
		return
	}
	d = min(d, b.s.maxOpen)
	b.mu.Lock()
	if b.current() == Open {
		if until := b.s.clock.Now().Add(d); until.After(b.nextProbe) {
			b.openFor(d)
		}
	} else {
		b.hint = max(b.hint, d)
	}
	b.mu.Unlock()
}

// dispatch runs the state-change callbacks for queued changes, in order,
// outside mu. A callback that changes the breaker queues more changes,
// which the goroutine already dispatching runs after it returns.
func (b *Breaker) dispatch() {
	b.evMu.Lock()
	if b.dispatching || len(b.events) == 0 {
		b.evMu.Unlock()
		return
	}
	b.dispatching = true
	for len(b.events) > 0 {
		ev := b.events[0]
		b.events = b.events[1:]
		b.evMu.Unlock()
		for _, f := range b.s.onChange {
			f(b.s.name, ev.from, ev.to)
		}
		b.evMu.Lock()
	}
	b.dispatching = false
	b.evMu.Unlock()
}
