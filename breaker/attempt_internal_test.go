package breaker

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/internal/ctxend"
	"github.com/flotilla-go/flotilla/internal/testwait"
)

func TestAttemptTimesOut(t *testing.T) {
	start := time.Now()
	a := newAttempt(context.Background(), newExpiry(20*time.Millisecond))
	var ran atomic.Bool
	a.AfterFunc(func() { ran.Store(true) })
	child, cancel := context.WithCancel(a) // as http.Transport derives one
	defer cancel()
	assert.NoError(t, a.Err())
	dl, ok := a.Deadline()
	assert.True(t, ok)
	assert.WithinDuration(t, time.Now().Add(20*time.Millisecond), dl, time.Second)

	testwait.Closed(t, a.Done(), 5*time.Second)
	assert.GreaterOrEqual(t, time.Since(start), 20*time.Millisecond, "never before the timeout")
	assert.ErrorIs(t, a.Err(), context.DeadlineExceeded)
	assert.True(t, ran.Load(), "functions registered with AfterFunc ran")
	testwait.Closed(t, child.Done(), 5*time.Second)
	assert.ErrorIs(t, child.Err(), context.DeadlineExceeded, "a derived context ends with it")
	a.release()
	assert.ErrorIs(t, a.Err(), context.DeadlineExceeded, "release keeps the first reason")
}

func TestAttemptEndsWithTheCaller(t *testing.T) {
	e := newExpiry(time.Hour)
	parent, cancel := context.WithCancel(context.Background())
	a := newAttempt(parent, e)
	cancel()
	testwait.Closed(t, a.Done(), 5*time.Second)
	assert.ErrorIs(t, a.Err(), context.Canceled)
	a.release()

	short, cancel2 := context.WithTimeout(context.Background(), time.Minute)
	defer cancel2()
	b := newAttempt(short, e)
	defer b.release()
	dl, _ := b.Deadline()
	want, _ := short.Deadline()
	assert.Equal(t, want, dl, "the caller's earlier deadline is the attempt's")
	assert.Nil(t, b.bucket, "not in the expiry when the caller's deadline comes first")
	assert.Empty(t, e.cur.attempts)
}

func TestAttemptRelease(t *testing.T) {
	a := newAttempt(context.Background(), newExpiry(time.Hour))
	var ran, stopped atomic.Bool
	stop := a.AfterFunc(func() { stopped.Store(true) })
	a.AfterFunc(func() { ran.Store(true) })
	assert.True(t, stop(), "stop before the end stops the function")
	assert.False(t, stop(), "a second stop has nothing to stop")
	a.release()
	assert.ErrorIs(t, a.Err(), context.Canceled)
	testwait.Closed(t, a.Done(), time.Second)
	assert.True(t, ran.Load(), "release runs the registered functions")
	assert.False(t, stopped.Load())

	late := make(chan struct{})
	a.AfterFunc(func() { close(late) })
	testwait.Closed(t, late, 5*time.Second) // registered after the end: runs at once
}

func TestAttemptBodyEndsTheAttempt(t *testing.T) {
	a := newAttempt(context.Background(), newExpiry(time.Hour))
	a.body = nopBody{}
	body := (*attemptBody)(a)
	require.NoError(t, body.Close())
	assert.ErrorIs(t, a.Err(), context.Canceled)
	require.NoError(t, body.Close(), "a second Close is harmless")
}

type nopBody struct{}

func (nopBody) Read([]byte) (int, error) { return 0, nil }
func (nopBody) Close() error             { return nil }

// manualExpiry returns an expiry whose ticks the test runs by hand, on a
// clock it moves: its own timer, a sixteenth of an hour, never fires during
// a test.
func manualExpiry(t *testing.T) (*expiry, *time.Time) {
	e := newExpiry(time.Hour)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	e.now = func() time.Time { return now }
	t.Cleanup(func() {
		e.mu.Lock()
		if e.timer != nil {
			e.timer.Stop()
		}
		e.mu.Unlock()
	})
	return e, &now
}

func TestExpiry_EndsOnlyAfterTheTimeout(t *testing.T) {
	e, now := manualExpiry(t)
	slow := newAttempt(context.Background(), e)
	quick := newAttempt(context.Background(), e)
	quick.release()
	e.run() // closes the bucket: slow joined before this
	*now = now.Add(time.Hour - time.Nanosecond)
	e.run()
	assert.NoError(t, slow.Err(), "a bucket a moment short of the timeout old is left alone")
	assert.True(t, e.running)

	late := newAttempt(context.Background(), e)
	*now = now.Add(time.Nanosecond)
	e.run()
	assert.ErrorIs(t, slow.Err(), context.DeadlineExceeded, "its bucket is a timeout old")
	assert.NoError(t, late.Err(), "a later bucket is not")
	slow.release() // after its end: nothing to remove
	assert.Len(t, e.old, 1)
	assert.Equal(t, []*attempt{late}, e.old[0].attempts)

	late.release()
	e.run()
	assert.Empty(t, e.old, "empty buckets are dropped")
	assert.False(t, e.running, "with nothing out, the ticks stop")
	again := newAttempt(context.Background(), e)
	assert.True(t, e.running, "and start again with the next attempt")
	again.release()
}

func TestExpiry_RemoveKeepsPlaces(t *testing.T) {
	e, _ := manualExpiry(t)
	as := make([]*attempt, 6)
	for i := range as {
		as[i] = newAttempt(context.Background(), e)
	}
	check := func() {
		t.Helper()
		for i, a := range e.cur.attempts {
			require.Same(t, e.cur, a.bucket)
			require.Equal(t, int32(i), a.slot)
		}
	}
	as[1].release()
	as[5].release() // the last
	as[0].release() // the first
	check()
	assert.ElementsMatch(t, []*attempt{as[2], as[3], as[4]}, e.cur.attempts)
	e.run()
	as[3].release() // from a closed bucket
	require.Len(t, e.old, 1)
	assert.ElementsMatch(t, []*attempt{as[2], as[4]}, e.old[0].attempts)
	for i, a := range e.old[0].attempts {
		assert.Equal(t, int32(i), a.slot)
	}
	as[2].release()
	as[4].release()
	assert.Empty(t, e.old[0].attempts)
	for _, a := range as {
		assert.Equal(t, int32(-1), a.slot, "out of its bucket")
		assert.ErrorIs(t, a.Err(), context.Canceled)
	}
}

// countingParent is a context with an AfterFunc method, as the platform's
// request contexts are; it counts the registrations still in place.
type countingParent struct {
	context.Context
	ctxend.State
	live atomic.Int32
}

func (p *countingParent) Done() <-chan struct{} { return p.State.Done() }
func (p *countingParent) Err() error            { return p.State.Err() }
func (p *countingParent) AfterFunc(f func()) func() bool {
	p.live.Add(1)
	stop := p.State.AfterFunc(f)
	return func() bool {
		ok := stop()
		if ok {
			p.live.Add(-1)
		}
		return ok
	}
}

// A parent with an AfterFunc method is asked directly: the attempt ends in
// the goroutine that ends the parent, and its release takes the
// registration back.
func TestAttemptRegistersWithAnAfterFuncParent(t *testing.T) {
	p := &countingParent{Context: context.Background()}
	a := newAttempt(p, newExpiry(time.Hour))
	assert.Equal(t, int32(1), p.live.Load())
	a.release()
	assert.Zero(t, p.live.Load(), "release stopped the registration")

	b := newAttempt(p, newExpiry(time.Hour))
	p.End(context.Canceled)
	assert.ErrorIs(t, b.Err(), context.Canceled, "ended with the parent, at once")
	b.release()
}
