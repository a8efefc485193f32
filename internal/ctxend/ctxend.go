// Package ctxend is the ending of a context.Context implemented outside the
// context package, as the breaker's attempts and the platform's request
// contexts are: its error, its Done channel, made when first asked for, and
// the functions registered with AfterFunc.
//
// A context that has an AfterFunc method of this form is one that the
// context package's own derived contexts (context.WithCancel and the like,
// which http.Transport makes per request) register a function with, instead
// of starting a goroutine to watch it.
package ctxend

import "sync"

// State is the ending state of a context. The zero State has not ended.
// Its methods are safe for concurrent use.
type State struct {
	mu    sync.Mutex
	done  chan struct{} // made by the first Done, or closedChan
	err   error
	funcs []func() // registered; nil where stopped
	live  int32    // how many of funcs are not nil
	turn  uint32   // counts the times funcs was emptied, for stale stops
}

// closedChan is the Done of a context that ended before anyone asked.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Done returns a channel that is closed when the context ends.
func (e *State) Done() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.done == nil {
		e.done = make(chan struct{})
		if e.err != nil {
			close(e.done)
		}
	}
	return e.done
}

// Err returns the error the context ended with, or nil before it ends.
func (e *State) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

// AfterFunc arranges for f to run once the context ends, in the goroutine
// that ends it, or at once in its own goroutine if it has ended. Calling
// the returned stop stops that, and reports whether it did. Stopped
// functions take no room once every function registered is stopped, so a
// long-lived context that many short calls derive from stays small.
func (e *State) AfterFunc(f func()) (stop func() bool) {
	e.mu.Lock()
	if e.err != nil {
		e.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	if e.live == 0 && len(e.funcs) > 0 {
		clear(e.funcs)
		e.funcs = e.funcs[:0]
		e.turn++
	}
	i, turn := len(e.funcs), e.turn
	e.funcs = append(e.funcs, f)
	e.live++
	e.mu.Unlock()
	return func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.err != nil || turn != e.turn || e.funcs[i] == nil {
			return false
		}
		e.funcs[i] = nil
		e.live--
		return true
	}
}

// End ends the context with err, which must not be nil, unless it has
// ended: it closes Done and runs the functions registered with AfterFunc.
// It reports whether it ended the context.
func (e *State) End(err error) bool {
	e.mu.Lock()
	if e.err != nil {
		e.mu.Unlock()
		return false
	}
	e.err = err
	if e.done != nil {
		close(e.done)
	} else {
		e.done = closedChan
	}
	funcs := e.funcs
	e.mu.Unlock()
	for _, f := range funcs {
		if f != nil {
			f()
		}
	}
	return true
}
