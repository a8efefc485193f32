package platform

import (
	"context"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/breaker"
	"github.com/flotilla-go/flotilla/internal/testwait"
)

func TestRequestContext_ErrWithoutWatching(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := newRequestContext(parent, "id-1", time.Hour)
	assert.NoError(t, c.Err())
	cancel()
	assert.ErrorIs(t, c.Err(), context.Canceled, "the parent's end, found without a watch")
	assert.False(t, c.armed.Load())
	testwait.Closed(t, c.Done(), time.Second)

	past := newRequestContext(context.Background(), "id-2", -time.Millisecond)
	assert.ErrorIs(t, past.Err(), context.DeadlineExceeded, "the deadline, found from the clock")
	assert.ErrorIs(t, past.Err(), context.DeadlineExceeded, "and it stays")
	testwait.Closed(t, past.Done(), time.Second)
}

func TestRequestContext_DoneOnTheDeadline(t *testing.T) {
	start := time.Now()
	c := newRequestContext(context.Background(), "id", 20*time.Millisecond)
	dl, ok := c.Deadline()
	require.True(t, ok)
	assert.False(t, dl.Before(start.Add(20*time.Millisecond)))
	testwait.Closed(t, c.Done(), 5*time.Second)
	assert.False(t, time.Now().Before(dl), "not before the deadline")
	assert.ErrorIs(t, c.Err(), context.DeadlineExceeded)
	c.cancel()
	assert.ErrorIs(t, c.Err(), context.DeadlineExceeded, "the first reason stays")
}

func TestRequestContext_DoneWithTheParent(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	c := newRequestContext(parent, "id", time.Hour)
	done := c.Done()
	cancel()
	testwait.Closed(t, done, 5*time.Second)
	assert.ErrorIs(t, c.Err(), context.Canceled)
}

func TestRequestContext_ParentDeadlineFirst(t *testing.T) {
	parent, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := newRequestContext(parent, "id", time.Hour)
	want, _ := parent.Deadline()
	got, _ := c.Deadline()
	assert.Equal(t, want, got)
}

func TestRequestContext_Values(t *testing.T) {
	type key struct{}
	parent := context.WithValue(context.Background(), key{}, "v")
	c := newRequestContext(parent, "req-7", time.Hour)
	assert.Equal(t, "req-7", RequestID(c))
	assert.Equal(t, "v", c.Value(key{}))
	assert.Equal(t, "", RequestID(context.Background()))
}

func TestRequestContext_Cancel(t *testing.T) {
	parent, cancelParent := context.WithCancel(context.Background())
	defer cancelParent()
	c := newRequestContext(parent, "id", time.Hour)
	child, cancelChild := context.WithCancel(c) // as an outgoing call derives one
	defer cancelChild()
	require.True(t, c.armed.Load(), "deriving a context starts the watches")
	c.cancel()
	testwait.Closed(t, child.Done(), 5*time.Second)
	assert.ErrorIs(t, child.Err(), context.Canceled)
	assert.False(t, c.timer.Stop(), "the timer was stopped")
	assert.False(t, c.stopParent(), "and the watch on the parent")
}

// A function registered directly, as a breaker's attempt does, without
// Done having been asked for, still runs when the connection's context
// ends: registering starts the watches.
func TestRequestContext_AfterFuncStartsTheWatches(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	c := newRequestContext(parent, "id", time.Hour)
	defer c.cancel()
	ran := make(chan struct{})
	c.AfterFunc(func() { close(ran) })
	require.True(t, c.armed.Load())
	cancel()
	testwait.Closed(t, ran, 5*time.Second)
	assert.ErrorIs(t, c.Err(), context.Canceled)
}

// A call to a sibling through the breaker, made with the request's
// context, ends when the request's context does.
func TestRequestContext_EndsABreakerAttempt(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	c := newRequestContext(parent, "id", time.Hour)
	defer c.cancel()
	entered := make(chan struct{})
	rt := breaker.NewTransport(roundTripFunc(func(r *http.Request) (*http.Response, error) {
		close(entered)
		<-r.Context().Done()
		return nil, r.Context().Err()
	}), breaker.WithRetries(0))
	req, _ := http.NewRequestWithContext(c, http.MethodGet, "http://agent-geo/", nil)
	errs := make(chan error, 1)
	go func() {
		_, err := rt.RoundTrip(req)
		errs <- err
	}()
	testwait.Closed(t, entered, 5*time.Second)
	cancel() // the connection goes
	select {
	case err := <-errs:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("the attempt outlived the request's context")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A context derived from it registers a function with it: the context
// package starts no goroutine to watch it.
func TestRequestContext_DerivedStartsNoGoroutine(t *testing.T) {
	c := newRequestContext(context.Background(), "id", time.Hour)
	defer c.cancel()
	const n = 100
	before := runtime.NumGoroutine()
	children := make([]context.Context, n)
	for i := range children {
		child, cancel := context.WithCancel(c)
		defer cancel()
		children[i] = child
	}
	// A goroutine per child would add n; other goroutines of the test
	// binary come and go by a few.
	assert.Less(t, runtime.NumGoroutine()-before, n/2, "goroutines watch the request's context")
	c.cancel()
	for _, child := range children {
		testwait.Closed(t, child.Done(), 5*time.Second)
	}
}
