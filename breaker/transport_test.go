package breaker_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/flotilla-go/flotilla/breaker"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// httptest servers keep idle keep-alive readers until closed.
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// counted is a test server that counts requests and answers with next.
type counted struct {
	*httptest.Server
	hits atomic.Int32
}

func serve(t *testing.T, h func(n int32, w http.ResponseWriter, r *http.Request)) *counted {
	t.Helper()
	c := &counted{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h(c.hits.Add(1), w, r)
	}))
	t.Cleanup(c.Close)
	return c
}

func client(t *testing.T, opts ...breaker.TransportOption) *http.Client {
	t.Helper()
	base := &http.Transport{}
	t.Cleanup(base.CloseIdleConnections)
	opts = append([]breaker.TransportOption{breaker.WithRetryBackoff(time.Millisecond, 2*time.Millisecond)}, opts...)
	return breaker.NewClient(base, opts...)
}

func get(ctx context.Context, c *http.Client, url string) (*http.Response, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	return c.Do(req)
}

func TestTransport_Healthy(t *testing.T) {
	srv := serve(t, func(_ int32, w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	c := client(t)
	for range 3 {
		res, err := get(context.Background(), c, srv.URL)
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		assert.Equal(t, "ok", string(body))
	}
	assert.Equal(t, int32(3), srv.hits.Load())
	set := c.Transport.(*breaker.Transport)
	b := set.Breaker(strings.TrimPrefix(srv.URL, "http://"))
	require.NotNil(t, b, "one breaker per host")
	assert.Equal(t, breaker.Closed, b.Snapshot().State)
	assert.Len(t, set.Breakers(), 1)
}

// GET is retried; the last response is returned as it is.
func TestTransport_RetriesGET(t *testing.T) {
	srv := serve(t, func(n int32, w http.ResponseWriter, _ *http.Request) {
		if n < 3 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "third time")
	})
	res, err := get(context.Background(), client(t), srv.URL)
	require.NoError(t, err)
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	assert.Equal(t, "third time", string(body))
	assert.Equal(t, int32(3), srv.hits.Load())
}

func TestTransport_NeverRetriesPlainPOST(t *testing.T) {
	srv := serve(t, func(_ int32, w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "busy", http.StatusServiceUnavailable)
	})
	res, err := client(t).Post(srv.URL, "text/plain", strings.NewReader("pay 10"))
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
	assert.Equal(t, int32(1), srv.hits.Load())
}

func TestTransport_RetriesPOSTWithIdempotencyKey(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	srv := serve(t, func(n int32, w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b)+"|"+r.Header.Get("Idempotency-Key"))
		mu.Unlock()
		if n == 1 {
			http.Error(w, "busy", http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(`{"amount":10}`))
	req.Header.Set("Idempotency-Key", "k-123")
	res, err := client(t).Do(req)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusCreated, res.StatusCode)
	assert.Equal(t, []string{`{"amount":10}|k-123`, `{"amount":10}|k-123`}, bodies, "the same body twice")
}

