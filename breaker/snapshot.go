package breaker

import "time"

// Snapshot is a breaker's state at one moment, for /health and dashboards.
type Snapshot struct {
	// Name is the breaker's name.
	Name string `json:"name"`
	// State is closed, half-open or open ("closed", "half-open", "open"
	// in JSON).
	State State `json:"state"`
	// ConsecutiveFailures counts failures in a row in the closed state.
	ConsecutiveFailures int `json:"consecutiveFailures"`
	// Calls, Failures and Slow count the calls in the sliding window
	// (only when a rate rule is on).
	Calls    int `json:"calls"`
	Failures int `json:"failures"`
	Slow     int `json:"slow"`
	// FailureRate and SlowRate are Failures/Calls and Slow/Calls.
	FailureRate float64 `json:"failureRate"`
	SlowRate    float64 `json:"slowRate"`
	// NextProbe is when an open breaker admits a probe; zero otherwise.
	NextProbe time.Time `json:"nextProbe,omitzero"`
	// Trips counts the times the breaker opened.
	Trips int64 `json:"trips"`
}

// Snapshot returns the breaker's state and counts at this moment.
func (b *Breaker) Snapshot() Snapshot {
	var now int64
	if b.s.windowTime > 0 {
		now = b.nanos()
	}
	calls, fails, slows := b.win.Load().totals(now)
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.current()
	s := Snapshot{
		Name:                b.s.name,
		State:               st,
		ConsecutiveFailures: int(b.consec.Load()),
		Calls:               calls,
		Failures:            fails,
		Slow:                slows,
		Trips:               b.stats.transitions[Open].Load(),
	}
	if calls > 0 {
		s.FailureRate = float64(fails) / float64(calls)
		s.SlowRate = float64(slows) / float64(calls)
	}
	if st == Open {
		s.NextProbe = b.nextProbe
	}
	return s
}
