package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/labstack/echo/v4/middleware"

	"github.com/flotilla-go/flotilla/breaker"
	"github.com/flotilla-go/flotilla/discovery"
	"github.com/flotilla-go/flotilla/logger"
)

type fixture struct {
	app   http.Handler
	reg   *discovery.Registry
	store *logger.Store
	db    string
	keys  *keys
	geo   *http.Server
}

// setup runs a public agent-geo and a private admin on unix sockets, and
// the gateway in front of them logging into a real request log.
func setup(t *testing.T, perSecond float64, burst int) *fixture {
	t.Helper()
	dir, err := os.MkdirTemp("", "gw")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	regPath := filepath.Join(dir, "flotilla.toml")
	require.NoError(t, os.WriteFile(regPath, []byte(`
[defaults]
socket_dir = "run"
[[service]]
name = "agent-geo"
public = true
[[service]]
name = "admin"
`), 0o644))
	reg, err := discovery.Load(regPath)
	require.NoError(t, err)
	f := &fixture{reg: reg}
	for _, name := range []string{"agent-geo", "admin"} {
		ln, err := reg.Listen(context.Background(), name)
		require.NoError(t, err)
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Request-Id", r.Header.Get("X-Request-Id")) // as a platform service answers
			fmt.Fprintf(w, "%s %s auth=%q raw=%s", name, r.URL.Path, r.Header.Get("Authorization"), r.URL.EscapedPath())
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		if name == "agent-geo" {
			f.geo = srv
		}
	}
	f.keys, err = openKeys(filepath.Join(dir, "keys.db"))
	require.NoError(t, err)
	f.db = filepath.Join(dir, "flotilla.db")
	f.store, err = logger.Open(f.db)
	require.NoError(t, err)
	t.Cleanup(func() { f.store.Close() })
	app := newApp(reg, f.keys, config{perSecond: perSecond, burst: burst, freeKeys: true, keysPerHour: 1000, keysTotalPerHour: 1000, badKeysPerMinute: 1000,
		bodyTimeout: 300 * time.Millisecond, breaker: []breaker.TransportOption{breaker.WithBreaker(breaker.WithConsecutiveFailures(2)), breaker.WithRetries(0)}})
	app.Use(middleware.RequestID()) // as the platform's chain does
	app.Use(logger.Middleware(f.store, "agent-gateway"))
	f.app = app
	return f
}

func (f *fixture) do(t *testing.T, method, path, key string) (*httptest.ResponseRecorder, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	rec := httptest.NewRecorder()
	f.app.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Body)
	return rec, string(b)
}

func (f *fixture) newKey(t *testing.T) string {
	t.Helper()
	rec, body := f.do(t, http.MethodPost, "/api/keys/create", "")
	require.Equal(t, 200, rec.Code, body)
	var out struct {
		Key     string `json:"key"`
		Credits int    `json:"credits"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &out))
	assert.Equal(t, 200, out.Credits)
	require.True(t, strings.HasPrefix(out.Key, "fk_"))
	return out.Key
}

func TestGateway(t *testing.T) {
	f := setup(t, 1000, 1000)
	key := f.newKey(t)

	rec, body := f.do(t, http.MethodGet, "/v1/agent-geo/geo/192.0.2.1?x=1", key)
	assert.Equal(t, 200, rec.Code, body)
	assert.Equal(t, `agent-geo /geo/192.0.2.1 auth="" raw=/geo/192.0.2.1`, body, "proxied, without the key")

	rec, _ = f.do(t, http.MethodGet, "/v1/agent-geo/geo/1", "")
	assert.Equal(t, 401, rec.Code, "no key")
	rec, _ = f.do(t, http.MethodGet, "/v1/agent-geo/geo/1", key+"x")
	assert.Equal(t, 401, rec.Code, "wrong secret")
	rec, _ = f.do(t, http.MethodGet, "/v1/agent-geo/geo/1", "fk_000000000000_"+strings.Repeat("0", 48))
	assert.Equal(t, 401, rec.Code, "unknown id")
	rec, _ = f.do(t, http.MethodGet, "/v1/admin/", key)
	assert.Equal(t, 404, rec.Code, "not public")
	rec, _ = f.do(t, http.MethodGet, "/v1/nope/", key)
	assert.Equal(t, 404, rec.Code, "unknown service")

	// Credits run out.
	_, err := f.keys.db.Exec(`UPDATE api_keys SET credits = 1`)
	require.NoError(t, err)
	rec, _ = f.do(t, http.MethodGet, "/v1/agent-geo/x", key)
	assert.Equal(t, 200, rec.Code)
	rec, body = f.do(t, http.MethodGet, "/v1/agent-geo/x", key)
	assert.Equal(t, 402, rec.Code, body)

	// The key never reaches the request log.
	require.NoError(t, f.store.Close())
	var all []byte
	for _, p := range []string{f.db, f.db + "-wal"} {
		b, _ := os.ReadFile(p)
		all = append(all, b...)
	}
	assert.True(t, strings.Contains(string(all), "/v1/agent-geo/geo/192.0.2.1"), "the call is logged")
	_, secret, _ := strings.Cut(strings.TrimPrefix(key, "fk_"), "_")
	assert.False(t, strings.Contains(string(all), secret), "the key is not")
}

func TestGateway_RateLimit(t *testing.T) {
	f := setup(t, 1, 3)
	key := f.newKey(t)
	for range 3 {
		rec, _ := f.do(t, http.MethodGet, "/v1/agent-geo/x", key)
		require.Equal(t, 200, rec.Code)
	}
	rec, _ := f.do(t, http.MethodGet, "/v1/agent-geo/x", key)
	assert.Equal(t, 429, rec.Code)
	assert.Equal(t, "1", rec.Header().Get("Retry-After"))
	var credits int
	require.NoError(t, f.keys.db.QueryRow(`SELECT credits FROM api_keys`).Scan(&credits))
	assert.Equal(t, 200-3, credits, "a call refused by the rate limit costs no credit")
	other := f.newKey(t)
	rec, _ = f.do(t, http.MethodGet, "/v1/agent-geo/x", other)
	assert.Equal(t, 200, rec.Code, "limits are per key")
}

func TestGateway_BreakerOpen(t *testing.T) {
	f := setup(t, 1000, 1000)
	key := f.newKey(t)
	f.geo.Close() // agent-geo goes away
	for range 2 {
		rec, _ := f.do(t, http.MethodGet, "/v1/agent-geo/x", key)
		assert.Equal(t, 502, rec.Code)
	}
	rec, body := f.do(t, http.MethodGet, "/v1/agent-geo/x", key)
	assert.Equal(t, 503, rec.Code, body)
	assert.Contains(t, []string{"1", "2"}, rec.Header().Get("Retry-After"), "the first open period: 1 s ±20%, rounded up")
	assert.Contains(t, body, "circuit breaker is open")
}
