package breaker

import (
	"sync/atomic"
	"time"
)

// The half-open state: after its open period a breaker admits up to
// maxProbes probe calls; as many successes close it, one failure or the
// probe timeout opens it again.

func (b *Breaker) halfOpen(gen uint64) {
	b.mu.Lock()
	if b.gen != gen || b.current() != Open {
		b.mu.Unlock()
		return
	}
	b.probes, b.probeOK = 0, 0
	b.stopTimer = nil
	b.change(Open, HalfOpen)
	b.mu.Unlock()
	b.dispatch()
}

func (b *Breaker) allowProbe() (func(Outcome), error) {
	b.mu.Lock()
	switch b.current() {
	case Closed:
		b.mu.Unlock()
		return b.Allow()
	case Open:
		b.mu.Unlock()
		return nil, b.reject()
	}
	if b.probes >= b.s.maxProbes {
		b.mu.Unlock()
		if metricsOn.Load() {
			b.stats.rejected.Add(1)
		}
		return nil, b.tooMany
	}
	b.probes++
	gen := b.gen
	if b.stopTimer == nil {
		b.stopTimer = b.s.clock.AfterFunc(b.s.probeTimeout, func() { b.probesTimedOut(gen) })
	}
	b.mu.Unlock()
	var once atomic.Bool
	return func(o Outcome) {
		if once.CompareAndSwap(false, true) {
			b.probeDone(gen, o)
		}
	}, nil
}

func (b *Breaker) probeDone(gen uint64, o Outcome) {
	if metricsOn.Load() {
		b.stats.add(o)
	}
	b.mu.Lock()
	if b.gen != gen || b.current() != HalfOpen {
		b.mu.Unlock()
		return
	}
	b.probes--
	switch o {
	case Failure:
		b.tripLocked(HalfOpen)
	case Success:
		b.probeOK++
		if b.probeOK >= b.s.maxProbes {
			b.closeLocked()
		}
	}
	b.mu.Unlock()
	b.dispatch()
}

func (b *Breaker) probesTimedOut(gen uint64) {
	b.mu.Lock()
	if b.gen == gen && b.current() == HalfOpen {
		b.stopTimer = nil
		b.tripLocked(HalfOpen)
	}
	b.mu.Unlock()
	b.dispatch()
}

// closeLocked closes the breaker after a clean half-open period: the open
// duration starts again from its first value.
func (b *Breaker) closeLocked() {
	if b.stopTimer != nil {
		b.stopTimer()
		b.stopTimer = nil
	}
	b.openBO.Reset()
	b.consec.Store(0)
	b.win.Store(newWindow(b.s.windowCalls, int64(b.s.windowTime)))
	b.openErr.Store(nil)
	b.nextProbe = time.Time{}
	b.change(HalfOpen, Closed)
}
