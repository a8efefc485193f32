package breaker_test

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/breaker"
	"github.com/flotilla-go/flotilla/internal/fakeclock"
)

func call(t *testing.T, b *breaker.Breaker, o breaker.Outcome) {
	t.Helper()
	done, err := b.Allow()
	require.NoError(t, err)
	done(o)
}

func requireOpen(t *testing.T, b *breaker.Breaker) *breaker.OpenError {
	t.Helper()
	_, err := b.Allow()
	require.ErrorIs(t, err, breaker.ErrOpen)
	var oe *breaker.OpenError
	require.ErrorAs(t, err, &oe)
	return oe
}

func TestBreaker_ConsecutiveFailures(t *testing.T) {
	clk := newFakeClock()
	b := breaker.New(breaker.WithName("agent-geo"), breaker.WithClock(clk))
	for range 4 {
		call(t, b, breaker.Failure)
	}
	call(t, b, breaker.Success) // resets the count
	for range 4 {
		call(t, b, breaker.Failure)
	}
	assert.Equal(t, breaker.Closed, b.Snapshot().State)
	call(t, b, breaker.Failure)
	assert.Equal(t, breaker.Open, b.Snapshot().State)

	oe := requireOpen(t, b)
	assert.Equal(t, "agent-geo", oe.Name)
	assert.InDelta(t, time.Second, oe.RetryAfter(), float64(200*time.Millisecond), "first open lasts 1s ±20%")
	assert.Contains(t, oe.Error(), `breaker "agent-geo": circuit breaker is open: next probe in`)

	clk.Advance(1200 * time.Millisecond)
	assert.Equal(t, breaker.HalfOpen, b.Snapshot().State)
	call(t, b, breaker.Success)
	assert.Equal(t, breaker.Closed, b.Snapshot().State)
}

func TestBreaker_HalfOpenProbes(t *testing.T) {
	clk := newFakeClock()
	b := breaker.New(breaker.WithClock(clk), breaker.WithConsecutiveFailures(1), breaker.WithProbes(2, 5*time.Second))
	call(t, b, breaker.Failure)
	clk.Advance(2 * time.Second)
	require.Equal(t, breaker.HalfOpen, b.Snapshot().State)

	d1, err := b.Allow()
	require.NoError(t, err)
	d2, err := b.Allow()
	require.NoError(t, err)
	_, err = b.Allow()
	assert.ErrorIs(t, err, breaker.ErrTooManyProbes, "only two probes at once")
	d1(breaker.Success)
	assert.Equal(t, breaker.HalfOpen, b.Snapshot().State, "one of two probes is not enough")
	d2(breaker.Neutral) // frees its slot, counts neither way
	assert.Equal(t, breaker.HalfOpen, b.Snapshot().State)
	d3, err := b.Allow()
	require.NoError(t, err)
	d3(breaker.Success)
	assert.Equal(t, breaker.Closed, b.Snapshot().State)
	d3(breaker.Failure) // a second report is ignored
	assert.Equal(t, breaker.Closed, b.Snapshot().State)
}

func TestBreaker_ProbeFailureReopensAndOpenTimeGrows(t *testing.T) {
	clk := newFakeClock()
	b := breaker.New(breaker.WithClock(clk), breaker.WithConsecutiveFailures(1))
	call(t, b, breaker.Failure)
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
	for i, w := range want {
		oe := requireOpen(t, b)
		got := oe.RetryAfter()
		assert.InDelta(t, float64(w), float64(got), 0.21*float64(w), "trip %d", i+1)
		clk.Advance(got)
		require.Equal(t, breaker.HalfOpen, b.Snapshot().State)
		call(t, b, breaker.Failure) // the probe fails: open again, for longer
	}
	// A clean half-open closes the breaker and starts the open time again.
	clk.Advance(requireOpen(t, b).RetryAfter())
	call(t, b, breaker.Success)
	require.Equal(t, breaker.Closed, b.Snapshot().State)
	call(t, b, breaker.Failure)
	assert.InDelta(t, float64(time.Second), float64(requireOpen(t, b).RetryAfter()), 0.21*float64(time.Second))
	assert.Equal(t, int64(6), b.Snapshot().Trips)
}

func TestBreaker_OpenTimeCapped(t *testing.T) {
	clk := newFakeClock()
	b := breaker.New(breaker.WithClock(clk), breaker.WithConsecutiveFailures(1), breaker.WithOpenTimeout(time.Second, 3*time.Second))
	call(t, b, breaker.Failure)
	for range 6 {
		d := requireOpen(t, b).RetryAfter()
		assert.LessOrEqual(t, d, 3*time.Second)
		clk.Advance(d)
		call(t, b, breaker.Failure)
	}
}

func TestBreaker_ProbeTimeLimit(t *testing.T) {
	clk := newFakeClock()
	b := breaker.New(breaker.WithClock(clk), breaker.WithConsecutiveFailures(1), breaker.WithProbes(1, 3*time.Second))
	call(t, b, breaker.Failure)
	clk.Advance(2 * time.Second)
	done, err := b.Allow()
	require.NoError(t, err)
	clk.Advance(3 * time.Second) // the probe never reports
	assert.Equal(t, breaker.Open, b.Snapshot().State)
	done(breaker.Success) // too late: ignored
	assert.Equal(t, breaker.Open, b.Snapshot().State)
}

