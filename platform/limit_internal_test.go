package platform

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// feed completes windows of requests that each took rtt, with inflight
// requests running at once.
func feed(l *limiter, windows int, inflight int64, rtt time.Duration) {
	for range windows {
		for range limitWindow {
			l.peak.Store(inflight)
			l.inflight.Add(1)
			l.release(rtt)
		}
	}
}

// The limit grows while latency holds, shrinks when requests get slower,
// and does not grow when the traffic, not the service, is what is low.
func TestLimiter_FollowsLatency(t *testing.T) {
	l := newLimiter(0)
	feed(l, 40, 1000, 10*time.Millisecond) // busy, steady
	grown := l.limit.Load()
	assert.Greater(t, grown, int64(initialLimit*3/2), "a steady service gets room")

	feed(l, 10, 1000, 40*time.Millisecond) // four times slower: queueing
	shrunk := l.limit.Load()
	assert.Less(t, shrunk, grown*3/4, "a slower service runs fewer at once")

	quiet := newLimiter(0)
	feed(quiet, 40, 2, 10*time.Millisecond) // two at a time, whatever the limit
	assert.LessOrEqual(t, quiet.limit.Load(), int64(initialLimit), "idle headroom is not growth")

	for range 100 {
		feed(l, 10, 10_000, time.Millisecond)
	}
	assert.LessOrEqual(t, l.limit.Load(), int64(maxLimit))
	for range 100 {
		feed(l, 10, 10_000, time.Duration(1+len(t.Name()))*time.Second)
	}
	assert.GreaterOrEqual(t, l.limit.Load(), int64(minLimit))
}

func TestLimiter_FixedSheds(t *testing.T) {
	l := newLimiter(2)
	assert.True(t, l.acquire())
	assert.True(t, l.acquire())
	assert.False(t, l.acquire(), "a third is shed")
	assert.EqualValues(t, 1, l.shed.Load())
	assert.True(t, l.shedding(time.Now()))
	assert.False(t, l.shedding(time.Now().Add(shedWarn)), "the warning lasts shedWarn")
	l.release(time.Millisecond)
	assert.True(t, l.acquire(), "a place freed is taken")
	feed(l, 10, 100, time.Second)
	assert.EqualValues(t, 2, l.limit.Load(), "a fixed limit does not move")
}

// BenchmarkConcurrencyLimit is what the adaptive limit adds to a request
// that is not shed: echo with the limiter's middleware, against echo with a
// middleware that only calls on (echo builds the chain per request, which
// costs a middleware an allocation whatever it does), in one run, in
// process, with a handler that answers at once.
func BenchmarkConcurrencyLimit(b *testing.B) {
	hello := func(c echo.Context) error { return c.String(http.StatusOK, "hello") }
	pass := func(next echo.HandlerFunc) echo.HandlerFunc { return func(c echo.Context) error { return next(c) } }
	for _, tc := range []struct {
		name string
		mw   echo.MiddlewareFunc
	}{
		{"pass-through", pass},
		{"adaptive", newLimiter(0).middleware(map[string]bool{})},
		{"pass-through-again", pass},
		{"adaptive-again", newLimiter(0).middleware(map[string]bool{})},
	} {
		b.Run(tc.name, func(b *testing.B) {
			e := echo.New()
			e.Use(tc.mw)
			e.GET("/hello/:name", hello)
			req := httptest.NewRequest(http.MethodGet, "/hello/world", nil)
			rec := httptest.NewRecorder()
			b.ReportAllocs()
			for range b.N {
				e.ServeHTTP(rec, req)
			}
		})
	}
}

// window completes one window at now, of requests that each took rtt.
func window(l *limiter, now time.Time, rtt time.Duration) {
	l.peak.Store(initialLimit)
	l.sum.Store(int64(rtt) * limitWindow)
	l.update(now)
}

// While the runtime queues goroutines, the limit is capped at the
// concurrency of the service at its best (most requests per second times
// the lowest latency); the cap holds while requests are shed, and lifts
// once capHold has passed without queueing or shedding, on the next window
// or on the next request over it.
func TestLimiter_RuntimeQueueCaps(t *testing.T) {
	l := newLimiter(0)
	var queue time.Duration
	l.queued = func() time.Duration { return queue }
	now := time.Now() // lift compares the cap's end with the clock
	for range 5 {     // 50 requests every 10 ms: 5,000/s, 2 ms each
		now = now.Add(10 * time.Millisecond)
		window(l, now, 2*time.Millisecond)
	}
	assert.GreaterOrEqual(t, l.limit.Load(), int64(initialLimit), "no queue, no cap")

	queue = 50 * time.Millisecond // handlers hold every CPU; requests wait before them
	now = now.Add(10 * time.Millisecond)
	window(l, now, 4*time.Millisecond)
	assert.EqualValues(t, 10, l.limit.Load(), "5,000/s × 2 ms = 10 in flight")

	queue = 0
	for range 3 { // shedding keeps the cap
		l.shed.Add(1)
		now = now.Add(capHold / 2)
		window(l, now, 2*time.Millisecond)
		assert.EqualValues(t, 10, l.limit.Load(), "still shedding: the cap holds")
	}
	now = now.Add(capHold)
	window(l, now, 2*time.Millisecond)
	assert.Greater(t, l.limit.Load(), int64(10), "a calm window lifts the cap")

	queue = 50 * time.Millisecond
	now = now.Add(10 * time.Millisecond)
	window(l, now, 2*time.Millisecond)
	require.EqualValues(t, 10, l.limit.Load())
	for range 10 {
		require.True(t, l.acquire())
	}
	assert.False(t, l.acquire(), "over the cap: shed")
	l.capEnds.Store(time.Now().Add(-time.Millisecond).UnixNano()) // its time is up, no window since
	assert.True(t, l.acquire(), "a request over a cap whose time is up lifts it")
	assert.Greater(t, l.limit.Load(), int64(10))
}

// A cap measured below the Ps left to handlers is raised to them: a
// service held to one request at once serves one request's worth a
// second, which would measure the same cap again.
func TestLimiter_RuntimeQueueCapFloor(t *testing.T) {
	l := newLimiter(0)
	l.minCap = 3
	l.queued = func() time.Duration { return 50 * time.Millisecond }
	now := time.Now()
	for range 5 { // 50 requests every 100 ms, 2 ms each: 1 in flight
		now = now.Add(100 * time.Millisecond)
		window(l, now, 2*time.Millisecond)
	}
	assert.EqualValues(t, 3, l.limit.Load(), "500/s × 2 ms = 1 in flight, raised to the Ps")
}
