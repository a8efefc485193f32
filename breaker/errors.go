package breaker

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrOpen is returned, wrapped in an *OpenError, by a breaker that is open:
// the call was not made.
var ErrOpen = errors.New("circuit breaker is open")

// ErrTooManyProbes is returned, wrapped in an *OpenError, by a half-open
// breaker that already has as many probe calls in flight as it admits.
var ErrTooManyProbes = errors.New("circuit breaker is half-open and has enough probes in flight")

// OpenError is the error of a call the breaker refused. errors.Is matches it
// with ErrOpen or ErrTooManyProbes.
type OpenError struct {
	// Name is the breaker's name.
	Name string
	// NextProbe is when the breaker will admit a probe call again; zero
	// for ErrTooManyProbes.
	NextProbe time.Time
	// Err is ErrOpen or ErrTooManyProbes.
	Err   error
	clock Clock
}

// Error says which breaker refused, and when it next admits a call.
func (e *OpenError) Error() string {
	if e.NextProbe.IsZero() {
		return fmt.Sprintf("breaker %q: %v", e.Name, e.Err)
	}
	return fmt.Sprintf("breaker %q: %v: next probe in %v", e.Name, e.Err, e.RetryAfter().Round(time.Millisecond))
}

// Unwrap returns ErrOpen or ErrTooManyProbes.
func (e *OpenError) Unwrap() error { return e.Err }

// RetryAfter returns the time left until the next probe (never negative).
func (e *OpenError) RetryAfter() time.Duration {
	if e.NextProbe.IsZero() {
		return 0
	}
	return max(e.NextProbe.Sub(e.clock.Now()), 0)
}

// CallError is the error of an HTTP call through the breaking Transport that
// did not succeed: what happened on each attempt, in order.
type CallError struct {
	// Name is the breaker's name: the target host.
	Name string
	// Attempts describes each attempt: a status such as "503 Service
	// Unavailable", "timeout after 2s", "connection refused", or the
	// breaker's refusal.
	Attempts []string
	// Err is the last attempt's error, or nil when the last attempt got a
	// response that counted as a failure.
	Err error
	// Note says why retrying stopped early, if it did.
	Note string
}

// Error reads like: breaker "agent-geo": 3 attempts: 503 Service
// Unavailable, timeout after 2s, connection refused.
func (e *CallError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "breaker %q: %d attempt", e.Name, len(e.Attempts))
	if len(e.Attempts) != 1 {
		b.WriteByte('s')
	}
	b.WriteString(": ")
	b.WriteString(strings.Join(e.Attempts, ", "))
	if e.Note != "" {
		b.WriteString(" (" + e.Note + ")")
	}
	return b.String()
}

// Unwrap returns the last attempt's error.
func (e *CallError) Unwrap() error { return e.Err }
