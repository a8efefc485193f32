package health_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/health"
	"github.com/flotilla-go/flotilla/internal/testwait"
)

// service is a real HTTP server on loopback TCP or a unix socket that
// answers /health, and that can be stopped and started again on the same
// address.
type service struct {
	name    string
	network string // "tcp" or "unix"
	addr    string
	h       http.Handler
	srv     *http.Server
}

func startService(t *testing.T, name, network, addr string) *service {
	t.Helper()
	s := &service{name: name, network: network, addr: addr, h: health.New(name)}
	s.start(t)
	t.Cleanup(s.stop)
	return s
}

func (s *service) start(t *testing.T) {
	t.Helper()
	if s.network == "unix" {
		os.Remove(s.addr)
	}
	ln, err := net.Listen(s.network, s.addr)
	require.NoError(t, err)
	s.addr = ln.Addr().String()
	s.srv = &http.Server{Handler: s.h}
	go s.srv.Serve(ln)
}

func (s *service) stop() {
	if s.srv != nil {
		s.srv.Close()
		s.srv = nil
	}
}

func (s *service) target() health.Target {
	if s.network == "tcp" {
		return health.Target{Name: s.name, URL: "http://" + s.addr + "/health"}
	}
	path := s.addr
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return health.Target{Name: s.name, URL: "http://" + s.name + "/health", Client: &http.Client{Transport: tr}}
}

// alerts collects what a SinkFunc receives.
type alerts struct {
	ch chan health.Alert
}

func newAlerts() *alerts { return &alerts{ch: make(chan health.Alert, 100)} }

func (a *alerts) sink() health.AlertSink {
	return health.SinkFunc(func(_ context.Context, al health.Alert) error {
		a.ch <- al
		return nil
	})
}

func (a *alerts) next(t *testing.T) health.Alert {
	t.Helper()
	select {
	case al := <-a.ch:
		return al
	case <-time.After(10 * time.Second):
		t.Fatal("no alert within 10s")
		return health.Alert{}
	}
}

// none checks that no alert is waiting. Delivery is asynchronous, so the
// tests call it after a later alert has arrived, or after Run has drained
// the sinks.
func (a *alerts) none(t *testing.T) {
	t.Helper()
	select {
	case al := <-a.ch:
		t.Fatalf("unexpected alert: %s", al.Text())
	default:
	}
}

func names(ts []health.TargetState) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Name)
	}
	return out
}

// 45 real services, on ports and unix sockets. Stopping 20 gives exactly one
// alert naming those 20, after the confirmation count; starting them gives
// exactly one recovery alert; one target flapping once gives none.
func TestMonitor_FleetOf45(t *testing.T) {
	dir, err := os.MkdirTemp("", "flotilla-mon")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	var svcs []*service
	var targets []health.Target
	for i := range 45 {
		name := fmt.Sprintf("svc-%02d", i)
		var s *service
		if i%2 == 0 {
			s = startService(t, name, "tcp", "127.0.0.1:0")
		} else {
			s = startService(t, name, "unix", filepath.Join(dir, name+".sock"))
		}
		svcs = append(svcs, s)
		targets = append(targets, s.target())
	}
	got := newAlerts()
	m := health.NewMonitor(targets, health.WithAlertSink(got.sink()), health.WithProbeTimeout(2*time.Second))
	ctx := context.Background()

	snap := m.Poll(ctx)
	require.Len(t, snap.Targets, 45)
	require.Empty(t, snap.Down())

	stopped := map[string]bool{}
	for i := 0; i < 40; i += 2 { // 20 services, both kinds of listener
		svcs[i+i%4/2].stop()
		stopped[svcs[i+i%4/2].name] = true
	}
	require.Len(t, stopped, 20)

	snap = m.Poll(ctx) // first failure: not down yet
	assert.Empty(t, snap.Down())
	snap = m.Poll(ctx) // second failure: down
	assert.Len(t, snap.Down(), 20)

	a := got.next(t)
	assert.Len(t, a.Down, 20)
	assert.Empty(t, a.Up)
	assert.Equal(t, 20, a.StillDown)
	assert.Equal(t, 45, a.Total)
	for _, d := range a.Down {
		assert.True(t, stopped[d.Name], d.Name)
		assert.Contains(t, []string{"connection refused", "no socket file"}, d.Reason, d.Name)
	}
	assert.Contains(t, a.Text(), "20 down")

	m.Poll(ctx) // still down: no new alert
	for _, s := range svcs {
		if stopped[s.name] {
			s.start(t)
		}
	}
	snap = m.Poll(ctx) // one pass is enough to be up
	assert.Empty(t, snap.Down())
	a = got.next(t)
	assert.Len(t, a.Up, 20)
	assert.Empty(t, a.Down)
	assert.Equal(t, 0, a.StillDown)
	got.none(t)

	// One target flaps once: stopped for one poll only.
	svcs[3].stop()
	m.Poll(ctx)
	svcs[3].start(t)
	m.Poll(ctx)
	// Then a real change, to prove nothing was queued before it.
	svcs[5].stop()
	m.Poll(ctx)
	m.Poll(ctx)
	a = got.next(t)
	assert.Equal(t, []string{"svc-05"}, names(a.Down), "the flap sent nothing")
	got.none(t)
}

