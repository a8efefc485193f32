package breaker

import (
	"maps"
	"math/rand/v2"
	"sync/atomic"
)

// hostBreaker is a host's breaker and when it was last seen in use. Calls
// only set used, so they read no clock; a sweep turns used into lastSeen.
type hostBreaker struct {
	b        *Breaker
	retries  retryBudget
	used     atomic.Bool
	lastSeen int64 // unix nanoseconds; t.mu
}

// sweepOdds: one call in sweepOdds (and every new host) checks whether a
// sweep is due, which reads the clock.
const sweepOdds = 1024

// host returns the breaker and retry budget of host, making them on first
// use.
func (t *Transport) host(host string) *hostBreaker {
	h := (*t.hosts.Load())[host]
	if h == nil {
		t.mu.Lock()
		if h = (*t.hosts.Load())[host]; h == nil {
			s := t.s
			s.name = host
			h = &hostBreaker{b: newBreaker(s), lastSeen: t.s.clock.Now().UnixNano()}
			h.retries.ratio, h.retries.floor = t.ts.retryRatio, t.ts.retryFloor
			hosts := maps.Clone(*t.hosts.Load())
			hosts[host] = h
			t.hosts.Store(&hosts)
		}
		t.mu.Unlock()
		t.maybeSweep()
		return h
	}
	if !h.used.Load() {
		h.used.Store(true)
	}
	if rand.Uint32()%sweepOdds == 0 {
		t.maybeSweep()
	}
	return h
}

// maybeSweep drops the closed breakers of hosts without calls for longer
// than the idle timeout, at most twice per idle timeout. A host's last call
// is known to the sweep that follows it, so a breaker goes between one and
// one and a half idle timeouts after its host's last call, at a sweep: one
// call in sweepOdds, and each new host, checks whether one is due.
func (t *Transport) maybeSweep() {
	now := t.s.clock.Now().UnixNano()
	every := int64(t.ts.idle) / 2
	if last := t.lastSweep.Load(); now-last < every || !t.lastSweep.CompareAndSwap(last, now) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	hosts := maps.Clone(*t.hosts.Load())
	for host, h := range hosts {
		if h.used.Swap(false) {
			h.lastSeen = now
		} else if now-h.lastSeen > int64(t.ts.idle) && h.b.current() == Closed {
			delete(hosts, host)
		}
	}
	t.hosts.Store(&hosts)
}

// Breaker returns the breaker of host, or nil if the transport has none:
// for tests, /health and dashboards.
func (t *Transport) Breaker(host string) *Breaker {
	if h := (*t.hosts.Load())[host]; h != nil {
		return h.b
	}
	return nil
}

// Breakers returns a snapshot of every host's breaker.
func (t *Transport) Breakers() []Snapshot {
	hosts := *t.hosts.Load()
	out := make([]Snapshot, 0, len(hosts))
	for _, h := range hosts {
		out = append(out, h.b.Snapshot())
	}
	return out
}
