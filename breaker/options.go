package breaker

import "time"

// Defaults of New. Each can be changed with the WithX option of the same
// name.
const (
	// DefaultConsecutiveFailures trips the breaker after this many failures
	// in a row.
	DefaultConsecutiveFailures = 5
	// DefaultOpenTimeout is how long the breaker stays open after its first
	// trip. Each further trip without a clean recovery doubles it (with
	// ±20% jitter) up to DefaultMaxOpenTimeout.
	DefaultOpenTimeout = time.Second
	// DefaultMaxOpenTimeout caps the open duration.
	DefaultMaxOpenTimeout = time.Minute
	// DefaultMaxProbes is how many probe calls a half-open breaker admits
	// at once, and how many must succeed to close it.
	DefaultMaxProbes = 1
	// DefaultProbeTimeout is how long a half-open breaker waits for its
	// probes to report before it counts them as failed and opens again.
	DefaultProbeTimeout = 10 * time.Second
	// DefaultWindowCalls is the size of the sliding window of the rate
	// rules, in calls, when no time window is set.
	DefaultWindowCalls = 100
	// DefaultMinCalls is how many calls the window must hold before a rate
	// rule may trip the breaker.
	DefaultMinCalls = 20
)

// An Option changes a default of New (and of Transport, which passes them
// to the breaker of each host).
type Option func(*settings)

type settings struct {
	name          string
	consecutive   int
	failureRate   float64
	slowRate      float64
	slowThreshold time.Duration
	minCalls      int
	windowCalls   int
	windowTime    time.Duration
	openTimeout   time.Duration
	maxOpen       time.Duration
	maxProbes     int
	probeTimeout  time.Duration
	clock         Clock
	onChange      []func(name string, from, to State)
}

func defaultSettings() settings {
	return settings{
		name:         "breaker",
		consecutive:  DefaultConsecutiveFailures,
		minCalls:     DefaultMinCalls,
		windowCalls:  DefaultWindowCalls,
		openTimeout:  DefaultOpenTimeout,
		maxOpen:      DefaultMaxOpenTimeout,
		maxProbes:    DefaultMaxProbes,
		probeTimeout: DefaultProbeTimeout,
		clock:        systemClock{},
	}
}

// WithName names the breaker in errors, callbacks and metrics (default
// "breaker"; Transport names each breaker after its host).
func WithName(name string) Option { return func(s *settings) { s.name = name } }

// WithConsecutiveFailures trips the breaker after n failures in a row
// (default DefaultConsecutiveFailures). Zero turns this rule off.
func WithConsecutiveFailures(n int) Option {
	return func(s *settings) { s.consecutive = max(n, 0) }
}

// WithFailureRate trips the breaker when at least rate (0 < rate <= 1) of
// the calls in the sliding window failed, once the window holds at least
// DefaultMinCalls calls (see WithMinCalls). Off by default.
func WithFailureRate(rate float64) Option { return func(s *settings) { s.failureRate = rate } }

// WithSlowCalls counts calls that take longer than threshold as slow, and
// trips the breaker when at least rate (0 < rate <= 1) of the calls in the
// sliding window were slow, once it holds DefaultMinCalls calls. A slow call
// that succeeded is still a success for the other rules. Off by default.
// Timing a call reads the clock twice.
func WithSlowCalls(threshold time.Duration, rate float64) Option {
	return func(s *settings) { s.slowThreshold, s.slowRate = threshold, rate }
}

// WithMinCalls sets how many calls the window must hold before a rate rule
// may trip (default DefaultMinCalls).
func WithMinCalls(n int) Option {
	return func(s *settings) {
		if n > 0 {
			s.minCalls = n
		}
	}
}

// WithWindowCalls makes the sliding window the last n calls (the default,
// with n = DefaultWindowCalls).
func WithWindowCalls(n int) Option {
	return func(s *settings) {
		if n > 0 {
			s.windowCalls, s.windowTime = n, 0
		}
	}
}

// WithWindowTime makes the sliding window the calls of the last d, kept in
// ten buckets of d/10 (default: a window of calls, see WithWindowCalls).
func WithWindowTime(d time.Duration) Option {
	return func(s *settings) {
		if d > 0 {
			s.windowTime = d
		}
	}
}

// WithOpenTimeout sets the first open duration and its cap (defaults
// DefaultOpenTimeout and DefaultMaxOpenTimeout).
func WithOpenTimeout(first, max time.Duration) Option {
	return func(s *settings) {
		if first > 0 {
			s.openTimeout = first
		}
		if max >= s.openTimeout {
			s.maxOpen = max
		} else {
			s.maxOpen = s.openTimeout
		}
	}
}

// WithProbes sets how many probe calls a half-open breaker admits at once
// and how long it waits for them (defaults DefaultMaxProbes and
// DefaultProbeTimeout).
func WithProbes(n int, timeout time.Duration) Option {
	return func(s *settings) {
		if n > 0 {
			s.maxProbes = n
		}
		if timeout > 0 {
			s.probeTimeout = timeout
		}
	}
}

// WithClock sets the clock (default: the system clock). Tests use it to
// move time instead of sleeping.
func WithClock(c Clock) Option { return func(s *settings) { s.clock = c } }

// OnStateChange adds a callback for every change of state. Callbacks run
// outside the breaker's lock, one at a time and in the order of the
// changes, and may call the breaker.
func OnStateChange(f func(name string, from, to State)) Option {
	return func(s *settings) { s.onChange = append(s.onChange, f) }
}