// A 503 with Retry-After waits that long when the deadline allows it.
func TestTransport_RetryAfterWithinDeadline(t *testing.T) {
	srv := serve(t, func(n int32, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	clk := newFakeClock()
	waited := make(chan time.Duration, 1)
	go func() {
		d, ok := clk.AdvanceWhenWaiting()
		if !ok {
			d = -1
		}
		waited <- d
	}()
	res, err := get(ctx, client(t, breaker.WithBreaker(breaker.WithClock(clk))), srv.URL)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, time.Second, <-waited, "waited for Retry-After")
	assert.Equal(t, int32(2), srv.hits.Load())
}

// A Retry-After is capped at the breaker's maximum open time, or at
// WithMaxRetryAfter: one answer cannot shut a host out for a day, nor make
// a caller without a deadline sleep that long. The HTTP-date form counts
// from now.
func TestTransport_RetryAfterIsCapped(t *testing.T) {
	at := func(d time.Duration) string { return newFakeClock().Now().Add(d).Format(http.TimeFormat) }
	for _, tc := range []struct {
		name, value string
		opts        []breaker.TransportOption
		want        time.Duration
	}{
		{"seconds", "100000", nil, breaker.DefaultMaxOpenTimeout},
		{"option", "100000", []breaker.TransportOption{breaker.WithMaxRetryAfter(5 * time.Second)}, 5 * time.Second},
		{"date", at(30 * time.Second), nil, 30 * time.Second},
		{"far date", at(48 * time.Hour), nil, breaker.DefaultMaxOpenTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			srv := serve(t, func(n int32, w http.ResponseWriter, _ *http.Request) {
				if n == 1 {
					w.Header().Set("Retry-After", tc.value)
					w.WriteHeader(http.StatusServiceUnavailable)
					return
				}
				io.WriteString(w, "ok")
			})
			waited := make(chan time.Duration, 1)
			go func() {
				d, ok := clk.AdvanceWhenWaiting()
				if !ok {
					d = -1
				}
				waited <- d
			}()
			// No deadline: only the cap bounds the wait.
			res, err := get(context.Background(), client(t, append(tc.opts, breaker.WithBreaker(breaker.WithClock(clk)))...), srv.URL)
			require.NoError(t, err)
			res.Body.Close()
			assert.Equal(t, tc.want, <-waited)
		})
	}
}

// A breaker told to wait past its maximum open time opens for that time
// at most.
func TestBreaker_RetryAfterIsCapped(t *testing.T) {
	clk := newFakeClock()
	b := breaker.New(breaker.WithClock(clk), breaker.WithConsecutiveFailures(1))
	b.RetryAfter(100000 * time.Second)
	ctx := context.Background()
	ok := func(context.Context) error { return nil }
	require.Error(t, b.Execute(ctx, func(context.Context) error { return errors.New("down") }))
	require.ErrorIs(t, b.Execute(ctx, ok), breaker.ErrOpen)
	clk.Advance(breaker.DefaultMaxOpenTimeout)
	assert.NoError(t, b.Execute(ctx, ok), "a probe goes through after the maximum open time")
}

// A Retry-After past the caller's deadline gives up at once and says so.
func TestTransport_RetryAfterPastDeadline(t *testing.T) {
	srv := serve(t, func(_ int32, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "50")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := get(ctx, client(t), srv.URL)
	require.Error(t, err)
	var ce *breaker.CallError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, []string{"429 Too Many Requests"}, ce.Attempts)
	assert.Contains(t, err.Error(), "Retry-After 50s is past the caller's deadline")
	assert.NoError(t, ctx.Err(), "returned before the deadline")
	assert.Equal(t, int32(1), srv.hits.Load())
}

