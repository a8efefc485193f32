package breaker

import "time"

// Clock is the breaker's source of time: the system clock unless
// WithClock sets another. Tests inject one that they move by hand. Its Now
// is the whole of health's and discovery's Clock, and its methods use no
// type of this package, so one clock serves every package that takes one.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f in its own goroutine after d, and returns the
	// function that cancels the call, which reports whether it did.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }
func (systemClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}
