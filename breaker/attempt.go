package breaker

import (
	"context"
	"io"
	"sync/atomic"
	"time"

	"github.com/flotilla-go/flotilla/internal/ctxend"
)

// attempt is the context of one attempt of Transport: the caller's context
// bounded by the per-attempt timeout. It does the job of
// context.WithTimeout for a fraction of its cost: its timeout is kept by
// the transport's expiry instead of a timer of its own, and an attempt
// costs one allocation of 128 bytes, which also serves as the wrapper of
// the response body that ends the attempt when closed.
//
// Done is closed when the attempt times out, the caller's context ends, or
// the attempt is over; Err is then context.DeadlineExceeded, the caller's
// context's error, or context.Canceled. Its AfterFunc method (see ctxend)
// lets a context derived from it (http.Transport derives one per request)
// register a function instead of starting a goroutine. Registered
// functions run in the goroutine that ends the attempt.
type attempt struct {
	parent     context.Context
	stopParent func() bool // undoes the watch on a parent that can end
	body       io.ReadCloser
	bucket     *expiryBucket // the expiry's bucket it joined; nil when the caller's deadline comes first
	slot       int32         // its place in bucket, -1 once it left; the expiry's mu
	released   atomic.Bool
	deadline   atomic.Int64 // Unix nanoseconds, taken when first asked
	ctxend.State
}

// newAttempt starts an attempt bounded by e's timeout and by parent.
func newAttempt(parent context.Context, e *expiry) *attempt {
	a := &attempt{parent: parent, slot: -1}
	if dl, ok := parent.Deadline(); !ok || time.Until(dl) > e.timeout {
		e.add(a)
	}
	if af, ok := parent.(afterFuncer); ok {
		// As context.AfterFunc would, without its own context in between.
		a.stopParent = af.AfterFunc(func() { a.End(parent.Err()) })
	} else if parent.Done() != nil {
		a.stopParent = context.AfterFunc(parent, func() { a.End(parent.Err()) })
	}
	return a
}

// afterFuncer is a context that runs a function when it ends, as the
// context package looks for (and the platform's request contexts are).
type afterFuncer interface {
	AfterFunc(func()) func() bool
}

// Deadline is the earlier of the attempt's and the caller's deadline. The
// attempt's is reckoned from the first call of Deadline, which comes when
// the attempt dials, at its start: reading the clock for every attempt
// would cost more than the rest of its bookkeeping, and the expiry ends the
// attempt on its timeout anyway.
func (a *attempt) Deadline() (time.Time, bool) {
	if a.bucket == nil {
		return a.parent.Deadline() // the earlier
	}
	d := a.deadline.Load()
	if d == 0 {
		a.deadline.CompareAndSwap(0, time.Now().Add(a.bucket.exp.timeout).UnixNano())
		d = a.deadline.Load()
	}
	dl := time.Unix(0, d)
	if pdl, ok := a.parent.Deadline(); ok && pdl.Before(dl) {
		return pdl, true
	}
	return dl, true
}

// Value is the caller's context's value.
func (a *attempt) Value(key any) any { return a.parent.Value(key) }

// release ends the attempt when its response is done with: the expiry
// forgets it and the caller's context is no longer watched.
func (a *attempt) release() {
	if a.released.Swap(true) {
		return
	}
	if a.bucket != nil {
		a.bucket.exp.remove(a)
	}
	if a.stopParent != nil {
		a.stopParent()
	}
	a.End(context.Canceled)
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
