// Package health answers /health in the IETF health-check format
// (draft-inadarei-api-health-check-06) and watches a fleet of services with a
// Monitor that sends one alert per change of the fleet's state.
package health

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// DefaultCacheTTL is how long a health result is reused before the checks
// run again.
const DefaultCacheTTL = time.Second

// Health is a service's health endpoint: its checks, their cached result,
// and the shutdown switch. It is safe for concurrent use.
type Health struct {
	service     string
	version     string
	releaseID   string
	description string
	notes       []string
	ttl         time.Duration
	hideDetails bool
	now         func() time.Time
	started     time.Time

	mu       sync.Mutex
	checks   []Check
	cached   *Response
	cachedAt time.Time
	inflight chan struct{} // closed when the running evaluation ends
	shutdown bool
}

// An Option changes a default of New.
type Option func(*Health)

// WithVersion sets the version reported in "version" (default empty, left
// out).
func WithVersion(v string) Option { return func(h *Health) { h.version = v } }

// WithReleaseID sets the release reported in "releaseId" (default empty,
// left out).
func WithReleaseID(id string) Option { return func(h *Health) { h.releaseID = id } }

// WithDescription sets "description" (default empty, left out).
func WithDescription(d string) Option { return func(h *Health) { h.description = d } }

// WithNotes sets "notes" (default none).
func WithNotes(notes ...string) Option { return func(h *Health) { h.notes = notes } }

// WithCacheTTL sets how long a result is reused (default DefaultCacheTTL).
// Zero runs the checks on every request, still sharing one run between
// concurrent requests.
func WithCacheTTL(d time.Duration) Option {
	return func(h *Health) {
		if d >= 0 {
			h.ttl = d
		}
	}
}

// WithHideDetails leaves the outputs of checks, and of the service unless it
// is shutting down, out of responses, for services reachable beyond
// loopback (default: details shown).
func WithHideDetails() Option { return func(h *Health) { h.hideDetails = true } }

// Clock is a source of time: the Now half of breaker.Clock, so that one
// clock, a test's fake say, serves every package that takes one.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
}

// WithClock sets the clock used for uptime, check times and caching
// (default: the system clock).
func WithClock(c Clock) Option { return func(h *Health) { h.now = c.Now } }

// New returns the health endpoint of the named service. It always reports
// the "uptime" check (componentType "system", seconds since New); add more
// with Add.
func New(service string, opts ...Option) *Health {
	h := &Health{service: service, ttl: DefaultCacheTTL, now: time.Now}
	for _, o := range opts {
		o(h)
	}
	h.started = h.now()
	return h
}

// Add adds a check. It panics on a check without Component or Run, or with
// a colon in its Component or Measurement: those are programming errors,
// found on the first start.
func (h *Health) Add(c Check) {
	if err := c.validate(); err != nil {
		panic(err)
	}
	h.mu.Lock()
	h.checks = append(h.checks, c)
	h.cached = nil
	h.mu.Unlock()
}

// SetShuttingDown makes every later answer, liveness included, fail with
// output "shutting down", so that a proxy stops sending traffic while the
// service drains.
func (h *Health) SetShuttingDown() {
	h.mu.Lock()
	h.shutdown = true
	h.mu.Unlock()
}

// Check runs the checks, or reuses a result younger than the cache TTL, and
// returns the service's health. Concurrent callers share one run.
func (h *Health) Check(ctx context.Context) Response {
	for {
		h.mu.Lock()
		if h.shutdown {
			h.mu.Unlock()
			return h.shuttingDown()
		}
		if h.cached != nil && h.now().Sub(h.cachedAt) < h.ttl {
			r := *h.cached
			h.mu.Unlock()
			return r
		}
		if wait := h.inflight; wait != nil {
			h.mu.Unlock()
			select {
			case <-wait:
				h.mu.Lock()
				r := h.cached
				h.mu.Unlock()
				if r != nil {
					return *r
				}
				continue // the run was dropped by Add: run again
			case <-ctx.Done():
				return Response{Status: Fail, ServiceID: h.service, Output: ctx.Err().Error()}
			}
		}
		done := make(chan struct{})
		h.inflight = done
		checks := append([]Check(nil), h.checks...)
		h.mu.Unlock()

		// The shared run is not bound to one caller's context.
		r := h.evaluate(context.WithoutCancel(ctx), checks)

		h.mu.Lock()
		h.cached, h.cachedAt = &r, h.now()
		h.inflight = nil
		close(done)
		h.mu.Unlock()
		return r
	}
}

