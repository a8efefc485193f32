package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// server is a service's http.Server with a drain of its own. net/http's
// Shutdown, and SetKeepAlivesEnabled(false), close every connection they
// find idle; but a connection stays "idle" until its next request has been
// read and parsed, so a request arriving at that moment runs while its
// connection is closed under it, and its answer is lost. The server tracks
// its connections itself instead, and closes one only when no byte of a
// request has been read on it since its last answer; a request read after
// that is refused, unrun, as a closed idle connection, which clients retry.
type server struct {
	http      *http.Server
	conns     conns
	draining  atomic.Bool
	accepting *onceCloseListener
	served    chan error
}

// newServer returns a server of h with the platform's timeouts. While it
// drains, every answer says "Connection: close".
func newServer(h http.Handler, log *slog.Logger) *server {
	s := &server{served: make(chan error, 1)}
	s.conns.set = map[*trackedConn]struct{}{}
	s.http = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if s.draining.Load() {
				w.Header().Set("Connection", "close")
			}
			h.ServeHTTP(w, r)
		}),
		ConnState: func(c net.Conn, st http.ConnState) {
			tc, ok := c.(*trackedConn)
			if !ok {
				return
			}
			switch st {
			case http.StateIdle:
				tc.idle()
			case http.StateClosed, http.StateHijacked:
				s.conns.remove(tc)
			}
		},
		ReadHeaderTimeout: DefaultReadHeaderTimeout,
		ReadTimeout:       DefaultReadTimeout,
		WriteTimeout:      DefaultWriteTimeout,
		IdleTimeout:       DefaultIdleTimeout,
		MaxHeaderBytes:    DefaultMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s
}

// serve starts serving ln; the result of http.Server.Serve comes on
// s.served.
func (s *server) serve(ln net.Listener) {
	s.accepting = &onceCloseListener{Listener: trackingListener{ln, &s.conns}}
	go func() { s.served <- s.http.Serve(s.accepting) }()
}

// drain stops accepting and closes the connections as their requests are
// answered, within ctx. Idle ones close at once, unless handedOver (a
// successor serves the socket now): then they are kept for grace, each
// next request answered with "Connection: close", so that clients in the
// middle of a stream of requests move over without racing a closed
// connection. A connection that has not sent its first request yet is
// kept for grace too, as its client is about to. What is left at the end
// of ctx is closed.
func (s *server) drain(ctx context.Context, handedOver bool, grace time.Duration) error {
	s.draining.Store(true)
	s.accepting.Close()
	// Serve returns once its accept loop has seen the listener closed; by
	// then every connection it accepted is tracked.
	<-s.served
	graceEnd := time.Now().Add(grace)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		past := !time.Now().Before(graceEnd)
		if s.conns.closeIdle(!handedOver || past, past) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			s.http.Close()
			return fmt.Errorf("drain: %d connections still busy after the shutdown timeout: %w", s.conns.len(), ctx.Err())
		case <-tick.C:
		}
	}
	// Nothing is left but connections handlers took over (WebSockets),
	// which Shutdown leaves to them.
	if err := s.http.Shutdown(ctx); err != nil {
		s.http.Close()
		return fmt.Errorf("drain: %w", err)
	}
	return nil
}

// conns are a server's open connections.
type conns struct {
	mu  sync.Mutex
	set map[*trackedConn]struct{}
}

func (cs *conns) add(c *trackedConn) {
	cs.mu.Lock()
	cs.set[c] = struct{}{}
	cs.mu.Unlock()
}

func (cs *conns) remove(c *trackedConn) {
	cs.mu.Lock()
	delete(cs.set, c)
	cs.mu.Unlock()
}

func (cs *conns) len() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.set)
}

// closeIdle closes the connections between requests (if idle) and those
// that have not sent a request yet (if fresh), and returns how many are
// left open.
func (cs *conns) closeIdle(idle, fresh bool) int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for c := range cs.set {
		if c.closeIfIdle(idle, fresh) {
			delete(cs.set, c)
		}
	}
	return len(cs.set)
}

// trackingListener tracks the connections it accepts.
type trackingListener struct {
	net.Listener
	conns *conns
}

func (l trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c}
	l.conns.add(tc)
	return tc, nil
}

// trackedConn knows whether a request is being read or answered on it.
type trackedConn struct {
	net.Conn
	mu   sync.Mutex
	used bool // it has carried a request
	busy bool // bytes were read since its last answer
	shut bool // the drain closed it
}

// errDrained is what a read on a connection the drain closed returns.
var errDrained = errors.New("platform: connection closed by the drain")

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.shut {
			// Closed between the bytes' arrival and now: the request is
			// not run, and its client sees a closed idle connection.
			return 0, errDrained
		}
		c.busy, c.used = true, true
	}
	return n, err
}

// idle marks the end of an answer.
func (c *trackedConn) idle() {
	c.mu.Lock()
	c.busy = false
	c.mu.Unlock()
}

// closeIfIdle closes c if no request is being read or answered on it, and
// it is idle after a request (with idle set) or has carried none yet (with
// fresh set).
func (c *trackedConn) closeIfIdle(idle, fresh bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shut {
		return true
	}
	if c.busy || (c.used && !idle) || (!c.used && !fresh) {
		return false
	}
	c.shut = true
	c.Conn.Close()
	return true
}