func TestBreaker_NeutralCountsNeitherWay(t *testing.T) {
	b := breaker.New(breaker.WithConsecutiveFailures(2))
	call(t, b, breaker.Failure)
	for range 10 {
		call(t, b, breaker.Neutral)
	}
	assert.Equal(t, 1, b.Snapshot().ConsecutiveFailures, "neutral did not reset")
	call(t, b, breaker.Failure)
	assert.Equal(t, breaker.Open, b.Snapshot().State)
}

func TestBreaker_FailureRateOverCalls(t *testing.T) {
	b := breaker.New(breaker.WithConsecutiveFailures(0), breaker.WithFailureRate(0.5),
		breaker.WithMinCalls(10), breaker.WithWindowCalls(10))
	for range 25 {
		call(t, b, breaker.Success)
	}
	s := b.Snapshot()
	assert.Equal(t, 10, s.Calls, "the window holds the last 10 calls")
	// Each failure pushes a success out of the window: 5 of the last 10
	// is the rate.
	for k := 1; k <= 4; k++ {
		call(t, b, breaker.Failure)
		require.Equal(t, breaker.Closed, b.Snapshot().State, "after %d failures", k)
		assert.InDelta(t, float64(k)/10, b.Snapshot().FailureRate, 1e-9)
	}
	call(t, b, breaker.Failure)
	assert.Equal(t, breaker.Open, b.Snapshot().State)
}

func TestBreaker_MinCalls(t *testing.T) {
	b := breaker.New(breaker.WithConsecutiveFailures(0), breaker.WithFailureRate(0.5), breaker.WithMinCalls(10))
	for range 9 {
		call(t, b, breaker.Failure)
	}
	assert.Equal(t, breaker.Closed, b.Snapshot().State, "9 calls are fewer than the minimum")
	call(t, b, breaker.Failure)
	assert.Equal(t, breaker.Open, b.Snapshot().State)
}

func TestBreaker_FailureRateOverTime(t *testing.T) {
	clk := newFakeClock()
	b := breaker.New(breaker.WithClock(clk), breaker.WithConsecutiveFailures(0), breaker.WithFailureRate(0.5),
		breaker.WithMinCalls(4), breaker.WithWindowTime(10*time.Second))
	call(t, b, breaker.Failure)
	call(t, b, breaker.Failure)
	call(t, b, breaker.Failure)
	clk.Advance(11 * time.Second) // those three age out
	assert.Equal(t, 0, b.Snapshot().Calls)
	call(t, b, breaker.Failure)
	call(t, b, breaker.Success)
	call(t, b, breaker.Success)
	assert.Equal(t, breaker.Closed, b.Snapshot().State)
	clk.Advance(5 * time.Second)
	call(t, b, breaker.Failure) // 2 of 4 in the last 10 s
	assert.Equal(t, breaker.Open, b.Snapshot().State)
}

func TestBreaker_SlowCalls(t *testing.T) {
	clk := newFakeClock()
	b := breaker.New(breaker.WithClock(clk), breaker.WithConsecutiveFailures(0),
		breaker.WithSlowCalls(100*time.Millisecond, 0.5), breaker.WithMinCalls(4))
	timed := func(d time.Duration) {
		done, err := b.Allow()
		require.NoError(t, err)
		clk.Advance(d)
		done(breaker.Success)
	}
	timed(10 * time.Millisecond)
	timed(300 * time.Millisecond)
	timed(10 * time.Millisecond)
	assert.Equal(t, 1, b.Snapshot().Slow)
	assert.Equal(t, breaker.Closed, b.Snapshot().State)
	timed(250 * time.Millisecond) // 2 of 4 slow, every one a success
	assert.Equal(t, breaker.Open, b.Snapshot().State)

	// Execute times the call too.
	clk.Advance(2 * time.Second)
	require.Equal(t, breaker.HalfOpen, b.Snapshot().State)
	require.NoError(t, b.Execute(context.Background(), func(context.Context) error { return nil }))
	assert.Equal(t, breaker.Closed, b.Snapshot().State)
	for range 4 {
		b.Execute(context.Background(), func(context.Context) error { clk.Advance(time.Second); return nil })
	}
	assert.Equal(t, breaker.Open, b.Snapshot().State)
}

// On the system clock, calls are timed by its monotonic reading.
func TestBreaker_SlowCallsOnTheSystemClock(t *testing.T) {
	b := breaker.New(breaker.WithConsecutiveFailures(0), breaker.WithSlowCalls(time.Millisecond, 0.5), breaker.WithMinCalls(4))
	fast := func(context.Context) error { return nil }
	slow := func(context.Context) error { time.Sleep(3 * time.Millisecond); return nil } // a slow call, not a wait
	for _, f := range []func(context.Context) error{fast, fast, slow} {
		require.NoError(t, b.Execute(context.Background(), f))
	}
	assert.Equal(t, 1, b.Snapshot().Slow)
	assert.Equal(t, breaker.Closed, b.Snapshot().State)
	require.NoError(t, b.Execute(context.Background(), slow))
	assert.Equal(t, breaker.Open, b.Snapshot().State, "2 of 4 slow")
}

