package platform

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"runtime"
	"runtime/metrics"
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
	// queueTarget is how long the slowest tenth of goroutines may wait
	// to run, over a window, before the runtime counts as queueing.
	queueTarget = 5 * time.Millisecond
	// capWindows is how many windows the queueing cap's measurements of
	// throughput and latency cover.
	capWindows = 20
	// capHold is how long the cap stays after the last window that
	// queued or shed.
	capHold = time.Second
)

// limiter bounds the requests a service runs at once. Adaptive, it finds
// the limit from measured latency: every limitWindow finished requests it
// compares their mean latency (short) with the long-term mean (long). While
// short stays within rttTolerance of long the limit grows by about its
// square root (a queue worth of headroom); when requests get slower, it
// shrinks in proportion, down to half per window. A service that queues
// requests internally (a slow disk, a lock) thus runs fewer at once instead
// of making every one wait.
//
// A queue the handlers never see is caught apart: when the CPU is what is
// short, requests wait before they reach the handler, as runnable
// goroutines, and the latency measured inside it does not move. While the
// runtime queues (the slowest tenth of the window's goroutines waited more
// than queueTarget to run), the limit is also capped at the concurrency of
// the service at its best, by Little's law: the most requests per second of
// the last capWindows windows times the lowest mean latency among them,
// and never below the Ps left to handlers (GOMAXPROCS less the one Run
// adds), which a CPU-bound handler can always use: a cap measured lower
// would hold itself there, since fewer requests at once make fewer
// requests per second. For a CPU-bound handler that is about the number of
// cores, so a P is left to read and refuse the rest (see Run on
// GOMAXPROCS). The cap holds until capHold has passed without queueing or
// shedding.
//
// A request over the limit is shed: answered 503 with Retry-After at once,
// without its handler. Fixed, the limit is a number that does not move.
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
	uncapped         atomic.Int64 // the limit without the queueing cap
	capEnds          atomic.Int64 // when the queueing cap lifts unless renewed (unix ns); 0 without one

	mu      sync.Mutex
	exact   float64 // the limit, unrounded
	longRTT float64 // ns
	// queued returns how long the slowest tenth of goroutines waited to
	// run since its last call (schedWatch).
	queued    func() time.Duration
	windowEnd time.Time                          // when the last window ended
	windows   [capWindows]struct{ x, r float64 } // requests per ns, mean latency (ns)
	next      int                                // the next of windows to write
	capUntil  time.Time                          // the cap holds until then
	shedSeen  uint64                             // l.shed at the last window
	minCap    int64                              // the lowest cap: the Ps left to handlers
}

func newLimiter(fixed int) *limiter {
	l := &limiter{fixed: fixed > 0, exact: initialLimit, queued: newSchedWatch().slowTenth,
		minCap: int64(max(1, runtime.GOMAXPROCS(0)-int(shedRoom.Load())))}
	if l.fixed {
		l.exact = float64(fixed)
	}
	l.limit.Store(int64(l.exact))
	return l
}

// acquire takes a place for a request, or reports that it must be shed.
func (l *limiter) acquire() bool {
	n := l.inflight.Add(1)
	if n > l.limit.Load() && !l.lift(n) {
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

// lift ends a queueing cap whose time is up, which no finished window may
// do when the traffic paused, and reports whether n requests in flight then
// fit.
func (l *limiter) lift(n int64) bool {
	end := l.capEnds.Load()
	if end == 0 || time.Now().UnixNano() < end || !l.capEnds.CompareAndSwap(end, 0) {
		return false
	}
	u := l.uncapped.Load()
	l.limit.Store(u) // the next window stores its own view
	return n <= u
}

// release gives the place back, with the request's latency.
func (l *limiter) release(rtt time.Duration) {
	l.inflight.Add(-1)
	if l.fixed {
		return
	}
	l.sum.Add(int64(rtt))
	if l.count.Add(1)%limitWindow == 0 {
		l.update(time.Now())
	}
}

// update turns the window that ended at now into a new limit.
func (l *limiter) update(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	sum, peak := l.sum.Swap(0), l.peak.Swap(0)
	short := float64(sum) / limitWindow
	if short <= 0 {
		return
	}
	capped := l.queueCap(now, short)
	defer func() {
		limit := int64(l.exact)
		l.uncapped.Store(limit)
		if capped > 0 && capped < limit {
			l.limit.Store(capped)
			l.capEnds.Store(l.capUntil.UnixNano())
		} else {
			l.limit.Store(limit)
			l.capEnds.Store(0)
		}
	}()
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
}

// queueCap records the window that ended at now, with mean latency short
// (ns), and returns the cap on the limit while the runtime queues, 0 when
// none holds.
func (l *limiter) queueCap(now time.Time, short float64) int64 {
	if !l.windowEnd.IsZero() {
		if took := now.Sub(l.windowEnd); took > 0 {
			l.windows[l.next%capWindows] = struct{ x, r float64 }{limitWindow / float64(took), short}
			l.next++
		}
	}
	l.windowEnd = now
	shed := l.shed.Load()
	if l.queued() > queueTarget || (shed != l.shedSeen && now.Before(l.capUntil)) {
		l.capUntil = now.Add(capHold)
	}
	l.shedSeen = shed
	if !now.Before(l.capUntil) || l.next == 0 {
		return 0
	}
	maxX, minR := 0.0, math.Inf(1)
	for _, w := range l.windows[:min(l.next, capWindows)] {
		maxX, minR = math.Max(maxX, w.x), math.Min(minR, w.r)
	}
	return max(l.minCap, int64(math.Round(maxX*minR)))
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

// schedWatch reads the runtime's scheduler latencies: how long goroutines
// were runnable before they ran.
type schedWatch struct {
	sample []metrics.Sample
	prev   []uint64
}

func newSchedWatch() *schedWatch {
	return &schedWatch{sample: []metrics.Sample{{Name: "/sched/latencies:seconds"}}}
}

// slowTenth returns the latency that the slowest tenth of the goroutines
// scheduled since its last call waited at least (the lower bound of the
// bucket), 0 if none was.
func (w *schedWatch) slowTenth() time.Duration {
	metrics.Read(w.sample)
	if w.sample[0].Value.Kind() != metrics.KindFloat64Histogram {
		return 0
	}
	h := w.sample[0].Value.Float64Histogram()
	if len(w.prev) != len(h.Counts) {
		w.prev = make([]uint64, len(h.Counts))
	}
	var all uint64
	for i, c := range h.Counts {
		all += c - w.prev[i]
	}
	var seen uint64
	slow := time.Duration(0)
	for i, c := range h.Counts {
		seen += c - w.prev[i]
		if slow == 0 && all > 0 && seen*10 >= all*9 {
			slow = time.Duration(max(0, h.Buckets[i]) * float64(time.Second))
		}
	}
	copy(w.prev, h.Counts)
	return slow
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
