package health_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/health"
	"github.com/flotilla-go/flotilla/internal/fakeclock"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// newClock returns a fake clock that the tests move by hand.
func newClock() *fakeclock.Clock { return fakeclock.New(time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)) }

func get(t *testing.T, h http.Handler, path string) (*httptest.ResponseRecorder, health.Response) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	var r health.Response
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &r), rec.Body.String())
	assert.Equal(t, health.MediaType, rec.Header().Get("Content-Type"))
	return rec, r
}

// golden compares body with testdata/name.json, indented.
func golden(t *testing.T, name string, body []byte) {
	t.Helper()
	var out bytes.Buffer
	require.NoError(t, json.Indent(&out, body, "", "  "))
	out.WriteByte('\n')
	path := filepath.Join("testdata", name+".json")
	if *update {
		require.NoError(t, os.WriteFile(path, out.Bytes(), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, string(want), out.String())
}

func newHealth(c *fakeclock.Clock, opts ...health.Option) *health.Health {
	opts = append([]health.Option{health.WithClock(c), health.WithVersion("1.4.0"), health.WithReleaseID("1.4.0-3-gabc123")}, opts...)
	h := health.New("agent-geo", opts...)
	c.Advance(90 * time.Second) // uptime 90 s
	return h
}

func TestHealth_PassGolden(t *testing.T) {
	c := newClock()
	h := newHealth(c, health.WithDescription("IP to country lookups"), health.WithNotes("sample data"))
	h.Add(health.Check{
		Component: "geodb", Measurement: "rows", ComponentType: "datastore", ObservedUnit: "rows",
		Run: func(context.Context) (any, error) { return 1200, nil },
	})
	rec, r := get(t, h, "/health")
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, health.Pass, r.Status)
	assert.Empty(t, r.Output, "no output on pass")
	assert.Equal(t, "max-age=1", rec.Header().Get("Cache-Control"))
	golden(t, "pass", rec.Body.Bytes())
}

func TestHealth_WarnOnNonCriticalFailure(t *testing.T) {
	c := newClock()
	h := newHealth(c)
	h.Add(health.Check{Component: "cache", Measurement: "connections", Run: func(context.Context) (any, error) {
		return 0, errors.New("redis: connection refused")
	}})
	h.Add(health.Check{Component: "requestlog", Measurement: "queue", ComponentType: "datastore", ObservedUnit: "records", Critical: true, Run: func(context.Context) (any, error) {
		return 70000, health.Warnf("queue 53%% full")
	}}) // as the platform's request log check is
	rec, r := get(t, h, "/health")
	assert.Equal(t, http.StatusOK, rec.Code, "warn is 200")
	assert.Equal(t, health.Warn, r.Status)
	assert.Equal(t, health.Fail, r.Checks["cache:connections"][0].Status, "the check itself failed")
	assert.Equal(t, health.Warn, r.Checks["requestlog:queue"][0].Status)
	assert.Equal(t, "queue 53% full", r.Checks["requestlog:queue"][0].Output)
	assert.Equal(t, "max-age=1", rec.Header().Get("Cache-Control"), "a warn answer may be reused")
	assert.Equal(t, "cache:connections: redis: connection refused; requestlog:queue: queue 53% full", r.Output, "the checks' own words")
	golden(t, "warn", rec.Body.Bytes())
}

func TestHealth_FailOnCriticalFailure(t *testing.T) {
	c := newClock()
	h := newHealth(c)
	h.Add(health.Check{Component: "postgres", Measurement: "responseTime", ComponentType: "datastore", Critical: true,
		Run: func(context.Context) (any, error) {
			return nil, errors.New("dial tcp 127.0.0.1:5432: connection refused")
		}})
	rec, r := get(t, h, "/health")
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Equal(t, health.Fail, r.Status)
	assert.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
	golden(t, "fail", rec.Body.Bytes())
}

func TestHealth_HideDetails(t *testing.T) {
	c := newClock()
	h := newHealth(c, health.WithHideDetails())
	h.Add(health.Check{Component: "postgres", Critical: true,
		Run: func(context.Context) (any, error) {
			return nil, errors.New("password authentication failed for user admin")
		}})
	rec, r := get(t, h, "/health")
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.NotContains(t, rec.Body.String(), "password")
	assert.Empty(t, r.Output)
	golden(t, "hidden", rec.Body.Bytes())
}

func TestHealth_CheckTimeout(t *testing.T) {
	h := health.New("svc")
	h.Add(health.Check{Component: "slow", Critical: true, Timeout: 20 * time.Millisecond,
		Run: func(ctx context.Context) (any, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}})
	_, r := get(t, h, "/health")
	assert.Equal(t, health.Fail, r.Status)
	assert.Contains(t, r.Checks["slow"][0].Output, "timed out after 20ms")
}

func TestHealth_CheckThatIgnoresItsContext(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	h := health.New("svc")
	h.Add(health.Check{Component: "stuck", Timeout: 20 * time.Millisecond,
		Run: func(context.Context) (any, error) { <-release; return nil, nil }})
	_, r := get(t, h, "/health")
	assert.Equal(t, health.Warn, r.Status, "not critical")
	assert.Contains(t, r.Checks["stuck"][0].Output, "timed out")
}

func TestHealth_PanickingCheck(t *testing.T) {
	h := health.New("svc")
	h.Add(health.Check{Component: "buggy", Critical: true, Run: func(context.Context) (any, error) {
		var ids []int
		return ids[len(ids)], nil // a bug: a runtime error's panic
	}})
	rec, r := get(t, h, "/health")
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Contains(t, r.Checks["buggy"][0].Output, "panic: runtime error: index out of range [0] with length 0")
}

// A herd of 100 concurrent requests runs the checks once; the result is
// reused for the TTL and recomputed after it.
func TestHealth_CachingSharesOneRun(t *testing.T) {
	c := newClock()
	h := newHealth(c)
	var runs atomic.Int32
	h.Add(health.Check{Component: "db", Run: func(context.Context) (any, error) {
		runs.Add(1)
		return nil, nil
	}})
	srv := httptest.NewServer(h)
	defer srv.Close()
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := http.Get(srv.URL + "/health")
			if assert.NoError(t, err) {
				res.Body.Close()
				assert.Equal(t, http.StatusOK, res.StatusCode)
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, int32(1), runs.Load())

	c.Advance(999 * time.Millisecond)
	get(t, h, "/health")
	assert.Equal(t, int32(1), runs.Load(), "still fresh")
	c.Advance(time.Millisecond)
	get(t, h, "/health")
	assert.Equal(t, int32(2), runs.Load(), "expired after the TTL")
}

func TestHealth_LiveRunsNoChecks(t *testing.T) {
	h := health.New("svc")
	var runs atomic.Int32
	h.Add(health.Check{Component: "db", Critical: true, Run: func(context.Context) (any, error) {
		runs.Add(1)
		return nil, errors.New("down")
	}})
	rec, r := get(t, h.LiveHTTP(), "/live")
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, health.Pass, r.Status)
	assert.Zero(t, runs.Load())
	assert.Empty(t, r.Checks)
}

