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
// context.WithTimeout for a fraction of its cost: its timeout is kept by
// the transport's expiry instead of a timer of its own, and an attempt
// costs one allocation of 128 bytes, which also serves as the wrapper of
// the response body that ends the attempt when closed.
//
// It implements the AfterFunc method that the context package looks for,
// so a context derived from it (http.Transport derives one per request)
// registers a function instead of starting a goroutine. Registered
// functions run in the goroutine that ends the attempt.
type attempt struct {
	parent     context.Context
	exp        *expiry     // nil when the caller's deadline comes first
	stopParent func() bool // undoes the watch on a parent that can end
	body       io.ReadCloser
	bucket     *expiryBucket // where in exp the attempt is, while it is out; exp.mu
	slot       int32         // its place in bucket; exp.mu
	flags      atomic.Uint32 // ended, released; set with mu held

	mu       sync.Mutex
	deadline int64         // Unix nanoseconds, taken when first asked
	done     chan struct{} // made by the first Done
	err      error
	funcs    []func()
}

// attempt flags.
const (
	ended    = 1 << iota // err is set: the expiry can forget the attempt
	released             // release ran
)

// closedChan is the Done of an attempt that ended before anyone asked.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// newAttempt starts an attempt bounded by e's timeout and by parent.
func newAttempt(parent context.Context, e *expiry) *attempt {
	a := &attempt{parent: parent}
	if dl, ok := parent.Deadline(); !ok || time.Until(dl) > e.timeout {
		a.exp = e
		e.add(a)
	}
	if parent.Done() != nil {
		a.stopParent = context.AfterFunc(parent, func() { a.cancel(parent.Err()) })
	}
	return a
}

// Deadline is the earlier of the attempt's and the caller's deadline. The
// attempt's is reckoned from the first call of Deadline, which comes when
// the attempt dials, at its start: reading the clock for every attempt
// would cost more than the rest of its bookkeeping, and the expiry ends the
// attempt on its timeout anyway.
func (a *attempt) Deadline() (time.Time, bool) {
	if a.exp == nil {
		return a.parent.Deadline() // the earlier
	}
	a.mu.Lock()
	if a.deadline == 0 {
		a.deadline = time.Now().Add(a.exp.timeout).UnixNano()
	}
	dl := time.Unix(0, a.deadline)
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

// over reports whether the attempt has ended.
func (a *attempt) over() bool { return a.flags.Load()&ended != 0 }

// cancel ends the attempt with err, unless it has ended.
func (a *attempt) cancel(err error) {
	a.mu.Lock()
	funcs := a.end(err)
	a.mu.Unlock()
	run(funcs)
}

// end sets err and closes Done, unless the attempt has ended, and returns
// the functions to run then. a.mu is held.
func (a *attempt) end(err error) []func() {
	if a.err != nil {
		return nil
	}
	a.err = err
	a.flags.Store(a.flags.Load() | ended)
	if a.done != nil {
		close(a.done)
	} else {
		a.done = closedChan
	}
	return a.funcs
}

func run(funcs []func()) {
	for _, f := range funcs {
		if f != nil {
			f()
		}
	}
}

// release ends the attempt when its response is done with: the expiry
// forgets it and the caller's context is no longer watched.
func (a *attempt) release() {
	a.mu.Lock()
	f := a.flags.Load()
	if f&released != 0 {
		a.mu.Unlock()
		return
	}
	a.flags.Store(f | released)
	funcs := a.end(context.Canceled)
	a.mu.Unlock()
	if a.exp != nil {
		a.exp.remove(a)
	}
	if a.stopParent != nil {
		a.stopParent()
	}
	run(funcs)
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