// evaluate runs checks concurrently, each bounded by its own timeout.
func (h *Health) evaluate(ctx context.Context, checks []Check) Response {
	now := h.now()
	r := h.base()
	r.Status = Pass
	r.Checks = map[string][]CheckResult{
		"uptime": {{
			ComponentType: "system",
			ObservedValue: now.Sub(h.started).Seconds(),
			ObservedUnit:  "s",
			Status:        Pass,
			Time:          now.UTC().Format(time.RFC3339),
		}},
	}
	type result struct {
		key    string
		res    CheckResult
		status Status
	}
	results := make([]result, len(checks))
	var wg sync.WaitGroup
	for i := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, st := checks[i].run(ctx, now)
			results[i] = result{checks[i].Key(), res, st}
		}()
	}
	wg.Wait()
	var outputs []string
	for _, x := range results {
		if h.hideDetails {
			x.res.Output = ""
		}
		r.Checks[x.key] = append(r.Checks[x.key], x.res)
		r.Status = worse(r.Status, x.status)
		if x.status != Pass {
			text := x.res.Output
			if text == "" {
				text = string(x.res.Status)
			}
			outputs = append(outputs, x.key+": "+text)
		}
	}
	if r.Status != Pass && !h.hideDetails {
		r.Output = strings.Join(outputs, "; ")
	}
	return r
}

func (h *Health) base() Response {
	return Response{
		Version:     h.version,
		ReleaseID:   h.releaseID,
		Notes:       h.notes,
		ServiceID:   h.service,
		Description: h.description,
	}
}

func (h *Health) shuttingDown() Response {
	r := h.base()
	r.Status = Fail
	r.Output = "shutting down"
	return r
}

// Live returns the liveness answer: pass without running any check, or
// fail once SetShuttingDown was called.
func (h *Health) Live() Response {
	h.mu.Lock()
	down := h.shutdown
	h.mu.Unlock()
	if down {
		return h.shuttingDown()
	}
	r := h.base()
	r.Status = Pass
	return r
}

// ServeHTTP answers with Check (readiness), as application/health+json:
// HTTP 200 for pass and warn, 503 for fail. Cache-Control allows reuse for
// as long as the result is cached. Liveness is LiveHTTP; which path serves
// which is the caller's to route.
func (h *Health) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	res := h.Check(r.Context())
	if secs := int(h.ttl / time.Second); secs > 0 && res.Status != Fail {
		w.Header().Set("Cache-Control", "max-age="+strconv.Itoa(secs))
	} else {
		w.Header().Set("Cache-Control", "no-store")
	}
	h.write(w, r, res)
}

// LiveHTTP returns the liveness endpoint: Live, as application/health+json,
// never cached; 200 while the process runs, 503 once it shuts down.
func (h *Health) LiveHTTP() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		h.write(w, r, h.Live())
	})
}

func (h *Health) write(w http.ResponseWriter, r *http.Request, res Response) {
	body, err := json.Marshal(res)
	if err != nil {
		// An observed value that does not encode: report it rather than
		// send half a document.
		res = Response{Status: Fail, ServiceID: h.service, Output: "encode health response: " + err.Error()}
		body, _ = json.Marshal(res)
	}
	w.Header().Set("Content-Type", MediaType)
	code := http.StatusOK
	if res.Status == Fail {
		code = http.StatusServiceUnavailable
	}
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// Handler returns ServeHTTP (readiness, every check) as an echo handler;
// LiveHandler is liveness:
//
//	app.GET("/health", h.Handler())
//	app.GET("/health/live", h.LiveHandler())
func (h *Health) Handler() echo.HandlerFunc { return echo.WrapHandler(h) }

// LiveHandler returns LiveHTTP as an echo handler.
func (h *Health) LiveHandler() echo.HandlerFunc { return echo.WrapHandler(h.LiveHTTP()) }
