package platform

import (
	"net"
	"sync"
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
