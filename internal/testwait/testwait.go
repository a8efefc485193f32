// Package testwait holds waits for tests: each bounded by a deadline, so a
// test that would hang fails instead, and none sleeps.
package testwait

import (
	"testing"
	"time"
)

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