// A hanging target: every attempt times out, the error lists them all.
// hanging starts a server whose handler answers only when the client goes
// away or the test ends.
func hanging(t *testing.T) *counted {
	release := make(chan struct{})
	srv := serve(t, func(_ int32, w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // runs before the server's Close
	return srv
}

func TestTransport_HangingTarget(t *testing.T) {
	srv := hanging(t)
	_, err := get(context.Background(), client(t, breaker.WithAttemptTimeout(50*time.Millisecond)), srv.URL)
	require.Error(t, err)
	host := strings.TrimPrefix(srv.URL, "http://")
	var ce *breaker.CallError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, `breaker "`+host+`": 3 attempts: timeout after 50ms, timeout after 50ms, timeout after 50ms`, ce.Error())
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

// The caller's deadline bounds the whole call, retries included.
func TestTransport_CallerDeadline(t *testing.T) {
	srv := hanging(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := get(ctx, client(t), srv.URL) // attempts would allow 2 s each
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, int32(1), srv.hits.Load(), "no retry after the caller gave up")
}

func TestTransport_ResetAndRefused(t *testing.T) {
	srv := serve(t, func(_ int32, w http.ResponseWriter, _ *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			if tc, ok := conn.(*net.TCPConn); ok {
				tc.SetLinger(0) // RST instead of FIN
			}
			conn.Close()
		}
	})
	_, err := get(context.Background(), client(t), srv.URL)
	require.Error(t, err)
	var ce *breaker.CallError
	require.ErrorAs(t, err, &ce)
	assert.Len(t, ce.Attempts, 3)
	for _, a := range ce.Attempts {
		assert.Contains(t, []string{"connection reset", "connection closed before the response"}, a)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	_, err = get(context.Background(), client(t, breaker.WithRetries(1)), "http://"+addr)
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, `breaker "`+addr+`": 2 attempts: connection refused, connection refused`, ce.Error())
}

// After enough failures the breaker opens and calls fail fast without
// reaching the target; once it recovers, calls go through again.
func TestTransport_OpensAndFailsFast(t *testing.T) {
	var healthy atomic.Bool
	srv := serve(t, func(_ int32, w http.ResponseWriter, _ *http.Request) {
		if !healthy.Load() {
			http.Error(w, "down", http.StatusInternalServerError)
		}
	})
	clk := newFakeClock()
	c := client(t, breaker.WithRetries(0), breaker.WithBreaker(breaker.WithClock(clk)))
	for range 5 {
		res, err := get(context.Background(), c, srv.URL)
		require.NoError(t, err)
		res.Body.Close()
	}
	_, err := get(context.Background(), c, srv.URL)
	require.ErrorIs(t, err, breaker.ErrOpen)
	var oe *breaker.OpenError
	require.ErrorAs(t, err, &oe)
	assert.Equal(t, int32(5), srv.hits.Load(), "the open breaker did not call")

	healthy.Store(true)
	clk.Advance(2 * time.Second)
	res, err := get(context.Background(), c, srv.URL)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, breaker.Closed, c.Transport.(*breaker.Transport).Breakers()[0].State)
}

// 4xx other than 429 is neutral: it neither trips nor is retried.
func TestTransport_ClientErrorsAreNeutral(t *testing.T) {
	srv := serve(t, func(_ int32, w http.ResponseWriter, _ *http.Request) { http.NotFound(w, nil) })
	c := client(t)
	for range 10 {
		res, err := get(context.Background(), c, srv.URL)
		require.NoError(t, err)
		res.Body.Close()
	}
	assert.Equal(t, int32(10), srv.hits.Load())
	assert.Equal(t, breaker.Closed, c.Transport.(*breaker.Transport).Breakers()[0].State)
}

func TestTransport_Classifier(t *testing.T) {
	srv := serve(t, func(_ int32, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusConflict) })
	c := client(t, breaker.WithClassifier(func(res *http.Response, err error) breaker.Outcome {
		if err == nil && res.StatusCode == http.StatusConflict {
			return breaker.Failure
		}
		return breaker.Classify(res, err)
	}))
	res, err := get(context.Background(), c, srv.URL)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, int32(3), srv.hits.Load(), "409 counted as failure and retried")
}

// Failed attempts' bodies are drained and closed, so one connection serves
// every attempt.
func TestTransport_ReusesConnections(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, strings.Repeat("x", 10_000), http.StatusServiceUnavailable)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c := client(t, breaker.WithBreaker(breaker.WithConsecutiveFailures(0)))
	for range 5 {
		res, err := get(context.Background(), c, srv.URL)
		require.NoError(t, err)
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	assert.Equal(t, int32(1), conns.Load())
}

func TestCallError(t *testing.T) {
	inner := errors.New("dial failed")
	e := &breaker.CallError{Name: "agent-geo", Attempts: []string{"503 Service Unavailable", "timeout after 2s", "connection refused"}, Err: inner}
	assert.Equal(t, `breaker "agent-geo": 3 attempts: 503 Service Unavailable, timeout after 2s, connection refused`, e.Error())
	assert.ErrorIs(t, e, inner)
}

