package platform_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/health"
)

// With room for two requests at once, three more are shed at once: 503
// with Retry-After, no handler run, logged as shed; /health is never shed,
// warns while shedding, and passes again once the load has gone.
func TestRun_ShedsOverTheLimit(t *testing.T) {
	shedsOverTheLimit(t, "2", 2)
}

// The adaptive limit, the default, does the same at the limit it starts
// from (100) while latency is steady.
func TestRun_AdaptiveLimitShedsAndRecovers(t *testing.T) {
	shedsOverTheLimit(t, "auto", 100)
}

func shedsOverTheLimit(t *testing.T, setting string, limit int) {
	dir := tempDir(t)
	db := filepath.Join(dir, "f.db")
	port := freePort(t)
	s := start(t, "agent-geo", "FLOTILLA_DB="+db, "PORT="+port, "FLOTILLA_CONCURRENCY="+setting,
		"PLATFORM_TEST_HOLD="+dir).at("tcp", "127.0.0.1:"+port)
	s.healthy(t)

	var wg sync.WaitGroup
	for range limit {
		wg.Add(1)
		go func() { defer wg.Done(); s.get(t, "/hold") }()
	}
	// Every place taken, seen without a request: one that finished would
	// count towards the adaptive limit's next window.
	eventually(t, 30*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(dir, fmt.Sprintf("held.%d", limit)))
		return err == nil
	}, "the held requests never filled the limit")
	code, _ := s.get(t, "/hello/probe")
	assert.Equal(t, http.StatusServiceUnavailable, code, "a request over the limit ran")
	for range 3 {
		res, err := http.Get("http://127.0.0.1:" + port + "/hello/more")
		require.NoError(t, err)
		res.Body.Close()
		assert.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
		assert.Equal(t, "1", res.Header.Get("Retry-After"))
	}
	var h health.Response
	eventually(t, 5*time.Second, func() bool { h = s.healthy(t); return h.Status == health.Warn },
		"/health does not warn while shedding (it caches for 1 s)")
	assert.Contains(t, h.Output, "concurrency:limit: shedding")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "open"), nil, 0o600))
	wg.Wait()
	code, _ = s.get(t, "/hello/after")
	assert.Equal(t, 200, code, "with room again, requests run")
	eventually(t, 30*time.Second, func() bool { return s.healthy(t).Status == health.Pass },
		"/health still warns long after the shedding stopped")

	d := openDB(t, db)
	eventually(t, 10*time.Second, func() bool {
		return len(rows(t, d, "path = '/hello/after'")) == 1
	}, "rows not logged")
	shed := rows(t, d, fmt.Sprintf("path = '/hello/more' AND status = 503 AND error LIKE '%%shed: %% requests in flight, the limit is %d%%'", limit))
	assert.Len(t, shed, 3)
}

func TestRun_ConcurrencyBadValue(t *testing.T) {
	s := start(t, "agent-geo", "FLOTILLA_CONCURRENCY=lots")
	assert.Equal(t, 1, s.wait(t))
	assert.Contains(t, s.stderr.String(), `FLOTILLA_CONCURRENCY="lots": auto, off, or a number of requests in flight from 1`)
}

// Handlers that keep every CPU busy make requests wait before the handler,
// where the latency the adaptive limit measures does not show it; the
// runtime's queue caps the limit at about the cores, the rest is shed, and
// once the load has gone the cap lifts: more requests than it allowed run
// at once again.
func TestRun_CPUQueueCapsTheLimit(t *testing.T) {
	dir := tempDir(t)
	db := filepath.Join(dir, "f.db")
	port := freePort(t)
	s := start(t, "agent-geo", "FLOTILLA_DB="+db, "PORT="+port).at("tcp", "127.0.0.1:"+port)
	s.healthy(t)

	clients := 16 * runtime.NumCPU()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	loads := make([]*loadLoop, clients)
	for i := range loads {
		loads[i] = startLoad(t, hc, "http://127.0.0.1:"+port+"/cpu") // about 2 ms of CPU each
	}
	shed := func() (n int32) { // every answer but 200 counts
		for _, l := range loads {
			n += l.failed.Load()
		}
		return n
	}
	eventually(t, 60*time.Second, func() bool { return shed() > 0 }, "CPU-bound load was never shed")
	var limit float64
	eventually(t, 10*time.Second, func() bool {
		h := s.healthy(t)
		if c := h.Checks["concurrency:limit"]; h.Status == health.Warn && len(c) == 1 {
			limit, _ = c[0].ObservedValue.(float64)
		}
		return limit > 0
	}, "/health does not warn with the capped limit")
	for _, l := range loads {
		l.halt()
	}
	assert.Less(t, limit, float64(clients), "the cap is below the requests the clients kept in flight")
	eventually(t, 30*time.Second, func() bool { return s.healthy(t).Status == health.Pass },
		"/health still warns long after the shedding stopped")

	burst := int(limit) + 3
	codes := make(chan int, burst)
	for range burst {
		go func() { code, _ := s.get(t, "/slow"); codes <- code }() // 2 s each, at once
	}
	for range burst {
		assert.Equal(t, http.StatusOK, <-codes, "the cap did not lift")
	}
	d := openDB(t, db)
	eventually(t, 10*time.Second, func() bool {
		return len(rows(t, d, "path = '/cpu' AND status = 503 AND error LIKE '%shed: %'")) > 0
	}, "no shed request in the log")
}
