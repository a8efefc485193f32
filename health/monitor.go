package health

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/flotilla-go/flotilla/internal/neterr"
)

// Defaults of NewMonitor.
const (
	// DefaultInterval is the time between two polls of the fleet.
	DefaultInterval = 30 * time.Second
	// DefaultProbeTimeout bounds one probe of one target.
	DefaultProbeTimeout = 5 * time.Second
	// DefaultConcurrency is the most probes in flight at once.
	DefaultConcurrency = 16
	// DefaultDownAfter is how many failed probes in a row make a target
	// down. One passing probe makes it up again.
	DefaultDownAfter = 2
)

// maxBody bounds how much of a health response the monitor reads.
const maxBody = 64 << 10

// Target is one service the Monitor polls.
type Target struct {
	// Name is the service's name, used in alerts.
	Name string
	// URL is its health endpoint, such as http://agent-geo/health.
	URL string
	// Client sends the probes (default http.DefaultClient). Give a client
	// whose transport dials unix sockets to reach services that listen on
	// one.
	Client *http.Client
}

// TargetState is what the Monitor knows of one target after a poll.
type TargetState struct {
	// Name is the target's name.
	Name string `json:"name"`
	// Up is false once DefaultDownAfter probes in a row failed.
	Up bool `json:"up"`
	// Status is the last probe's result: the status the service reported,
	// or fail when it could not be reached.
	Status Status `json:"status"`
	// Reason says why the last probe did not pass: the HTTP status, a
	// timeout, a refused connection, or the service's own output.
	Reason string `json:"reason,omitempty"`
	// Detail is the part of Reason that says what is wrong in the
	// target's own words: the outputs of its checks that did not pass, or
	// the network's reason ("connection refused") when it was not reached;
	// for a short display such as flotilla ps.
	Detail string `json:"detail,omitempty"`
	// Answered is true when the last probe got an HTTP response, whatever
	// its status; false when the service could not be reached at all
	// (refused, timed out, no such socket).
	Answered bool `json:"answered"`
	// Failures is the number of failed probes in a row.
	Failures int `json:"failures"`
	// Since is when Up last changed (or when monitoring began).
	Since time.Time `json:"since"`
	// Checked is when the last probe ended.
	Checked time.Time `json:"checked"`
}

// Snapshot is the state of every target after the last poll, in target
// order.
type Snapshot struct {
	// Time is when the last poll ended; zero before the first one.
	Time time.Time `json:"time"`
	// Targets is the state of each target.
	Targets []TargetState `json:"targets"`
	// Burning is the objectives burning their budget (see
	// WithBurnSource), by service.
	Burning []Burn `json:"burning,omitempty"`
}

// Burn is one objective of one service that burns its error budget too
// fast, as a burn source reports it.
type Burn struct {
	// Service is the service's name.
	Service string `json:"service"`
	// Objective names it, such as "availability 99.9%".
	Objective string `json:"objective"`
	// Severity is how fast it burns, such as "fast burn" (page) or
	// "slow burn" (ticket).
	Severity string `json:"severity"`
	// Reason says by how much, such as "burn 16.2× over 1h, 15.0× over
	// 5m; 71% of the 30d budget left".
	Reason string `json:"reason"`
}

func (b Burn) key() string { return b.Service + "\x00" + b.Objective }

func sortBurns(bs []Burn) {
	slices.SortFunc(bs, func(a, b Burn) int { return strings.Compare(a.key(), b.key()) })
}

// Down returns the names of the targets that are down.
func (s Snapshot) Down() []string {
	var out []string
	for _, t := range s.Targets {
		if !t.Up {
			out = append(out, t.Name)
		}
	}
	return out
}

