package ctxend_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/internal/ctxend"
	"github.com/flotilla-go/flotilla/internal/testwait"
)

var errEnd = errors.New("ended")

func TestState_End(t *testing.T) {
	var s ctxend.State
	assert.NoError(t, s.Err())
	done := s.Done()
	require.Equal(t, done, s.Done(), "one channel")
	select {
	case <-done:
		t.Fatal("closed before the end")
	default:
	}
	var ran, stopped atomic.Bool
	stop := s.AfterFunc(func() { stopped.Store(true) })
	s.AfterFunc(func() { ran.Store(true) })
	assert.True(t, stop(), "stop before the end stops the function")
	assert.False(t, stop(), "a second stop has nothing to stop")

	assert.True(t, s.End(errEnd))
	assert.False(t, s.End(context.Canceled), "the first end stays")
	assert.ErrorIs(t, s.Err(), errEnd)
	testwait.Closed(t, done, time.Second)
	assert.True(t, ran.Load(), "registered functions ran in End")
	assert.False(t, stopped.Load())

	late := make(chan struct{})
	s.AfterFunc(func() { close(late) })
	testwait.Closed(t, late, 5*time.Second) // registered after the end: runs at once
}

func TestState_DoneAfterTheEnd(t *testing.T) {
	var s ctxend.State
	s.End(errEnd)
	testwait.Closed(t, s.Done(), time.Second)
}

// A context built on State lets the context package derive from it without
// a goroutine, and its derived contexts end with it.
type ctx struct {
	context.Context
	ctxend.State
}

func (c *ctx) Done() <-chan struct{} { return c.State.Done() }
func (c *ctx) Err() error            { return c.State.Err() }

func TestState_DerivedContexts(t *testing.T) {
	c := &ctx{Context: context.Background()}
	child, cancel := context.WithCancel(c)
	defer cancel()
	after := make(chan struct{})
	context.AfterFunc(c, func() { close(after) })
	c.End(context.DeadlineExceeded)
	testwait.Closed(t, child.Done(), 5*time.Second)
	assert.ErrorIs(t, child.Err(), context.DeadlineExceeded)
	testwait.Closed(t, after, 5*time.Second)
}

// Registrations that are all stopped leave no trace: a context that many
// calls derive from one after the other stays small, and a stop that
// comes late does not touch a later registration.
func TestState_StoppedFunctionsTakeNoRoom(t *testing.T) {
	var s ctxend.State
	first := s.AfterFunc(func() {})
	require.True(t, first())
	for range 1000 {
		stop := s.AfterFunc(func() {})
		require.True(t, stop())
	}
	var ran atomic.Bool
	s.AfterFunc(func() { ran.Store(true) })
	assert.False(t, first(), "a stale stop stops nothing")
	s.End(errEnd)
	assert.True(t, ran.Load(), "the live registration ran")
}
