package breaker

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCoarseClockRunsWhileReadAndStopsWhenIdle(t *testing.T) {
	c := new(coarseClock)
	c.init()
	assert.False(t, c.running.Load(), "no reader yet: nothing runs")

	first := c.nanos()
	assert.True(t, c.running.Load(), "the first reader starts it")
	exact := int64(time.Since(c.base))
	assert.InDelta(t, exact, first, float64(50*time.Millisecond), "the first reading is taken on the spot")

	// It moves without further exact readings.
	waitFor(t, 5*time.Second, "coarse clock advancing", func() bool { return c.nanos() >= first+int64(5*time.Millisecond) })
	// A reading is never ahead of the system clock.
	assert.LessOrEqual(t, c.nanos(), int64(time.Since(c.base)))

	// Without readers it stops after coarseIdle ticks ...
	waitFor(t, 30*time.Second, "coarse clock stopping", func() bool { return !c.running.Load() })
	stale := c.now.Load()
	// ... and the next reader starts it again with a fresh reading.
	waitFor(t, 5*time.Second, "system clock moving on", func() bool { return int64(time.Since(c.base)) > stale+int64(time.Millisecond) })
	fresh := c.nanos()
	assert.Greater(t, fresh, stale, "a reader after a stop gets a fresh reading")
	assert.True(t, c.running.Load())
}

func TestSlowCallsOnTheSystemClock(t *testing.T) {
	b := New(WithConsecutiveFailures(0), WithSlowCalls(5*time.Millisecond, 0.5), WithMinCalls(2), WithWindowCalls(2))
	slow := func(ctx context.Context) error { <-time.After(30 * time.Millisecond); return nil }
	require.NoError(t, b.Execute(context.Background(), slow))
	s := b.State()
	assert.Equal(t, 1, s.Calls)
	assert.Equal(t, 1, s.Slow, "a 30 ms call is slow against 5 ms")
	require.NoError(t, b.Execute(context.Background(), slow))
	assert.Equal(t, Open, b.State().State, "two slow calls of two trip the slow-call rule")
}
