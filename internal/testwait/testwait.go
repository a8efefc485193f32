// Package testwait holds waits for tests: each bounded by a deadline, so a
// test that would hang fails instead, and none sleeps; and Buffer, the
// output such a wait reads.
package testwait

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// Buffer collects what a child process or a logger writes while the test
// reads it, for example in an Until: each Write and String holds a lock.
// Its zero value is an empty buffer.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write appends p. It never fails.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns all that was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Closed waits until ch is closed, and fails the test if it is not within
// d.
func Closed(tb testing.TB, ch <-chan struct{}, d time.Duration) {
	tb.Helper()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
		tb.Fatalf("not closed within %v", d)
	}
}

// Until polls cond every 5 ms until it holds, and fails the test if it does
// not within d, saying what it waited for and, after it, the output of each
// of details (a log, a screen), read only then.
func Until(tb testing.TB, d time.Duration, cond func() bool, what string, details ...func() string) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			for _, f := range details {
				what += "\n" + f()
			}
			tb.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
