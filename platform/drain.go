package platform

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/flotilla-go/flotilla/internal/upgrade"
)

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

// ErrDraining is the cause (see context.Cause) with which the context of
// an upgraded request ends when the service shuts down or hands over to
// its successor: a WebSocket handler can tell its client it is going away,
// and the client reconnects to the successor.
var ErrDraining = errors.New("platform: the service is draining")

// streams are the upgraded requests, such as WebSockets. An upgrade request
// is bounded by the request timeout like any other until its handler takes
// the connection over; from then on it lasts as long as the handler likes,
// until the service drains. http.Server's Shutdown neither ends nor waits
// for a connection a handler took, so Run ends their contexts when it
// starts to drain and waits for their handlers before it closes the
// request log.
type streams struct {
	draining context.Context
	drain    context.CancelFunc

	mu   sync.Mutex
	n    int           // handlers that took their connection
	gone chan struct{} // closed when n drops to 0, while wait waits
}

func newStreams() *streams {
	ctx, cancel := context.WithCancel(context.Background())
	return &streams{draining: ctx, drain: cancel}
}

// begin gives an upgrade request its context: parent, ended after timeout
// unless the handler takes the connection over first; then it is counted
// and its context ends when the service drains. The returned function
// ends the context and the count; call it when the handler returns.
func (s *streams) begin(res *echo.Response, parent context.Context, timeout time.Duration) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	timer := time.AfterFunc(timeout, func() { cancel(context.DeadlineExceeded) })
	var stop func() bool
	res.Writer = &upgrade.Watch{ResponseWriter: res.Writer, OnHijack: func() {
		timer.Stop()
		s.mu.Lock()
		s.n++
		s.mu.Unlock()
		stop = context.AfterFunc(s.draining, func() { cancel(ErrDraining) })
	}}
	return ctx, func() {
		timer.Stop()
		if stop != nil {
			stop()
			s.mu.Lock()
			if s.n--; s.n == 0 && s.gone != nil {
				close(s.gone)
				s.gone = nil
			}
			s.mu.Unlock()
		}
		cancel(context.Canceled)
	}
}

// wait waits until the handlers of upgraded requests have returned, or ctx
// ends; it returns how many are left. Call it after drain.
func (s *streams) wait(ctx context.Context) int {
	s.mu.Lock()
	if s.n == 0 {
		s.mu.Unlock()
		return 0
	}
	gone := make(chan struct{})
	s.gone = gone
	s.mu.Unlock()
	select {
	case <-gone:
		return 0
	case <-ctx.Done():
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.n
	}
}
