package breaker

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/flotilla-go/flotilla/internal/neterr"
)

// Defaults of Transport.
const (
	// DefaultRetries is how many times a failed idempotent request is
	// retried: 2, so at most 3 attempts.
	DefaultRetries = 2
	// DefaultAttemptTimeout bounds each attempt, reading the response
	// body included. The caller's context bounds the whole call.
	DefaultAttemptTimeout = 2 * time.Second
	// DefaultRetryBackoff is the cap of the first retry's delay; each
	// retry doubles it up to DefaultMaxRetryBackoff. The delay itself is
	// drawn uniformly below the cap ("full jitter").
	DefaultRetryBackoff = 100 * time.Millisecond
	// DefaultMaxRetryBackoff caps a retry's delay.
	DefaultMaxRetryBackoff = 2 * time.Second
	// DefaultIdleTimeout is how long the breaker of a host that gets no
	// calls is kept (when closed) before it is dropped.
	DefaultIdleTimeout = 10 * time.Minute
	// maxDrain bounds how much of a failed response's body is read so that
	// its connection can be reused.
	maxDrain = 64 << 10
)

// TransportOption configures Transport and NewClient. Breaker options go
// through WithBreaker; a TransportOption passed to New does not compile.
type TransportOption func(*transportSettings)

type transportSettings struct {
	breaker        []Option // for every host's breaker
	retries        int
	attemptTimeout time.Duration
	backoffFirst   time.Duration
	backoffMax     time.Duration
	idle           time.Duration
	maxRetryAfter  time.Duration // 0: the breaker's maximum open time
	retryRatio     float64
	retryFloor     float64
	deadlineHeader string
	classify       func(*http.Response, error) Outcome
}

func defaultTransportSettings() transportSettings {
	return transportSettings{
		retries:        DefaultRetries,
		attemptTimeout: DefaultAttemptTimeout,
		backoffFirst:   DefaultRetryBackoff,
		backoffMax:     DefaultMaxRetryBackoff,
		idle:           DefaultIdleTimeout,
		classify:       Classify,
		retryRatio:     DefaultRetryRatio,
		retryFloor:     DefaultRetryFloor,
	}
}

// WithRetryBudget bounds the retries to each host: each request earns ratio
// of a retry, and floor retries a second are allowed whatever the traffic
// (defaults DefaultRetryRatio, 20% more requests at most, and
// DefaultRetryFloor, 10 a second). Beyond it a failed attempt is not
// retried, and the *CallError says "retry budget exhausted". Retries of
// many callers then cannot multiply the load on a host that is failing.
func WithRetryBudget(ratio, floor float64) TransportOption {
	return func(s *transportSettings) { s.retryRatio, s.retryFloor = max(ratio, 0), max(floor, 0) }
}

// WithBreaker sets the options of every host's breaker, such as
// WithConsecutiveFailures or WithClock (default: New's defaults, named
// after the host).
func WithBreaker(opts ...Option) TransportOption {
	return func(s *transportSettings) { s.breaker = append(s.breaker, opts...) }
}

// WithMaxRetryAfter caps how long a Retry-After from a target (seconds or
// an HTTP date) keeps its breaker open and makes a retry wait (default: the
// breaker's maximum open time, DefaultMaxOpenTimeout unless
// WithMaxOpenTimeout says otherwise). Without a cap, one answer of
// "Retry-After: 100000" would shut a host out for more than a day.
func WithMaxRetryAfter(d time.Duration) TransportOption {
	return func(s *transportSettings) { s.maxRetryAfter = max(d, 0) }
}

// WithRetries sets how many times Transport retries a failed idempotent
// request (default DefaultRetries). Zero turns retries off.
func WithRetries(n int) TransportOption {
	return func(s *transportSettings) { s.retries = max(n, 0) }
}

// WithAttemptTimeout bounds each attempt of Transport (default
// DefaultAttemptTimeout), reading the response body included: an attempt
// that outlives d is ended then, and its error matches
// context.DeadlineExceeded. Its context has no Deadline (see
// startAttempt). Zero leaves only the caller's context.
func WithAttemptTimeout(d time.Duration) TransportOption {
	return func(s *transportSettings) { s.attemptTimeout = max(d, 0) }
}

