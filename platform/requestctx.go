package platform

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flotilla-go/flotilla/internal/ctxend"
)

// requestContext is the context a handler gets: the connection's context
// (with the request's span) bounded by the request timeout, and carrying
// the request id. It does the job of context.WithTimeout and
// context.WithValue for less: until something asks for Done (as the
// context package does when a context is derived from it, for an outgoing
// call say), nothing watches the connection's context and no timer runs,
// so a handler that never waits costs one allocation. Err tells a passed
// deadline or an ended connection all the same, from the clock and the
// parent. A derived context registers with its AfterFunc (see ctxend)
// instead of starting a goroutine; so does a breaker's attempt, directly.
//
// context.Cause of it is the connection context's cause, which is nil while
// the connection is open, even once the deadline has passed; Err then says
// context.DeadlineExceeded.
type requestContext struct {
	parent   context.Context
	id       string
	deadline time.Time

	ctxend.State
	armed      atomic.Bool
	mu         sync.Mutex // guards the watches below
	timer      *time.Timer
	stopParent func() bool
}

func newRequestContext(parent context.Context, id string, timeout time.Duration) *requestContext {
	c := &requestContext{parent: parent, id: id, deadline: time.Now().Add(timeout)}
	if pdl, ok := parent.Deadline(); ok && pdl.Before(c.deadline) {
		c.deadline = pdl
	}
	return c
}

// Deadline is the request's deadline, or the parent's if that is earlier.
func (c *requestContext) Deadline() (time.Time, bool) { return c.deadline, true }

// Done is closed when the deadline passes, the connection's context ends,
// or the request is over.
func (c *requestContext) Done() <-chan struct{} {
	c.arm()
	return c.State.Done()
}

// Err is context.DeadlineExceeded once the deadline has passed, the
// connection context's error once it ended, context.Canceled once the
// request is over, and nil before.
func (c *requestContext) Err() error {
	if err := c.State.Err(); err != nil || c.armed.Load() {
		return err
	}
	// Nothing watches: ask the parent and the clock.
	if err := c.parent.Err(); err != nil {
		c.end(err)
	} else if !time.Now().Before(c.deadline) {
		c.end(context.DeadlineExceeded)
	}
	return c.State.Err()
}

// Value is the request id for requestIDKey, and the parent's value for any
// other key.
func (c *requestContext) Value(key any) any {
	if _, ok := key.(requestIDKey); ok {
		return c.id
	}
	return c.parent.Value(key)
}

// AfterFunc arranges for f to run, in the goroutine that ends the context,
// once it ends (see ctxend); the watches start if they have not.
func (c *requestContext) AfterFunc(f func()) (stop func() bool) {
	c.arm()
	return c.State.AfterFunc(f)
}

// arm starts watching the parent and the deadline, once. A context whose
// parent or deadline has ended by then ends instead, outside c.mu, since
// ending runs the functions registered with it.
func (c *requestContext) arm() {
	if c.armed.Load() {
		return
	}
	c.mu.Lock()
	if c.armed.Load() || c.State.Err() != nil {
		c.mu.Unlock()
		return
	}
	err := c.parent.Err()
	if err == nil {
		if d := time.Until(c.deadline); d > 0 {
			c.timer = time.AfterFunc(d, func() { c.end(context.DeadlineExceeded) })
			if c.parent.Done() != nil {
				c.stopParent = context.AfterFunc(c.parent, func() { c.end(c.parent.Err()) })
			}
			c.armed.Store(true)
		} else {
			err = context.DeadlineExceeded
		}
	}
	c.mu.Unlock()
	if err != nil {
		c.State.End(err)
	}
}

// end ends the context with err, unless it has ended, and stops the
// watches.
func (c *requestContext) end(err error) {
	if !c.State.End(err) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.stopParent != nil {
		c.stopParent()
	}
}

// cancel ends the context when the request is over.
func (c *requestContext) cancel() { c.end(context.Canceled) }