func TestMonitor_Reasons(t *testing.T) {
	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hang }))
	defer slow.Close()
	defer close(hang) // runs first: lets the hanging handler end before Close waits for it

	sick := health.New("sick")
	sick.Add(health.Check{Component: "postgres", Critical: true, Run: func(context.Context) (any, error) {
		return nil, fmt.Errorf("connection refused")
	}})
	sickSrv := httptest.NewServer(sick)
	defer sickSrv.Close()

	plain500 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "oops", http.StatusInternalServerError)
	}))
	defer plain500.Close()
	plain200 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "OK") }))
	defer plain200.Close()
	warn := health.New("warn")
	warn.Add(health.Check{Component: "disk", Run: func(context.Context) (any, error) { return 91, health.Warnf("disk 91%% full") }})
	warnSrv := httptest.NewServer(warn)
	defer warnSrv.Close()

	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	m := health.NewMonitor([]health.Target{
		{Name: "slow", URL: slow.URL},
		{Name: "sick", URL: sickSrv.URL + "/health"},
		{Name: "plain500", URL: plain500.URL},
		{Name: "plain200", URL: plain200.URL},
		{Name: "warn", URL: warnSrv.URL + "/health"},
		{Name: "closed", URL: closedURL},
	}, health.WithProbeTimeout(100*time.Millisecond), health.WithDownAfter(1))
	snap := m.Poll(context.Background())
	by := map[string]health.TargetState{}
	for _, s := range snap.Targets {
		by[s.Name] = s
	}
	assert.Equal(t, "timeout after 100ms", by["slow"].Reason)
	assert.False(t, by["slow"].Up)
	assert.Equal(t, "503 Service Unavailable: fail: postgres: connection refused", by["sick"].Reason)
	assert.Equal(t, "500 Internal Server Error", by["plain500"].Reason)
	assert.True(t, by["plain200"].Up)
	assert.Equal(t, health.Pass, by["plain200"].Status)
	assert.True(t, by["warn"].Up, "warn is up")
	assert.Equal(t, health.Warn, by["warn"].Status)
	assert.Contains(t, by["warn"].Reason, "disk: disk 91% full")
	assert.Equal(t, "connection refused", by["closed"].Reason)
	for name, detail := range map[string]string{"slow": "timeout after 100ms", "sick": "postgres: connection refused",
		"plain500": "500 Internal Server Error", "plain200": "", "closed": "connection refused"} {
		assert.Equal(t, detail, by[name].Detail, name)
	}
	assert.Equal(t, "disk: disk 91% full", by["warn"].Detail, "the check, in the service's words")
	assert.Equal(t, []string{"slow", "sick", "plain500", "closed"}, snap.Down())
	for name, answered := range map[string]bool{"slow": false, "closed": false, "sick": true, "plain500": true, "plain200": true, "warn": true} {
		assert.Equal(t, answered, by[name].Answered, name)
	}
	assert.Equal(t, snap, m.Snapshot())
}

// A sink that fails is retried until it succeeds, and polling goes on
// meanwhile.
func TestMonitor_FailingSinkIsRetried(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	url := srv.URL
	var attempts atomic.Int32
	delivered := make(chan health.Alert, 1)
	sink := health.SinkFunc(func(_ context.Context, a health.Alert) error {
		if attempts.Add(1) < 3 {
			return fmt.Errorf("webhook down")
		}
		delivered <- a
		return nil
	})
	m := health.NewMonitor([]health.Target{{Name: "a", URL: url}}, health.WithAlertSink(sink), health.WithDownAfter(1))
	srv.Close()
	m.Poll(context.Background())
	for range 3 {
		m.Poll(context.Background()) // polling is not held up by the sink
	}
	select {
	case a := <-delivered:
		assert.Equal(t, []string{"a"}, names(a.Down))
	case <-time.After(20 * time.Second):
		t.Fatal("alert never delivered")
	}
	assert.Equal(t, int32(3), attempts.Load())
}