// WithDeadlineHeader makes every attempt carry, in the header name, the
// whole milliseconds left before it ends when it starts: the caller's
// deadline or the attempt timeout, whichever comes first (none without
// either). A retry so sends what is left for it, not what the first attempt
// had. The request is copied to set it only when the value it carries
// differs. Default: no such header. The platform package sets
// X-Flotilla-Budget-Ms with it.
func WithDeadlineHeader(name string) TransportOption {
	return func(s *transportSettings) { s.deadlineHeader = http.CanonicalHeaderKey(name) }
}

// WithRetryBackoff sets the cap of the first retry delay and the largest
// cap (defaults DefaultRetryBackoff and DefaultMaxRetryBackoff).
func WithRetryBackoff(first, max time.Duration) TransportOption {
	return func(s *transportSettings) {
		if first > 0 {
			s.backoffFirst = first
		}
		if max >= s.backoffFirst {
			s.backoffMax = max
		}
	}
}

// WithIdleTimeout sets how long an unused host's breaker is kept (default
// DefaultIdleTimeout).
func WithIdleTimeout(d time.Duration) TransportOption {
	return func(s *transportSettings) {
		if d > 0 {
			s.idle = d
		}
	}
}

// WithClassifier replaces Classify, which decides what a response or an
// error means to the breaker and whether to retry (only Failure is
// retried).
func WithClassifier(f func(*http.Response, error) Outcome) TransportOption {
	return func(s *transportSettings) { s.classify = f }
}

// Classify is the default classifier of Transport: a transport error
// (a timed-out attempt included), a 5xx and a 429 are failures; a 4xx other
// than 429 is neutral (the caller's mistake says nothing of the target's
// health); anything else is a success.
func Classify(res *http.Response, err error) Outcome {
	switch {
	case err != nil:
		return Failure
	case res.StatusCode >= 500 || res.StatusCode == http.StatusTooManyRequests:
		return Failure
	case res.StatusCode >= 400:
		return Neutral
	}
	return Success
}

// Transport is an http.RoundTripper with one breaker per target host; see
// NewTransport. It is safe for concurrent use.
type Transport struct {
	base http.RoundTripper
	s    settings          // of every host's breaker, but its name
	ts   transportSettings // of the transport

	mu        sync.Mutex                              // taken to change hosts and to sweep
	hosts     atomic.Pointer[map[string]*hostBreaker] // copied on change, so lookups take no lock
	lastSweep atomic.Int64                            // unix nanoseconds
}

// NewTransport returns a Transport that sends requests through base
// (http.DefaultTransport if nil) with one breaker per target host (the
// request URL's host: the service name when base dials services by name).
// A breaker is made on a host's first call and dropped, if closed, after
// DefaultIdleTimeout without calls (up to half as long again: calls read no
// clock, so idleness is noticed by a sweep that runs at most twice per
// timeout, when a new host or one call in 1024 finds it due).
//
// A refused call fails at once with a *CallError wrapping the breaker's
// *OpenError. A failed attempt (see Classify) of an idempotent request —
// GET, HEAD, OPTIONS, PUT, DELETE, TRACE, or any request with an
// Idempotency-Key header — whose body can be sent again (none, or GetBody
// set) is retried up to DefaultRetries times after an exponential, fully
// jittered delay; a POST without Idempotency-Key is never retried. A 429
// or 503 with Retry-After waits that long instead when the caller's deadline
// allows it, and otherwise gives up at once, saying so. Each attempt is
// bounded by DefaultAttemptTimeout, and the whole call by the request's
// context. Bodies of failed attempts are drained (up to 64 KiB) and closed
// so connections are reused.
//
// When the last attempt got a response, that response is returned with a
// nil error, as http.Client does for any status; when it got an error, the
// error is a *CallError listing every attempt. A 101 Switching Protocols
// response (a WebSocket, say) ends the attempt: its body, the connection,
// is the caller's to use for as long as it likes.
func NewTransport(base http.RoundTripper, opts ...TransportOption) *Transport {
	ts := defaultTransportSettings()
	for _, o := range opts {
		o(&ts)
	}
	s := defaultSettings()
	for _, o := range ts.breaker {
		o(&s)
	}
	if base == nil {
		base = http.DefaultTransport
	}
	t := &Transport{base: base, s: s, ts: ts}
	t.hosts.Store(&map[string]*hostBreaker{})
	t.lastSweep.Store(s.clock.Now().UnixNano())
	return t
}