// A slow target trips the slow-call rule although every call succeeds.
func TestTransport_SlowTarget(t *testing.T) {
	srv := serve(t, func(_ int32, w http.ResponseWriter, r *http.Request) {
		select { // answers late, but answers
		case <-time.After(30 * time.Millisecond):
		case <-r.Context().Done():
		}
	})
	c := client(t, breaker.WithBreaker(breaker.WithSlowCalls(5*time.Millisecond, 0.5), breaker.WithMinCalls(3)))
	for range 3 {
		res, err := get(context.Background(), c, srv.URL)
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, res.StatusCode)
		res.Body.Close()
	}
	s := c.Transport.(*breaker.Transport).Breakers()[0]
	assert.Equal(t, breaker.Open, s.State)
	assert.Equal(t, 3, s.Slow)
	_, err := get(context.Background(), c, srv.URL)
	assert.ErrorIs(t, err, breaker.ErrOpen)
	assert.Equal(t, int32(3), srv.hits.Load())
}

// The breaker of a host that gets no calls for the idle timeout is dropped.
func TestTransport_IdleBreakersDropped(t *testing.T) {
	a := serve(t, func(_ int32, w http.ResponseWriter, _ *http.Request) {})
	b := serve(t, func(_ int32, w http.ResponseWriter, _ *http.Request) {})
	c := serve(t, func(_ int32, w http.ResponseWriter, _ *http.Request) {})
	clk := newFakeClock()
	cl := client(t, breaker.WithBreaker(breaker.WithClock(clk)), breaker.WithIdleTimeout(time.Minute))
	set := cl.Transport.(*breaker.Transport)
	call := func(u string) {
		t.Helper()
		res, err := get(context.Background(), cl, u)
		require.NoError(t, err)
		res.Body.Close()
	}
	call(a.URL)
	call(b.URL)
	require.Len(t, set.Breakers(), 2)
	clk.Advance(45 * time.Second)
	call(b.URL) // b stays in use
	clk.Advance(45 * time.Second)
	call(c.URL) // a new host: the sweep is due, and a has been idle for 90 s
	host := func(u string) string { return strings.TrimPrefix(u, "http://") }
	assert.Nil(t, set.Breaker(host(a.URL)), "idle longer than the idle timeout")
	assert.NotNil(t, set.Breaker(host(b.URL)), "used 45 s ago")
	assert.NotNil(t, set.Breaker(host(c.URL)))
}

// A protocol switch (101, as for a WebSocket) goes through: the body is the
// connection, writable, and outlives the attempt's timeout.
func TestTransport_ProtocolSwitch(t *testing.T) {
	srv := serve(t, func(_ int32, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hang" {
			<-r.Context().Done() // until the caller's attempt times out
			return
		}
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "upgrade to echo", http.StatusBadRequest)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		rw.Flush()
		io.Copy(conn, rw) // echo until the client closes
	})
	c := client(t, breaker.WithAttemptTimeout(50*time.Millisecond))
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	res, err := c.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, res.StatusCode)
	conn, ok := res.Body.(io.ReadWriteCloser)
	require.True(t, ok, "the body of a 101 is the connection")
	defer conn.Close()
	// A plain call begun after the switch times out on the same 50 ms, so
	// the switched connection is past its attempt's timeout too: it is not
	// the attempt's.
	_, err = c.Get(srv.URL + "/hang")
	require.ErrorContains(t, err, "timeout after 50ms")
	for _, msg := range []string{"ping", "pong"} {
		_, err := conn.Write([]byte(msg))
		require.NoError(t, err)
		got := make([]byte, len(msg))
		_, err = io.ReadFull(conn, got)
		require.NoError(t, err)
		assert.Equal(t, msg, string(got))
	}
}

// The attempt timeout also bounds reading the body: a target that sends
// its headers and then stalls ends the read with a timeout, which matches
// context.DeadlineExceeded; a body read in time is whole.
func TestTransport_AttemptTimeoutBoundsTheBody(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	srv := serve(t, func(_ int32, w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first part;")
		w.(http.Flusher).Flush()
		if r.URL.Path == "/stall" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	})
	c := client(t, breaker.WithAttemptTimeout(100*time.Millisecond))
	res, err := get(context.Background(), c, srv.URL+"/stall")
	require.NoError(t, err, "the headers came in time")
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	assert.Equal(t, "first part;", string(body))
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	res, err = get(context.Background(), c, srv.URL+"/fine")
	require.NoError(t, err)
	body, err = io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, "first part;", string(body))
}

