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

func TestCoarseClock(t *testing.T) {
	c := new(coarseClock)
	c.init()
	c.want(10 * time.Millisecond)
	assert.Equal(t, int64(time.Millisecond), c.tick.Load(), "1% of 10 ms, raised to the 1 ms floor")
	c.want(time.Second)
	assert.Equal(t, int64(time.Millisecond), c.tick.Load(), "the finest need wins")

	// Below the rate that starts ticking, every reading is exact and no
	// goroutine ticks. (The rate is set beyond reach here, a reading a
	// nanosecond, so that the loop below is "slow" on any machine.)
	c.batch = rateBatch
	for range 3 * rateBatch {
		before := int64(time.Since(c.base))
		require.GreaterOrEqual(t, c.nanos(), before, "an exact reading")
	}
	assert.False(t, c.running.Load(), "no goroutine ticks below the rate")

	// Above it, the same loop starts the ticking. (The rate is lowered to
	// 1,000 a second, so that the race detector's slower readings pass it.)
	c.batch = rateBatch * int64(time.Second) / 1000
	for i := 0; !c.running.Load(); i++ {
		require.Less(t, i, 100*rateBatch, "no ticking at a high rate of readings")
		c.nanos()
	}
	first := c.nanos()
	waitFor(t, 5*time.Second, "coarse clock advancing", func() bool { return c.nanos() > first })
	assert.LessOrEqual(t, c.nanos(), int64(time.Since(c.base)), "a reading is never ahead of the system clock")

	// After coarseRun it stops, and readings are exact again.
	waitFor(t, 30*time.Second, "coarse clock stopping", func() bool { return !c.running.Load() })
	before := int64(time.Since(c.base))
	assert.GreaterOrEqual(t, c.nanos(), before)
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

// BenchmarkExecuteExactClock is the window and slow-call path of Execute
// below the call rate that starts the coarse clock: each call reads the
// system clock twice.
func BenchmarkExecuteExactClock(b *testing.B) {
	saved := coarse.batch
	coarse.batch = 0 // never fast enough: always the system clock
	defer func() { coarse.batch = saved }()
	for deadline := time.Now().Add(5 * time.Second); coarse.running.Load(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("the coarse clock did not stop")
		}
	}
	br := New(WithFailureRate(0.5), WithSlowCalls(time.Second, 0.5))
	ctx := context.Background()
	ok := func(context.Context) error { return nil }
	b.ReportAllocs()
	for range b.N {
		br.Execute(ctx, ok)
	}
}