// NewClient returns an *http.Client whose transport is NewTransport(base,
// opts...). It sets no Client.Timeout: use the request's context.
func NewClient(base http.RoundTripper, opts ...TransportOption) *http.Client {
	return &http.Client{Transport: NewTransport(base, opts...)}
}

func idempotent(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace:
	default:
		if req.Header.Get("Idempotency-Key") == "" {
			return false
		}
	}
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// AttemptTimeout returns the bound on each attempt (WithAttemptTimeout); 0
// when there is none.
func (t *Transport) AttemptTimeout() time.Duration { return t.ts.attemptTimeout }

// AttemptBudget returns how long an attempt starting now may take: what is
// left of ctx's deadline, or timeout (0: none), whichever is shorter; ok is
// false when neither bounds it.
func AttemptBudget(ctx context.Context, timeout time.Duration) (left time.Duration, ok bool) {
	left, ok = timeout, timeout > 0
	// Context deadlines are on the system clock, whatever Clock says.
	if dl, has := ctx.Deadline(); has {
		if d := time.Until(dl); !ok || d < left {
			left, ok = max(d, 0), true
		}
	}
	return left, ok
}

// withDeadlineHeader returns r with the whole milliseconds of left in the
// header name, copying r (and its header) only when it carries another
// value; r itself when ok is false.
func withDeadlineHeader(r *http.Request, name string, left time.Duration, ok bool) *http.Request {
	if !ok {
		return r
	}
	ms := left.Milliseconds()
	if vs := r.Header[name]; len(vs) == 1 {
		if n, err := strconv.ParseInt(vs[0], 10, 64); err == nil && n == ms {
			return r
		}
	}
	c := r.WithContext(r.Context())
	c.Header = r.Header.Clone()
	if c.Header == nil {
		c.Header = http.Header{}
	}
	c.Header.Set(name, strconv.FormatInt(ms, 10))
	return c
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	clock := t.s.clock
	ctx := req.Context()
	h := t.host(req.URL.Host)
	b := h.b
	ts := &t.ts
	h.retries.deposit()
	maxAttempts := 1
	if ts.retries > 0 && idempotent(req) {
		maxAttempts += ts.retries
	}
	var (
		attempts []string
		bo       *backoff.ExponentialBackOff
		lastErr  error
	)
	for n := 1; ; n++ {
		done, err := b.Allow()
		if err != nil {
			attempts = append(attempts, err.Error())
			return nil, &CallError{Name: b.s.name, Attempts: attempts, Err: err}
		}
		r := req
		if n > 1 && req.Body != nil && req.Body != http.NoBody {
			body, err := req.GetBody()
			if err != nil {
				done(Neutral)
				attempts = append(attempts, "rewind body: "+err.Error())
				return nil, &CallError{Name: b.s.name, Attempts: attempts, Err: err}
			}
			r = req.Clone(ctx)
			r.Body = body
		}
		actx, end := ctx, func() {}
		if ts.attemptTimeout > 0 {
			actx, end = startAttempt(ctx, ts.attemptTimeout)
			r = r.WithContext(actx)
		}
		if ts.deadlineHeader != "" {
			left, ok := AttemptBudget(ctx, ts.attemptTimeout)
			r = withDeadlineHeader(r, ts.deadlineHeader, left, ok)
		}
		res, err := t.base.RoundTrip(r)
		if err != nil && context.Cause(actx) == errAttemptTimeout {
			err = fmt.Errorf("%w: %w", errAttemptTimeout, err)
		}
		outcome := ts.classify(res, err)
		if err != nil && ctx.Err() != nil {
			outcome = Neutral // the caller gave up
		}
		var retryAfter time.Duration
		if res != nil && (res.StatusCode == http.StatusTooManyRequests || res.StatusCode == http.StatusServiceUnavailable) {
			retryAfter = parseRetryAfter(res.Header.Get("Retry-After"), clock.Now())
			cap := ts.maxRetryAfter
			if cap == 0 {
				cap = t.s.maxOpen
			}
			retryAfter = min(retryAfter, cap)
			b.RetryAfter(retryAfter)
		}
		done(outcome)
		if outcome != Failure || n >= maxAttempts {
			if err != nil {
				end()
				if outcome != Failure && n == 1 {
					return nil, err
				}
				attempts = append(attempts, describe(err, ctx, ts.attemptTimeout))
				return nil, &CallError{Name: b.s.name, Attempts: attempts, Err: err}
			}
			if res.StatusCode == http.StatusSwitchingProtocols || ts.attemptTimeout == 0 {
				// The body is the connection now (a WebSocket, say), and
				// the caller's: the attempt and its timeout end here, and
				// the body stays as it is, an io.ReadWriteCloser.
				end()
			} else {
				res.Body = &attemptBody{ReadCloser: res.Body, ctx: actx, end: end}
			}
			return res, nil
		}
		// A failed attempt that will be retried.
		if err != nil {
			attempts = append(attempts, describe(err, ctx, ts.attemptTimeout))
			lastErr = err
		} else {
			attempts = append(attempts, res.Status)
			lastErr = nil
			drain(res.Body)
		}
		end()
		if !h.retries.withdraw(clock.Now()) {
			return nil, &CallError{Name: b.s.name, Attempts: attempts, Err: lastErr,
				Note: fmt.Sprintf("retry budget exhausted: retries to this host are held to %.0f%% of its requests plus %g a second", 100*ts.retryRatio, ts.retryFloor)}
		}
		var delay time.Duration
		if retryAfter > 0 {
			delay = retryAfter
			// Context deadlines are on the system clock, whatever Clock says.
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) < delay {
				return nil, &CallError{Name: b.s.name, Attempts: attempts, Err: lastErr,
					Note: fmt.Sprintf("gave up: Retry-After %v is past the caller's deadline", delay)}
			}
		} else {
			if bo == nil {
				bo = backoff.NewExponentialBackOff()
				bo.InitialInterval = ts.backoffFirst
				bo.MaxInterval = ts.backoffMax
				bo.Multiplier = 2
				bo.RandomizationFactor = 0 // full jitter is applied below
				bo.MaxElapsedTime = 0      // bounded by the attempt count and the caller's context
				bo.Reset()
			}
			delay = time.Duration(rand.Int64N(int64(bo.NextBackOff()) + 1))
		}
		if err := wait(ctx, clock, delay); err != nil {
			return nil, &CallError{Name: b.s.name, Attempts: attempts, Err: err, Note: "caller gave up while waiting to retry"}
		}
	}
}

