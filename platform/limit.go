package platform

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/flotilla-go/flotilla/health"
	"github.com/flotilla-go/flotilla/internal/upgrade"
)

// The adaptive concurrency limit's bounds and its tuning, after the
// gradient algorithm of Netflix's concurrency-limits (Gradient2).
const (
	initialLimit = 100
	minLimit     = 10
	maxLimit     = 1000
	// limitWindow is how many finished requests make one sample of the
	// short-term latency.
	limitWindow = 50
	// longSmoothing weighs a window in the long-term latency average
	// (about the last 20 windows).
	longSmoothing = 0.05
	// limitSmoothing weighs a new limit against the current one.
	limitSmoothing = 0.2
	// rttTolerance is how much slower than the long-term latency requests
	// may get before the limit shrinks.
	rttTolerance = 1.5
	// shedWarn is how long /health warns after a request was shed.
	shedWarn = 10 * time.Second
)

// limiter bounds the requests a service runs at once. Adaptive, it finds
// the limit from measured latency: every limitWindow finished requests it
// compares their mean latency (short) with the long-term mean (long). While
// short stays within rttTolerance of long the limit grows by about its
// square root (a queue worth of headroom); when requests get slower, it
// shrinks in proportion, down to half per window. A service that queues
// requests internally (a slow disk, a lock, a CPU shared by 45 services)
// thus runs fewer at once instead of making every one wait. A request over
// the limit is shed: answered 503 with Retry-After at once, without its
// handler. Fixed, the limit is a number that does not move.
//
// The request path is two atomic adds and two clock reads; only the
// request that completes a window takes the lock.
type limiter struct {
	fixed    bool
	limit    atomic.Int64 // the current limit, rounded
	inflight atomic.Int64
	shed     atomic.Uint64
	lastShed atomic.Int64 // unix nanoseconds

	sum, count, peak atomic.Int64 // the window: latency sum (ns), requests, most in flight

	mu      sync.Mutex
	exact   float64 // the limit, unrounded
	longRTT float64 // ns
}

func newLimiter(fixed int) *limiter {
	l := &limiter{fixed: fixed > 0, exact: initialLimit}
	if l.fixed {
		l.exact = float64(fixed)
	}
	l.limit.Store(int64(l.exact))
	return l
}

// acquire takes a place for a request, or reports that it must be shed.
func (l *limiter) acquire() bool {
	n := l.inflight.Add(1)
	if n > l.limit.Load() {
		l.inflight.Add(-1)
		l.shed.Add(1)
		l.lastShed.Store(time.Now().UnixNano())
		return false
	}
	if n > l.peak.Load() {
		l.peak.Store(n) // a race may lose one peak; the next request sets it
	}
	return true
}

// release gives the place back, with the request's latency.
func (l *limiter) release(rtt time.Duration) {
	l.inflight.Add(-1)
	if l.fixed {
		return
	}
	l.sum.Add(int64(rtt))
	if l.count.Add(1)%limitWindow == 0 {
		l.update()
	}
}

// update turns the window into a new limit.
func (l *limiter) update() {
	l.mu.Lock()
	defer l.mu.Unlock()
	sum, peak := l.sum.Swap(0), l.peak.Swap(0)
	short := float64(sum) / limitWindow
	if short <= 0 {
		return
	}
	if l.longRTT == 0 {
		l.longRTT = short
	} else {
		l.longRTT += longSmoothing * (short - l.longRTT)
	}
	if l.longRTT/short > 2 { // latency fell for good: let the average follow
		l.longRTT *= 0.95
	}
	gradient := math.Max(0.5, math.Min(1, rttTolerance*l.longRTT/short))
	next := l.exact*gradient + math.Max(4, math.Sqrt(l.exact))
	if float64(peak) < l.exact/2 {
		next = math.Min(next, l.exact) // the traffic, not the service, held it back
	}
	l.exact = math.Min(maxLimit, math.Max(minLimit, l.exact*(1-limitSmoothing)+next*limitSmoothing))
	l.limit.Store(int64(l.exact))
}

// shedding reports whether a request was shed in the last shedWarn.
func (l *limiter) shedding(now time.Time) bool {
	last := l.lastShed.Load()
	return last != 0 && now.Sub(time.Unix(0, last)) < shedWarn
}

// middleware sheds requests over the limit, except the platform's own
// routes (own) and upgraded connections, whose length is a session's.
func (l *limiter) middleware(own map[string]bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if own[c.Path()] || upgrade.Requested(c.Request().Header) {
				return next(c)
			}
			if !l.acquire() {
				c.Response().Header().Set("Retry-After", "1")
				return echo.NewHTTPError(http.StatusServiceUnavailable,
					fmt.Sprintf("shed: %d requests in flight, the limit is %d", l.inflight.Load(), l.limit.Load()))
			}
			start := time.Now()
			defer func() { l.release(time.Since(start)) }()
			return next(c)
		}
	}
}

// check is /health's view of the limit: the limit as the observed value;
// warn while requests are being shed.
func (l *limiter) check() health.Check {
	return health.Check{
		Component: "concurrency", Measurement: "limit", ComponentType: "system", ObservedUnit: "{request}",
		Run: func(context.Context) (any, error) {
			limit := l.limit.Load()
			if l.shedding(time.Now()) {
				return limit, health.Warnf("shedding: more than %d requests at once; %d shed so far", limit, l.shed.Load())
			}
			return limit, nil
		},
	}
}

// shedCount is how many requests l shed; 0 without a limiter.
func shedCount(l *limiter) uint64 {
	if l == nil {
		return 0
	}
	return l.shed.Load()
}

// parseConcurrency reads FLOTILLA_CONCURRENCY: auto, off, or a fixed
// number of requests in flight. It returns the fixed limit, 0 for auto, -1
// for off.
func parseConcurrency(v string) (int, error) {
	switch v {
	case "", "auto":
		return 0, nil
	case "off":
		return -1, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("not auto, off, or a number of requests from 1")
	}
	return n, nil
}
