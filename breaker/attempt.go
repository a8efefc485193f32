package breaker

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// attempt is the context of one attempt of Transport: the caller's context
// bounded by the per-attempt timeout. It does the job of
// context.WithTimeout for a fraction of its cost, because its timer comes
// from a pool and is reused: an attempt costs one allocation, which also
// serves as the wrapper of the response body that ends the attempt when
// closed.
//
// It implements the AfterFunc method that the context package looks for,
// so a context derived from it (http.Transport derives one per request)
// registers a function instead of starting a goroutine. Registered
// functions run in the goroutine that ends the attempt.
type attempt struct {
	parent     context.Context
	timeout    time.Duration
	slot       *timerSlot  // nil when the caller's deadline comes first
	stopParent func() bool // undoes the watch on a parent that can end
	body       io.ReadCloser

	mu       sync.Mutex
	deadline time.Time     // taken when first asked
	done     chan struct{} // made by the first Done
	err      error
	funcs    []func()
	ended    bool // release ran
}

// closedChan is the Done of an attempt that ended before anyone asked.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// newAttempt starts an attempt bounded by timeout and by parent.
func newAttempt(parent context.Context, timeout time.Duration) *attempt {
	a := &attempt{parent: parent, timeout: timeout}
	if dl, ok := parent.Deadline(); !ok || time.Until(dl) > timeout {
		a.slot = armSlot(a, timeout)
	}
	if parent.Done() != nil {
		a.stopParent = context.AfterFunc(parent, func() { a.cancel(parent.Err()) })
	}
	return a
}

// Deadline is the earlier of the attempt's and the caller's deadline. The
// attempt's is reckoned from the first call of Deadline, which comes when
// the attempt dials, at its start: reading the clock for every attempt
// would cost more than the rest of its bookkeeping, and the timer that ends
// the attempt is exact anyway.
func (a *attempt) Deadline() (time.Time, bool) {
	a.mu.Lock()
	if a.deadline.IsZero() {
		a.deadline = time.Now().Add(a.timeout)
	}
	dl := a.deadline
	a.mu.Unlock()
	if pdl, ok := a.parent.Deadline(); ok && pdl.Before(dl) {
		return pdl, true
	}
	return dl, true
}

// Done is closed when the attempt times out, the caller's context ends,
// or the attempt is over.
func (a *attempt) Done() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done == nil {
		a.done = make(chan struct{})
		if a.err != nil {
			close(a.done)
		}
	}
	return a.done
}

// Err is context.DeadlineExceeded after a timeout, the caller's context's
// error after it ended, context.Canceled once the attempt is over, and nil
// before.
func (a *attempt) Err() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// Value is the caller's context's value.
func (a *attempt) Value(key any) any { return a.parent.Value(key) }

// AfterFunc arranges for f to run once the attempt ends, in the goroutine
// that ends it, or at once in its own goroutine if it has ended. Calling
// the returned stop stops that, and reports whether it did.
func (a *attempt) AfterFunc(f func()) (stop func() bool) {
	a.mu.Lock()
	if a.err != nil {
		a.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	i := len(a.funcs)
	a.funcs = append(a.funcs, f)
	a.mu.Unlock()
	return func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.err != nil || a.funcs[i] == nil {
			return false
		}
		a.funcs[i] = nil
		return true
	}
}

// cancel ends the attempt with err, unless it has ended.
func (a *attempt) cancel(err error) {
	a.mu.Lock()
	if a.err != nil {
		a.mu.Unlock()
		return
	}
	a.err = err
	if a.done != nil {
		close(a.done)
	} else {
		a.done = closedChan
	}
	funcs := a.funcs
	a.mu.Unlock()
	for _, f := range funcs {
		if f != nil {
			f()
		}
	}
}

// release ends the attempt when its response is done with: its timer goes
// back to the pool and the caller's context is no longer watched.
func (a *attempt) release() {
	a.mu.Lock()
	ended := a.ended
	a.ended = true
	a.mu.Unlock()
	if ended {
		return
	}
	if a.slot != nil {
		a.slot.disarm()
	}
	if a.stopParent != nil {
		a.stopParent()
	}
	a.cancel(context.Canceled)
}

// attemptBody is an attempt seen as the body of its response: closing it
// ends the attempt. It is the same memory, so wrapping allocates nothing.
type attemptBody attempt

func (b *attemptBody) Read(p []byte) (int, error) { return b.body.Read(p) }

func (b *attemptBody) Close() error {
	err := b.body.Close()
	(*attempt)(b).release()
	return err
}

// timerSlot is a reusable timer for the timeouts of attempts: a time.Timer
// made once, aimed at the attempt it bounds at the moment.
type timerSlot struct {
	timer *time.Timer
	a     atomic.Pointer[attempt]
}

var slots sync.Pool

func armSlot(a *attempt, d time.Duration) *timerSlot {
	s, _ := slots.Get().(*timerSlot)
	if s == nil {
		s = &timerSlot{}
		s.a.Store(a)
		s.timer = time.AfterFunc(d, s.fire)
		return s
	}
	s.a.Store(a)
	s.timer.Reset(d)
	return s
}

func (s *timerSlot) fire() {
	if a := s.a.Load(); a != nil {
		a.cancel(context.DeadlineExceeded)
	}
}

// disarm stops the timer and returns the slot to the pool, unless the
// timer has fired or is firing: then the slot is left to the collector, so
// that a late fire can never reach the next attempt.
func (s *timerSlot) disarm() {
	if !s.timer.Stop() {
		return
	}
	s.a.Store(nil)
	slots.Put(s)
}