func wait(ctx context.Context, clock Clock, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	ch := make(chan struct{})
	stop := clock.AfterFunc(d, func() { close(ch) })
	defer stop()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// describe names an attempt's error the way an operator reads it.
func describe(err error, caller context.Context, timeout time.Duration) string {
	if caller.Err() != nil {
		return "canceled by the caller: " + caller.Err().Error()
	}
	return neterr.Describe(err, timeout)
}

// parseRetryAfter reads a Retry-After value: seconds, or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		return time.Duration(max(secs, 0)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// errAttemptTimeout is the cause of an attempt's context that outlived the
// attempt timeout; errors of such an attempt wrap it, and so match
// context.DeadlineExceeded.
var errAttemptTimeout = fmt.Errorf("breaker: attempt timeout: %w", context.DeadlineExceeded)

// startAttempt returns the context of one attempt: ctx, canceled by end or
// with the cause errAttemptTimeout after timeout. It is not a context with
// a deadline on purpose: net/http does per-request work for a context that
// has one which costs more than the rest of the transport, measured in
// BenchmarkTransportLoopback; a timer that cancels does the same job.
func startAttempt(ctx context.Context, timeout time.Duration) (context.Context, func()) {
	actx, cancel := context.WithCancelCause(ctx)
	timer := time.AfterFunc(timeout, func() { cancel(errAttemptTimeout) })
	return actx, func() {
		timer.Stop()
		cancel(context.Canceled)
	}
}

// attemptBody is the body of an attempt's response: reading it is bounded
// by the attempt timeout, and closing it ends the attempt.
type attemptBody struct {
	io.ReadCloser
	ctx context.Context
	end func()
}

func (b *attemptBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && context.Cause(b.ctx) == errAttemptTimeout {
		err = fmt.Errorf("%w: %w", errAttemptTimeout, err)
	}
	return n, err
}

func (b *attemptBody) Close() error {
	err := b.ReadCloser.Close()
	b.end()
	return err
}

func drain(body io.ReadCloser) {
	io.Copy(io.Discard, io.LimitReader(body, maxDrain))
	body.Close()
}
