package breaker

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func closedWithin(t *testing.T, ch <-chan struct{}, d time.Duration) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("not closed within %v", d)
	}
}

func TestAttemptTimesOut(t *testing.T) {
	a := newAttempt(context.Background(), 20*time.Millisecond)
	var ran atomic.Bool
	a.AfterFunc(func() { ran.Store(true) })
	child, cancel := context.WithCancel(a) // as http.Transport derives one
	defer cancel()
	assert.NoError(t, a.Err())
	dl, ok := a.Deadline()
	assert.True(t, ok)
	assert.WithinDuration(t, time.Now().Add(20*time.Millisecond), dl, time.Second)

	closedWithin(t, a.Done(), 5*time.Second)
	assert.ErrorIs(t, a.Err(), context.DeadlineExceeded)
	assert.True(t, ran.Load(), "functions registered with AfterFunc ran")
	closedWithin(t, child.Done(), 5*time.Second)
	assert.ErrorIs(t, child.Err(), context.DeadlineExceeded, "a derived context ends with it")
	a.release()
	assert.ErrorIs(t, a.Err(), context.DeadlineExceeded, "release keeps the first reason")
}

func TestAttemptEndsWithTheCaller(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	a := newAttempt(parent, time.Hour)
	cancel()
	closedWithin(t, a.Done(), 5*time.Second)
	assert.ErrorIs(t, a.Err(), context.Canceled)
	a.release()

	short, cancel2 := context.WithTimeout(context.Background(), time.Minute)
	defer cancel2()
	b := newAttempt(short, time.Hour)
	defer b.release()
	dl, _ := b.Deadline()
	want, _ := short.Deadline()
	assert.Equal(t, want, dl, "the caller's earlier deadline is the attempt's")
	assert.Nil(t, b.slot, "no timer of its own when the caller's deadline comes first")
}

func TestAttemptRelease(t *testing.T) {
	a := newAttempt(context.Background(), time.Hour)
	var ran, stopped atomic.Bool
	stop := a.AfterFunc(func() { stopped.Store(true) })
	a.AfterFunc(func() { ran.Store(true) })
	assert.True(t, stop(), "stop before the end stops the function")
	assert.False(t, stop(), "a second stop has nothing to stop")
	a.release()
	assert.ErrorIs(t, a.Err(), context.Canceled)
	closedWithin(t, a.Done(), time.Second)
	assert.True(t, ran.Load(), "release runs the registered functions")
	assert.False(t, stopped.Load())

	late := make(chan struct{})
	a.AfterFunc(func() { close(late) })
	closedWithin(t, late, 5*time.Second) // registered after the end: runs at once
}

func TestAttemptFiredTimerIsNotReused(t *testing.T) {
	// A slot whose timer fired goes back to no pool, so a late fire cannot
	// end the next attempt.
	a := newAttempt(context.Background(), time.Millisecond)
	closedWithin(t, a.Done(), 5*time.Second)
	s := a.slot
	a.release()
	for range 100 {
		b := newAttempt(context.Background(), time.Hour)
		require.NotSame(t, s, b.slot)
		b.release()
		require.False(t, errors.Is(b.Err(), context.DeadlineExceeded))
	}
}

func TestAttemptBodyEndsTheAttempt(t *testing.T) {
	a := newAttempt(context.Background(), time.Hour)
	a.body = nopBody{}
	body := (*attemptBody)(a)
	require.NoError(t, body.Close())
	assert.ErrorIs(t, a.Err(), context.Canceled)
	require.NoError(t, body.Close(), "a second Close is harmless")
}

type nopBody struct{}

func (nopBody) Read([]byte) (int, error) { return 0, nil }
func (nopBody) Close() error             { return nil }