func TestWebhookSink(t *testing.T) {
	var mu sync.Mutex
	var bodies []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v map[string]any
		assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
		assert.NoError(t, json.NewDecoder(r.Body).Decode(&v))
		mu.Lock()
		bodies = append(bodies, v)
		mu.Unlock()
	}))
	defer hook.Close()
	a := health.Alert{Down: []health.TargetState{{Name: "agent-geo", Reason: "connection refused"}}, StillDown: 1, Total: 3}
	require.NoError(t, health.Webhook(hook.URL, nil).Send(context.Background(), a))
	require.Len(t, bodies, 1)
	assert.Equal(t, "1 down (1 of 3 down now)\nDOWN agent-geo: connection refused\n", bodies[0]["text"])
	assert.Equal(t, float64(3), bodies[0]["total"])

	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) }))
	defer bad.Close()
	err := health.Webhook(bad.URL, nil).Send(context.Background(), a)
	assert.ErrorContains(t, err, "502")
}

func TestCommandSink(t *testing.T) {
	out := filepath.Join(t.TempDir(), "alert.txt")
	a := health.Alert{Up: []health.TargetState{{Name: "agent-geo"}}, Total: 3}
	require.NoError(t, health.Command("sh", "-c", "cat > "+out).Send(context.Background(), a))
	got, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.Equal(t, a.Text(), string(got))
	assert.True(t, strings.HasPrefix(string(got), "1 recovered"))

	err = health.Command("sh", "-c", "echo nope >&2; exit 3").Send(context.Background(), a)
	assert.ErrorContains(t, err, "nope")
}

// Run polls on its interval until its context ends.
func TestMonitor_Run(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	var polls atomic.Int32
	probe := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { polls.Add(1) }))
	defer probe.Close()
	m := health.NewMonitor([]health.Target{{Name: "a", URL: probe.URL}}, health.WithInterval(5*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	testwait.Until(t, 10*time.Second, func() bool { return polls.Load() >= 3 }, "Run to poll 3 times")
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
}

// A status is read as the draft says consumers must: case aside, with the
// aliases ok and up for pass, error and down for fail, so a Spring Boot
// service's {"status":"UP"} is up.
func TestMonitor_ReadsStatusLikeTheDraft(t *testing.T) {
	for body, want := range map[string]health.Status{
		`{"status":"ok"}`: health.Pass, `{"status":"up"}`: health.Pass, `{"status":"UP"}`: health.Pass,
		`{"status":"PASS"}`: health.Pass, `{"status":"Warn"}`: health.Warn, `{"status":"error"}`: health.Fail,
		`{"status":"DOWN"}`: health.Fail, `{"status":"bogus"}`: health.Pass, // a 200 whose body says nothing known
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, body)
		}))
		snap := health.NewMonitor([]health.Target{{Name: "x", URL: srv.URL}}, health.WithDownAfter(1)).Poll(context.Background())
		srv.Close()
		assert.Equal(t, want, snap.Targets[0].Status, body)
		assert.Equal(t, want != health.Fail, snap.Targets[0].Up, body)
	}
}

// Objectives that start or stop burning their budget are alerted once per
// change, through the same sinks, batched with the targets' changes.
func TestMonitor_BurnAlerts(t *testing.T) {
	srv := httptest.NewServer(health.New("a"))
	defer srv.Close()
	fast := health.Burn{Service: "a", Objective: "availability 99.9%", Severity: "fast burn", Reason: "burn 20× over 1h"}
	slow := fast
	slow.Severity, slow.Reason = "slow burn", "burn 7× over 6h"
	script := [][]health.Burn{nil, {fast}, {fast}, {slow}, {slow}, nil}
	step := 0
	var fail atomic.Bool
	src := func(context.Context) ([]health.Burn, error) {
		if fail.Load() {
			return nil, errors.New("log unreadable")
		}
		b := script[step]
		step++
		return b, nil
	}
	got := newAlerts()
	m := health.NewMonitor([]health.Target{{Name: "a", URL: srv.URL}}, health.WithBurnSource(src), health.WithAlertSink(got.sink()))
	ctx := context.Background()
	m.Poll(ctx) // nothing burns
	m.Poll(ctx)
	al := got.next(t)
	assert.Equal(t, []health.Burn{fast}, al.Burning)
	assert.Contains(t, al.Text(), "BURN a availability 99.9%: fast burn: burn 20× over 1h")
	assert.Equal(t, []health.Burn{fast}, m.Snapshot().Burning)
	m.Poll(ctx) // still fast: no alert
	m.Poll(ctx)
	al = got.next(t)
	assert.Equal(t, []health.Burn{slow}, al.Burning, "a change of severity is alerted")
	fail.Store(true)
	m.Poll(ctx) // the source fails: the state stays
	assert.Equal(t, []health.Burn{slow}, m.Snapshot().Burning)
	fail.Store(false)
	m.Poll(ctx) // slow again
	m.Poll(ctx) // stopped
	al = got.next(t)
	assert.Equal(t, []health.Burn{slow}, al.Cooled)
	assert.Empty(t, al.Burning)
	assert.Contains(t, al.Text(), "OK   a availability 99.9%: no longer burning")
	got.none(t)
	assert.Empty(t, m.Snapshot().Burning)
}