// Alert is one change of the fleet's state: every target that went down and
// every one that recovered in the same poll.
type Alert struct {
	// Time is when the poll that saw the change ended.
	Time time.Time `json:"time"`
	// Down lists the targets that went down, with their reasons.
	Down []TargetState `json:"down,omitempty"`
	// Up lists the targets that recovered.
	Up []TargetState `json:"up,omitempty"`
	// Burning lists the objectives that started burning their error
	// budget, or changed severity; Cooled those that stopped.
	Burning []Burn `json:"burning,omitempty"`
	Cooled  []Burn `json:"cooled,omitempty"`
	// StillDown is how many targets are down after this change.
	StillDown int `json:"stillDown"`
	// Total is the number of targets watched.
	Total int `json:"total"`
}

// Text renders the alert as a short message for chat and e-mail.
func (a Alert) Text() string {
	var b strings.Builder
	var parts []string
	if len(a.Down) > 0 {
		parts = append(parts, fmt.Sprintf("%d down", len(a.Down)))
	}
	if len(a.Up) > 0 {
		parts = append(parts, fmt.Sprintf("%d recovered", len(a.Up)))
	}
	if len(a.Burning) > 0 {
		parts = append(parts, fmt.Sprintf("%d burning their error budget", len(a.Burning)))
	}
	if len(a.Cooled) > 0 {
		parts = append(parts, fmt.Sprintf("%d no longer burning", len(a.Cooled)))
	}
	fmt.Fprintf(&b, "%s (%d of %d down now)\n", strings.Join(parts, ", "), a.StillDown, a.Total)
	for _, t := range a.Down {
		fmt.Fprintf(&b, "DOWN %s: %s\n", t.Name, t.Reason)
	}
	for _, t := range a.Up {
		fmt.Fprintf(&b, "UP   %s\n", t.Name)
	}
	for _, x := range a.Burning {
		fmt.Fprintf(&b, "BURN %s %s: %s: %s\n", x.Service, x.Objective, x.Severity, x.Reason)
	}
	for _, x := range a.Cooled {
		fmt.Fprintf(&b, "OK   %s %s: no longer burning\n", x.Service, x.Objective)
	}
	return b.String()
}

// Monitor polls a fleet's health endpoints and sends one Alert per change of
// the fleet's state. It is safe for concurrent use.
type Monitor struct {
	interval    time.Duration
	timeout     time.Duration
	concurrency int
	downAfter   int
	now         func() time.Time
	sinks       []*sinkQueue

	burns func(ctx context.Context) ([]Burn, error)

	mu      sync.Mutex
	targets []Target
	states  map[string]*TargetState
	snap    Snapshot
	lastSet string          // the set of down targets last alerted
	burning map[string]Burn // by Burn.key, as last alerted
}

// A MonitorOption changes a default of NewMonitor.
type MonitorOption func(*Monitor)

// WithInterval sets the time between polls (default DefaultInterval).
func WithInterval(d time.Duration) MonitorOption {
	return func(m *Monitor) {
		if d > 0 {
			m.interval = d
		}
	}
}

// WithProbeTimeout bounds one probe (default DefaultProbeTimeout).
func WithProbeTimeout(d time.Duration) MonitorOption {
	return func(m *Monitor) {
		if d > 0 {
			m.timeout = d
		}
	}
}

// WithConcurrency sets the most probes in flight (default
// DefaultConcurrency).
func WithConcurrency(n int) MonitorOption {
	return func(m *Monitor) {
		if n > 0 {
			m.concurrency = n
		}
	}
}

// WithDownAfter sets how many failed probes in a row make a target down
// (default DefaultDownAfter).
func WithDownAfter(n int) MonitorOption {
	return func(m *Monitor) {
		if n > 0 {
			m.downAfter = n
		}
	}
}

// WithAlertSink adds a destination for alerts. Each sink gets every alert
// in order, from its own goroutine, retried with backoff when it fails; a
// failing or slow sink never delays polling. Without sinks, alerts are only
// visible in Snapshot.
func WithAlertSink(s AlertSink) MonitorOption {
	return func(m *Monitor) { m.sinks = append(m.sinks, newSinkQueue(s)) }
}