// Retries to a failing host are held to 20% of its requests: 100 GETs that
// all fail cost the host at most 120 attempts, not 300, and the calls that
// were not retried say why. (The floor, which refills with time, is off
// here, so the bound does not depend on how fast the test runs; see
// TestRetryBudget_Floor.)
func TestTransport_RetryBudget(t *testing.T) {
	srv := serve(t, func(_ int32, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	c := client(t, breaker.WithRetries(2), breaker.WithBreaker(breaker.WithConsecutiveFailures(0)), breaker.WithRetryBudget(breaker.DefaultRetryRatio, 0))
	exhausted := 0
	for range 100 {
		res, err := get(context.Background(), c, srv.URL)
		if err == nil {
			res.Body.Close()
			continue
		}
		var ce *breaker.CallError
		require.ErrorAs(t, err, &ce)
		if strings.Contains(ce.Error(), "retry budget exhausted") {
			exhausted++
		}
	}
	hits := int(srv.hits.Load())
	assert.GreaterOrEqual(t, hits, 100)
	assert.LessOrEqual(t, hits, 100+20, "20%% of 100 requests")
	assert.Positive(t, exhausted)

	// With a budget of two retries per request, every failed GET is retried twice.
	srv.hits.Store(0)
	c = client(t, breaker.WithRetries(2), breaker.WithBreaker(breaker.WithConsecutiveFailures(0)), breaker.WithRetryBudget(2, 0))
	for range 10 {
		if res, err := get(context.Background(), c, srv.URL); err == nil {
			res.Body.Close()
		}
	}
	assert.EqualValues(t, 30, srv.hits.Load(), "a ratio of 2 earns both retries of every request")
}

// Each attempt carries what is left for it: the attempt timeout, or what
// remains of the caller's deadline when that is sooner, so a retry sends
// less than the first attempt did; the caller's request is left as it was.
func TestTransport_DeadlineHeader(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := serve(t, func(n int32, w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("X-Budget-Ms"))
		mu.Unlock()
		if n%2 == 1 {
			time.Sleep(150 * time.Millisecond) // the first attempt of each call uses some of the budget
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	})
	call := func(ctx context.Context, opts ...breaker.TransportOption) []string {
		mu.Lock()
		got = nil
		mu.Unlock()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		res, err := client(t, opts...).Do(req)
		require.NoError(t, err)
		res.Body.Close()
		assert.Empty(t, req.Header.Get("X-Budget-Ms"), "the caller's request is not modified")
		mu.Lock()
		defer mu.Unlock()
		return got
	}
	ms := func(s string) int {
		n, err := strconv.Atoi(s)
		require.NoError(t, err, "not a number of milliseconds: %q", s)
		return n
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	h := call(ctx, breaker.WithDeadlineHeader("x-budget-ms"), breaker.WithAttemptTimeout(5*time.Second))
	require.Len(t, h, 2)
	first, second := ms(h[0]), ms(h[1])
	assert.True(t, first > 0 && first <= 1000, "the caller's deadline is the sooner: %d", first)
	assert.LessOrEqual(t, second, first-150, "the retry sends what is left for it")

	h = call(context.Background(), breaker.WithDeadlineHeader("X-Budget-Ms"), breaker.WithAttemptTimeout(300*time.Millisecond))
	assert.Equal(t, []string{"300", "300"}, h, "with no caller deadline, each attempt has its timeout")

	h = call(context.Background(), breaker.WithDeadlineHeader("X-Budget-Ms"), breaker.WithAttemptTimeout(0))
	assert.Equal(t, []string{"", ""}, h, "nothing bounds the attempts: no header")
	h = call(ctx)
	assert.Equal(t, []string{"", ""}, h, "without the option, no header")
}
