package breaker

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"weak"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// metricsOn turns on the per-call counters. It becomes true the first time
// a MeterProvider installed with otel.SetMeterProvider collects the
// breaker metrics; until then a call pays one atomic load for metrics.
var metricsOn atomic.Bool

// counters are a breaker's totals for metrics.
type counters struct {
	success, failure, neutral, rejected atomic.Int64
	transitions                         [3]atomic.Int64 // by the state entered
}

func (c *counters) add(o Outcome) {
	switch o {
	case Success:
		c.success.Add(1)
	case Failure:
		c.failure.Add(1)
	default:
		c.neutral.Add(1)
	}
}

// The live breakers, held weakly so that dropped breakers are forgotten, and
// the MeterProvider the instruments are registered with.
var (
	regMu          sync.Mutex
	registry       = map[weak.Pointer[Breaker]]struct{}{}
	registeredWith metric.MeterProvider
	registration   metric.Registration
)

func register(b *Breaker) {
	ensureInstruments()
	p := weak.Make(b)
	regMu.Lock()
	registry[p] = struct{}{}
	regMu.Unlock()
	runtime.AddCleanup(b, func(p weak.Pointer[Breaker]) {
		regMu.Lock()
		delete(registry, p)
		regMu.Unlock()
	}, p)
}

// ensureInstruments registers the observable instruments with the global
// MeterProvider, again when it was replaced since the last New.
func ensureInstruments() {
	mp := otel.GetMeterProvider()
	regMu.Lock()
	defer regMu.Unlock()
	if mp == registeredWith {
		return
	}
	if registration != nil {
		registration.Unregister()
		registration = nil
	}
	registeredWith = mp
	registration = registerInstruments(mp)
}

// registerInstruments registers observable instruments with mp. Their
// callback reads the counters each breaker keeps, so metrics cost nothing
// per call beyond the counters themselves. regMu is held.
func registerInstruments(mp metric.MeterProvider) metric.Registration {
	m := mp.Meter("github.com/flotilla-go/flotilla/breaker")
	calls, err1 := m.Int64ObservableCounter("flotilla.breaker.calls",
		metric.WithDescription("Calls through the breaker, by outcome (success, failure, neutral)."), metric.WithUnit("{call}"))
	rejected, err2 := m.Int64ObservableCounter("flotilla.breaker.rejections",
		metric.WithDescription("Calls refused because the breaker was open or had enough probes."), metric.WithUnit("{call}"))
	state, err3 := m.Int64ObservableGauge("flotilla.breaker.state",
		metric.WithDescription("State of the breaker: 0 closed, 1 half-open, 2 open."))
	trans, err4 := m.Int64ObservableCounter("flotilla.breaker.transitions",
		metric.WithDescription("Changes of state, by the state entered."), metric.WithUnit("{transition}"))
	for _, err := range []error{err1, err2, err3, err4} {
		if err != nil {
			otel.Handle(err)
			return nil
		}
	}
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		metricsOn.Store(true)
		regMu.Lock()
		live := make([]*Breaker, 0, len(registry))
		for p := range registry {
			if b := p.Value(); b != nil {
				live = append(live, b)
			}
		}
		regMu.Unlock()
		for _, b := range live {
			name := attribute.String("breaker", b.s.name)
			o.ObserveInt64(calls, b.stats.success.Load(), metric.WithAttributes(name, attribute.String("outcome", "success")))
			o.ObserveInt64(calls, b.stats.failure.Load(), metric.WithAttributes(name, attribute.String("outcome", "failure")))
			o.ObserveInt64(calls, b.stats.neutral.Load(), metric.WithAttributes(name, attribute.String("outcome", "neutral")))
			o.ObserveInt64(rejected, b.stats.rejected.Load(), metric.WithAttributes(name))
			o.ObserveInt64(state, int64(b.current()), metric.WithAttributes(name))
			for st := range b.stats.transitions {
				o.ObserveInt64(trans, b.stats.transitions[st].Load(),
					metric.WithAttributes(name, attribute.String("to", State(st).String())))
			}
		}
		return nil
	}, calls, rejected, state, trans)
	if err != nil {
		otel.Handle(err)
		return nil
	}
	return reg
}
