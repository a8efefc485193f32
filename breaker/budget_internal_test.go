package breaker

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// The floor allows its retries a second whatever the traffic, refills with
// time up to one second's worth, and deposits are spent first and banked
// up to retryBank.
func TestRetryBudget_Floor(t *testing.T) {
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	r := &retryBudget{ratio: 0, floor: 3}
	for range 3 {
		assert.True(t, r.withdraw(now))
	}
	assert.False(t, r.withdraw(now), "the floor's 3 are spent")
	assert.False(t, r.withdraw(now.Add(100*time.Millisecond)), "0.3 of a retry has come back")
	assert.True(t, r.withdraw(now.Add(500*time.Millisecond)), "1.5 have")
	assert.True(t, r.withdraw(now.Add(time.Hour)))
	assert.True(t, r.withdraw(now.Add(time.Hour)))
	assert.True(t, r.withdraw(now.Add(time.Hour)))
	assert.False(t, r.withdraw(now.Add(time.Hour)), "an hour's quiet refills one second's worth, no more")

	d := &retryBudget{ratio: 0.5, floor: 0}
	for range 1000 {
		d.deposit()
	}
	n := 0
	for d.withdraw(now) {
		n++
	}
	assert.Equal(t, retryBank, n, "500 earned, %d banked", retryBank)
}