func TestBreaker_RetryAfter(t *testing.T) {
	clk := newFakeClock()
	b := breaker.New(breaker.WithClock(clk), breaker.WithConsecutiveFailures(1))
	b.RetryAfter(30 * time.Second)
	call(t, b, breaker.Failure)
	assert.Equal(t, 30*time.Second, requireOpen(t, b).RetryAfter(), "the target's Retry-After is longer than 1s")
	clk.Advance(10 * time.Second)
	b.RetryAfter(60 * time.Second) // while open: extends
	assert.Equal(t, 60*time.Second, requireOpen(t, b).RetryAfter())
	b.RetryAfter(time.Second) // shorter: no change
	assert.Equal(t, 60*time.Second, requireOpen(t, b).RetryAfter())
	clk.Advance(59 * time.Second)
	assert.Equal(t, breaker.Open, b.Snapshot().State)
	clk.Advance(time.Second)
	assert.Equal(t, breaker.HalfOpen, b.Snapshot().State)
}

// Callbacks run outside the lock, in order, and may call the breaker.
func TestBreaker_CallbacksReenter(t *testing.T) {
	clk := newFakeClock()
	var b *breaker.Breaker
	var mu sync.Mutex
	var seen []string
	b = breaker.New(breaker.WithClock(clk), breaker.WithConsecutiveFailures(1),
		breaker.OnStateChange(func(name string, from, to breaker.State) {
			mu.Lock()
			seen = append(seen, from.String()+">"+to.String())
			mu.Unlock()
			_ = b.Snapshot() // takes the lock: must not deadlock
			if to == breaker.HalfOpen {
				// A probe from inside the callback closes the breaker,
				// which queues the next change behind this one.
				done, err := b.Allow()
				if err == nil {
					done(breaker.Success)
				}
			}
		}))
	call(t, b, breaker.Failure)
	clk.Advance(2 * time.Second)
	assert.Equal(t, []string{"closed>open", "open>half-open", "half-open>closed"}, seen)
	assert.Equal(t, breaker.Closed, b.Snapshot().State)
}

func TestBreaker_Execute(t *testing.T) {
	clock := newFakeClock()
	b := breaker.New(breaker.WithConsecutiveFailures(2), breaker.WithClock(clock),
		breaker.WithOpenTimeout(time.Second, time.Second))
	boom := errors.New("boom")
	assert.ErrorIs(t, b.Execute(context.Background(), func(context.Context) error { return boom }), boom)
	assert.Equal(t, 1, b.Snapshot().ConsecutiveFailures)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := b.Execute(ctx, func(ctx context.Context) error { return ctx.Err() })
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 1, b.Snapshot().ConsecutiveFailures, "the caller's cancellation is neutral")

	kaboom := func(context.Context) error { panic("kaboom") }
	assert.PanicsWithValue(t, "kaboom", func() { b.Execute(context.Background(), kaboom) })
	assert.Equal(t, 1, b.Snapshot().ConsecutiveFailures, "a panic in the closed state is not counted")

	assert.ErrorIs(t, b.Execute(context.Background(), func(context.Context) error { return boom }), boom)
	assert.Equal(t, breaker.Open, b.Snapshot().State)
	err = b.Execute(context.Background(), func(context.Context) error { t.Fatal("called while open"); return nil })
	assert.ErrorIs(t, err, breaker.ErrOpen)

	clock.Advance(time.Second)
	require.Equal(t, breaker.HalfOpen, b.Snapshot().State)
	assert.PanicsWithValue(t, "kaboom", func() { b.Execute(context.Background(), kaboom) })
	assert.Equal(t, breaker.Open, b.Snapshot().State, "a probe that panics failed")
}

func TestBreaker_Concurrent(t *testing.T) {
	b := breaker.New(breaker.WithFailureRate(0.5), breaker.WithSlowCalls(time.Millisecond, 0.9),
		breaker.WithOpenTimeout(time.Millisecond, time.Millisecond), breaker.WithProbes(3, time.Millisecond))
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2000 {
				done, err := b.Allow()
				if err != nil {
					continue
				}
				done(breaker.Outcome(rand.IntN(3)))
				s := b.Snapshot()
				if s.Calls > breaker.DefaultWindowCalls || s.Failures > s.Calls || s.Slow > s.Calls {
					t.Errorf("inconsistent window: %+v", s)
					return
				}
			}
		}()
	}
	wg.Wait()
	s := b.Snapshot()
	assert.Positive(t, s.Trips, "random failures at a 50%% rule trip it")
	assert.Contains(t, []breaker.State{breaker.Closed, breaker.HalfOpen, breaker.Open}, s.State)
	js, err := json.Marshal(s)
	require.NoError(t, err)
	assert.Contains(t, string(js), `"state":"`+s.State.String()+`"`)
}

func newFakeClock() *fakeclock.Clock {
	return fakeclock.New(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
}