// WithBurnSource makes every poll also ask f which objectives burn their
// error budget too fast, such as the SLOs that package logger computes from
// the shared log (see flotilla's dashboard for the wiring). A change, an
// objective that starts burning, changes severity or stops, is alerted in
// the same one Alert per poll as targets going down and up. f runs with
// the probe timeout; when it fails, the objectives keep their last state.
func WithBurnSource(f func(ctx context.Context) ([]Burn, error)) MonitorOption {
	return func(m *Monitor) { m.burns = f }
}

// WithMonitorClock sets the clock that stamps the monitor's checks and
// state changes (default: the system clock). Polls keep the system's pace.
func WithMonitorClock(c Clock) MonitorOption {
	return func(m *Monitor) { m.now = c.Now }
}

// NewMonitor returns a monitor of targets. Every target starts up; call Run
// to poll, or Poll for one round.
func NewMonitor(targets []Target, opts ...MonitorOption) *Monitor {
	m := &Monitor{
		interval:    DefaultInterval,
		timeout:     DefaultProbeTimeout,
		concurrency: DefaultConcurrency,
		downAfter:   DefaultDownAfter,
		now:         time.Now,
		states:      map[string]*TargetState{},
	}
	for _, o := range opts {
		o(m)
	}
	m.SetTargets(targets)
	return m
}

// SetTargets replaces the list of targets, keeping the state of those that
// stay, for example after the port map was reloaded.
func (m *Monitor) SetTargets(targets []Target) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.targets = append([]Target(nil), targets...)
	states := make(map[string]*TargetState, len(targets))
	for _, t := range targets {
		if st, ok := m.states[t.Name]; ok {
			states[t.Name] = st
		} else {
			states[t.Name] = &TargetState{Name: t.Name, Up: true, Status: Pass, Since: m.now()}
		}
	}
	m.states = states
}

// Run polls every interval until ctx ends, then waits for the sinks to
// deliver what is queued (up to one probe timeout) and returns ctx's error.
func (m *Monitor) Run(ctx context.Context) error {
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		if ctx.Err() == nil {
			m.Poll(ctx)
		}
		select {
		case <-ctx.Done():
			m.closeSinks(m.timeout)
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Poll probes every target once, updates their states, queues one alert
// if the fleet's state changed, and returns the new snapshot.
func (m *Monitor) Poll(ctx context.Context) Snapshot {
	m.mu.Lock()
	targets := append([]Target(nil), m.targets...)
	m.mu.Unlock()

	results := make([]probeResult, len(targets))
	sem := make(chan struct{}, m.concurrency)
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			results[i] = m.probe(ctx, t)
		}()
	}
	var (
		burns  []Burn
		burnOK bool
	)
	if m.burns != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bctx, cancel := context.WithTimeout(ctx, m.timeout)
			defer cancel()
			var err error
			burns, err = m.burns(bctx)
			burnOK = err == nil
		}()
	}
	wg.Wait()

	now := m.now()
	m.mu.Lock()
	var alert Alert
	if burnOK {
		alert.Burning, alert.Cooled = m.updateBurns(burns)
	}
	for i, t := range targets {
		st := m.states[t.Name]
		if st == nil { // targets replaced during the poll
			continue
		}
		r := results[i]
		st.Status, st.Reason, st.Detail, st.Answered, st.Checked = r.status, r.reason, r.detail, r.answered, now
		if r.status == Fail {
			st.Failures++
			if st.Up && st.Failures >= m.downAfter {
				st.Up, st.Since = false, now
				alert.Down = append(alert.Down, *st)
			}
		} else {
			st.Failures = 0
			if !st.Up {
				st.Up, st.Since = true, now
				alert.Up = append(alert.Up, *st)
			}
		}
	}
	snap := Snapshot{Time: now}
	var down []string
	for _, t := range targets {
		if st := m.states[t.Name]; st != nil {
			snap.Targets = append(snap.Targets, *st)
			if !st.Up {
				down = append(down, t.Name)
			}
		}
	}
	for _, b := range m.burning {
		snap.Burning = append(snap.Burning, b)
	}
	sortBurns(snap.Burning)
	m.snap = snap
	set := strings.Join(down, "\x00")
	send := (len(alert.Down) > 0 || len(alert.Up) > 0) && set != m.lastSet
	send = send || len(alert.Burning) > 0 || len(alert.Cooled) > 0
	if send {
		m.lastSet = set
		alert.Time, alert.StillDown, alert.Total = now, len(down), len(snap.Targets)
	}
	m.mu.Unlock()
	if send {
		for _, s := range m.sinks {
			s.push(alert)
		}
	}
	return snap
}