func TestHealth_ShuttingDown(t *testing.T) {
	c := newClock()
	h := newHealth(c)
	h.Add(health.Check{Component: "db", Run: func(context.Context) (any, error) { return nil, nil }})
	rec, _ := get(t, h, "/health")
	require.Equal(t, http.StatusOK, rec.Code)

	h.SetShuttingDown()
	for path, handler := range map[string]http.Handler{"/health": h, "/health/live": h.LiveHTTP()} {
		rec, r := get(t, handler, path)
		assert.Equal(t, http.StatusServiceUnavailable, rec.Code, path)
		assert.Equal(t, health.Fail, r.Status)
		assert.Equal(t, "shutting down", r.Output)
		assert.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
		if path == "/health" {
			golden(t, "shutdown", rec.Body.Bytes())
		}
	}
}

func TestHealth_EchoHandlerAndHEAD(t *testing.T) {
	h := health.New("svc")
	e := echo.New()
	e.GET("/health", h.Handler())
	e.HEAD("/health", h.Handler())
	e.GET("/health/live", h.LiveHandler())
	e.GET("/anything/live", h.Handler())
	rec, r := get(t, e, "/health")
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "svc", r.ServiceID)
	assert.Contains(t, r.Checks, "uptime")
	_, r = get(t, e, "/health/live")
	assert.Empty(t, r.Checks, "liveness runs no check")
	_, r = get(t, e, "/anything/live")
	assert.Contains(t, r.Checks, "uptime", "the path does not choose: the route does")

	head := httptest.NewRecorder()
	e.ServeHTTP(head, httptest.NewRequest(http.MethodHead, "/health", nil))
	assert.Equal(t, http.StatusOK, head.Code)
	assert.Zero(t, head.Body.Len())
}

func TestHealth_AddRejectsBadChecks(t *testing.T) {
	h := health.New("svc")
	run := func(context.Context) (any, error) { return nil, nil }
	assert.PanicsWithError(t, "health: check has no Component", func() { h.Add(health.Check{Run: run}) })
	assert.Panics(t, func() { h.Add(health.Check{Component: "a:b", Run: run}) })
	assert.Panics(t, func() { h.Add(health.Check{Component: "a", Measurement: "b:c", Run: run}) })
	assert.Panics(t, func() { h.Add(health.Check{Component: "a"}) })
}

func TestWarnf(t *testing.T) {
	err := health.Warnf("disk %d%% full", 91)
	assert.ErrorIs(t, err, health.ErrWarn)
	assert.Equal(t, "disk 91% full", err.Error())
	assert.False(t, errors.Is(errors.New("x"), health.ErrWarn))
}
