// Package testport hands tests TCP ports on loopback to listen on. A port
// is found by listening on port 0 and closing the listener, so the kernel
// may hand the same port out again at once; Free never returns one port
// twice in a process, so the services of one test never collide.
package testport

import (
	"net"
	"sync"
	"testing"
)

var (
	mu    sync.Mutex
	given = map[int]bool{}
)

// Free returns a TCP port of 127.0.0.1 that nothing listened on a moment
// ago and that Free has not returned before in this process. It fails t
// when the kernel gives no such port in 100 tries.
func Free(t testing.TB) int {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("testport: no free port on 127.0.0.1: %v", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !given[port] {
			given[port] = true
			return port
		}
	}
	t.Fatal("testport: the kernel gave only ports already handed out")
	return 0
}
