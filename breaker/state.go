package breaker

// State is a breaker's state.
type State int32

// The states of a breaker.
const (
	// Closed lets every call through and counts their outcomes.
	Closed State = iota
	// HalfOpen lets a few probe calls through to see if the target is back.
	HalfOpen
	// Open refuses every call until its open duration ends.
	Open
)

// String returns "closed", "half-open" or "open".
func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case HalfOpen:
		return "half-open"
	case Open:
		return "open"
	}
	return "unknown"
}

// MarshalText returns the state's name, so snapshots read well as JSON.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Outcome is what a call's result means to the breaker.
type Outcome int

// The outcomes of a call.
const (
	// Success counts toward closing and resets the consecutive failures.
	Success Outcome = iota
	// Failure counts toward tripping.
	Failure
	// Neutral counts neither way: the caller gave up, or the request was
	// the caller's own mistake (a 4xx other than 429).
	Neutral
)
