package breaker

import (
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of the retry budget (WithRetryBudget).
const (
	// DefaultRetryRatio is how many retries each request to a host earns:
	// retries add at most 20% to a host's requests.
	DefaultRetryRatio = 0.2
	// DefaultRetryFloor is how many retries a second a host may have
	// whatever its traffic, so that a quiet host's few failures are
	// still retried.
	DefaultRetryFloor = 10
	// retryBank caps the retries a host's requests may bank, so that a
	// long healthy spell does not save up a storm.
	retryBank = 100
)

// retryBudget bounds a host's retries, as gRPC's retry throttling and
// Finagle's retry budgets do: each request deposits ratio of a retry
// (lock-free), and a retry withdraws a whole one, from the deposits or else
// from a floor that refills at floor a second. Only a retry takes the lock
// and reads the clock.
type retryBudget struct {
	ratio, floor float64
	deposits     atomic.Int64 // in thousandths of a retry

	mu       sync.Mutex
	spare    float64   // retries of the floor, at most floor
	refilled time.Time // when spare was last refilled
}

func (r *retryBudget) deposit() {
	if r.ratio > 0 {
		r.deposits.Add(int64(r.ratio * 1000))
	}
}

// withdraw takes one retry, and reports whether there was one.
func (r *retryBudget) withdraw(now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.deposits.Load()
	if have := min(cur, retryBank*1000); have >= 1000 {
		r.deposits.Add(have - 1000 - cur) // keeps deposits made meanwhile
		return true
	}
	if r.refilled.IsZero() {
		r.spare = r.floor
	} else {
		r.spare = min(r.floor, r.spare+now.Sub(r.refilled).Seconds()*r.floor)
	}
	r.refilled = now
	if r.spare >= 1 {
		r.spare--
		return true
	}
	return false
}
