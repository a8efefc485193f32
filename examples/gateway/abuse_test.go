package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/flotilla-go/flotilla/breaker"
)

// Key creation is limited per client address and in total; it can be
// turned off or require the admin token.
func TestGateway_KeyCreationIsLimited(t *testing.T) {
	f := setup(t, 1000, 1000)
	create := func(ip, token string) int {
		req := httptest.NewRequest(http.MethodPost, "/api/keys/create", nil)
		req.RemoteAddr = ip + ":4000"
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		f.app.ServeHTTP(rec, req)
		return rec.Code
	}
	cfg := config{perSecond: 1, burst: 1, freeKeys: true, keysPerHour: 5, keysTotalPerHour: 8, adminToken: "s3cret"}
	f.app = newApp(f.reg, f.keys, cfg)
	for range 5 {
		require.Equal(t, 200, create("198.51.100.1", ""))
	}
	assert.Equal(t, 429, create("198.51.100.1", ""), "the sixth key from one address in an hour")
	for range 3 {
		require.Equal(t, 200, create("198.51.100.2", ""))
	}
	assert.Equal(t, 429, create("198.51.100.3", ""), "past the total for everyone")
	assert.Equal(t, 200, create("198.51.100.1", "s3cret"), "the admin token is not limited")

	cfg.freeKeys = false
	f.app = newApp(f.reg, f.keys, cfg)
	assert.Equal(t, 403, create("198.51.100.9", ""), "free keys off")
	assert.Equal(t, 403, create("198.51.100.9", "guess"))
	assert.Equal(t, 200, create("198.51.100.9", "s3cret"))
}

// An address that sends too many invalid keys is refused before its key
// is looked up, a valid key included; other addresses are not.
func TestGateway_InvalidKeysAreLimited(t *testing.T) {
	f := setup(t, 1000, 1000)
	key := f.newKey(t)
	f.app = newApp(f.reg, f.keys, config{perSecond: 1000, burst: 1000, freeKeys: true, keysPerHour: 100, keysTotalPerHour: 100,
		badKeysPerMinute: 3})
	call := func(ip, key string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/v1/agent-geo/x", nil)
		req.RemoteAddr = ip + ":4000"
		req.Header.Set("Authorization", "Bearer "+key)
		rec := httptest.NewRecorder()
		f.app.ServeHTTP(rec, req)
		return rec
	}
	require.Equal(t, 200, call("198.51.100.1", key).Code)
	for i := range 3 {
		require.Equal(t, 401, call("198.51.100.1", key+"x").Code, "guess %d", i+1)
	}
	for _, k := range []string{key + "x", key} {
		rec := call("198.51.100.1", k)
		assert.Equal(t, 429, rec.Code, "past 3 invalid keys a minute")
		assert.Contains(t, []string{"19", "20"}, rec.Header().Get("Retry-After"), "one more guess every 20 s")
		assert.Contains(t, rec.Body.String(), "too many invalid API keys")
	}
	assert.Equal(t, 200, call("198.51.100.2", key).Code, "another address is served")
	var credits int
	require.NoError(t, f.keys.db.QueryRow(`SELECT credits FROM api_keys`).Scan(&credits))
	assert.Equal(t, 200-2, credits, "a refused call costs no credit")
}

// The per-key limiters stay bounded: those whose bucket has filled again
// are dropped, and a limiter still in use keeps its state.
func TestLimiters_Bounded(t *testing.T) {
	l := newLimiters(rate.Inf, 1)
	busy := newLimiters(rate.Every(time.Hour), 1)
	for i := range 10000 {
		l.get(strings.Repeat("k", i%7) + string(rune(i)))
		busy.get(string(rune(i))).Allow()
	}
	assert.Less(t, l.len(), 200, "idle limiters are dropped")
	assert.Equal(t, 10000, busy.len(), "limiters with spent tokens are kept")
	assert.False(t, busy.get(string(rune(0))).Allow(), "a kept limiter remembers")
}

// A tenant that uploads slowly gets its own timeouts (408); the upstream's
// breaker never counts them, so another tenant's calls all succeed.
func TestGateway_SlowBodyCostsOnlyItsSender(t *testing.T) {
	f := setup(t, 1000, 1000)
	f.app = newApp(f.reg, f.keys, config{perSecond: 1000, burst: 1000, freeKeys: true, keysPerHour: 100, keysTotalPerHour: 100,
		bodyTimeout: 300 * time.Millisecond,
		breaker:     []breaker.TransportOption{breaker.WithBreaker(breaker.WithConsecutiveFailures(2)), breaker.WithRetries(0), breaker.WithAttemptTimeout(100 * time.Millisecond)}})
	srv := httptest.NewServer(f.app) // a real socket: bodies arrive slowly
	defer srv.Close()
	slow, other := f.newKey(t), f.newKey(t)

	var wg sync.WaitGroup
	codes := make(chan int, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pr, pw := io.Pipe()
			go func() { // one byte, then nothing for longer than the body timeout
				pw.Write([]byte("x"))
				time.Sleep(time.Second) // the client's slowness, not a synchronisation
				pw.Close()
			}()
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/agent-geo/upload", pr)
			req.Header.Set("Authorization", "Bearer "+slow)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				codes <- 0
				return
			}
			res.Body.Close()
			codes <- res.StatusCode
		}()
	}
	for range 100 {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/agent-geo/x", nil)
		req.Header.Set("Authorization", "Bearer "+other)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, 200, res.StatusCode, "the other tenant is served")
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		assert.Equal(t, http.StatusRequestTimeout, c, "the slow tenant gets its own timeout")
	}
	for range 10 {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/agent-geo/x", nil)
		req.Header.Set("Authorization", "Bearer "+other)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		assert.Equal(t, 200, res.StatusCode, "the breaker stayed closed")
	}
}

// An escaped path goes on as the client escaped it, and the answer has one
// X-Request-Id.
func TestGateway_PathAndHeadersPassThrough(t *testing.T) {
	f := setup(t, 1000, 1000)
	key := f.newKey(t)
	rec, body := f.do(t, http.MethodGet, "/v1/agent-geo/echo/a%2Fb%20c", key)
	require.Equal(t, 200, rec.Code, body)
	assert.Contains(t, body, "raw=/echo/a%2Fb%20c")
	assert.Contains(t, body, "agent-geo /echo/a/b c ")
	assert.Len(t, rec.Header().Values("X-Request-Id"), 1)
}
