package platform

import (
	"net"
	"net/http"
	"sync"
)

// conns follows the server's connections through http.Server.ConnState,
// so that shutting down can wait for the ones that matter.
//
// net/http's Server.Shutdown drops, without an answer, a request it reads
// after Shutdown began, even on a connection accepted just before: the
// client sees EOF on a fresh connection and cannot retry. So the service
// first stops accepting, waits for Serve to return (so that every accepted
// connection is known here), then waits until no connection is new
// (accepted, request not read yet) or active; only idle keep-alive
// connections are left for Shutdown to close, and a client's request racing
// that close is on a reused connection, which Go's and most clients retry.
type conns struct {
	mu    sync.Mutex
	state map[net.Conn]http.ConnState
	busy  int // new or active
	idle  chan struct{}
}

func newConns() *conns {
	return &conns{state: map[net.Conn]http.ConnState{}}
}

func isBusy(s http.ConnState) bool { return s == http.StateNew || s == http.StateActive }

// track is the server's ConnState hook.
func (cs *conns) track(c net.Conn, s http.ConnState) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	prev, known := cs.state[c]
	if known && isBusy(prev) {
		cs.busy--
	}
	switch s {
	case http.StateClosed, http.StateHijacked:
		delete(cs.state, c)
	default:
		cs.state[c] = s
		if isBusy(s) {
			cs.busy++
		}
	}
	if cs.busy == 0 && cs.idle != nil {
		close(cs.idle)
		cs.idle = nil
	}
}

// open returns how many connections are open.
func (cs *conns) open() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.state)
}

// quiet returns a channel closed once no connection is new or active.
func (cs *conns) quiet() <-chan struct{} {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	ch := make(chan struct{})
	if cs.busy == 0 {
		close(ch)
		return ch
	}
	if cs.idle == nil {
		cs.idle = make(chan struct{})
	}
	return cs.idle
}

// onceCloseListener lets the service stop accepting before Shutdown, which
// closes the listener again: the second Close is a no-op.
type onceCloseListener struct {
	net.Listener
	once sync.Once
	err  error
}

func (l *onceCloseListener) Close() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	return l.err
}
