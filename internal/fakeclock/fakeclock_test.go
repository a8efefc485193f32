package fakeclock_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/flotilla-go/flotilla/breaker"
	"github.com/flotilla-go/flotilla/discovery"
	"github.com/flotilla-go/flotilla/health"
	"github.com/flotilla-go/flotilla/internal/fakeclock"
)

// One clock serves every package that takes one.
var (
	_ breaker.Clock   = (*fakeclock.Clock)(nil)
	_ health.Clock    = (*fakeclock.Clock)(nil)
	_ discovery.Clock = (*fakeclock.Clock)(nil)
)

func TestClock_RunsTimersInTimeOrder(t *testing.T) {
	start := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	c := fakeclock.New(start)
	var ran []string
	var at []time.Duration
	note := func(name string) func() {
		return func() { ran = append(ran, name); at = append(at, c.Now().Sub(start)) }
	}
	c.AfterFunc(3*time.Second, note("third"))
	c.AfterFunc(time.Second, note("first"))
	stop := c.AfterFunc(2*time.Second, note("stopped"))
	c.AfterFunc(10*time.Second, note("later"))
	assert.True(t, stop(), "a pending timer stops")
	assert.False(t, stop(), "twice: it was stopped already")

	c.Advance(5 * time.Second)
	assert.Equal(t, []string{"first", "third"}, ran)
	assert.Equal(t, []time.Duration{time.Second, 3 * time.Second}, at, "each runs at its own time")
	assert.Equal(t, 5*time.Second, c.Now().Sub(start))

	d, ok := c.AdvanceWhenWaiting()
	assert.True(t, ok)
	assert.Equal(t, 5*time.Second, d)
	assert.Equal(t, []string{"first", "third", "later"}, ran)
}