// updateBurns records the objectives burning now and returns those that
// started or changed severity, and those that stopped. m.mu is held.
func (m *Monitor) updateBurns(now []Burn) (started, stopped []Burn) {
	next := make(map[string]Burn, len(now))
	for _, b := range now {
		next[b.key()] = b
		if old, ok := m.burning[b.key()]; !ok || old.Severity != b.Severity {
			started = append(started, b)
		}
	}
	for k, b := range m.burning {
		if _, ok := next[k]; !ok {
			stopped = append(stopped, b)
		}
	}
	m.burning = next
	sortBurns(started)
	sortBurns(stopped)
	return started, stopped
}

// Snapshot returns the state after the last poll.
func (m *Monitor) Snapshot() Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.snap
	s.Targets = slices.Clone(s.Targets)
	s.Burning = slices.Clone(s.Burning)
	return s
}

// probeResult is what one probe found.
type probeResult struct {
	status         Status
	reason, detail string
	answered       bool
}

// probe asks one target for its health.
func (m *Monitor) probe(ctx context.Context, t Target) probeResult {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	unreached := func(reason string) probeResult { return probeResult{status: Fail, reason: reason, detail: reason} }
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL, nil)
	if err != nil {
		return unreached("bad health URL: " + err.Error())
	}
	req.Header.Set("Accept", MediaType+", application/json;q=0.9, */*;q=0.1")
	client := t.Client
	if client == nil {
		client = http.DefaultClient
	}
	res, err := client.Do(req)
	if err != nil {
		return unreached(neterr.Describe(err, m.timeout))
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxBody))
	if err != nil {
		r := unreached(neterr.Describe(err, m.timeout))
		r.answered = true
		return r
	}
	io.Copy(io.Discard, io.LimitReader(res.Body, maxBody)) // let the connection be reused
	ct, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type"))
	if ct == MediaType || ct == "application/json" {
		var hr Response
		if err := json.Unmarshal(body, &hr); err == nil && hr.Status != "" {
			if st, ok := ParseStatus(string(hr.Status)); ok {
				hr.Status = st
				return fromReport(res, &hr)
			}
		}
	}
	if res.StatusCode >= 200 && res.StatusCode < 300 {
		return probeResult{status: Pass, answered: true}
	}
	return probeResult{status: Fail, reason: res.Status, detail: res.Status, answered: true}
}

// fromReport turns a parsed health response into the probe's result: the
// reason is the HTTP status, the service's status and, as the detail, the
// words of the checks that did not pass.
func fromReport(res *http.Response, hr *Response) probeResult {
	if hr.Status == Pass {
		return probeResult{status: Pass, answered: true}
	}
	detail := hr.Output // the failing checks' outputs, from this package's services
	if detail == "" {
		var keys []string
		for k, rs := range hr.Checks {
			for _, r := range rs {
				if r.Status != Pass && r.Output != "" {
					keys = append(keys, k+": "+r.Output)
				}
			}
		}
		slices.Sort(keys)
		detail = strings.Join(keys, "; ")
	}
	reason := res.Status + ": " + string(hr.Status)
	if detail != "" {
		reason += ": " + detail
	}
	return probeResult{status: hr.Status, reason: reason, detail: detail, answered: true}
}
