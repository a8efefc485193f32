package breaker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/flotilla-go/flotilla/breaker"
)

// Metrics go through the global MeterProvider: calls by outcome,
// rejections, the state gauge and transitions.
func TestMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	otel.SetMeterProvider(mp)
	t.Cleanup(func() { mp.Shutdown(context.Background()) })

	// A name of its own: breakers of one name add up, and an earlier run's
	// breaker may still be alive.
	name := fmt.Sprintf("metrics-test-%d", time.Now().UnixNano())
	b := breaker.New(breaker.WithName(name), breaker.WithConsecutiveFailures(2))
	collect := func() map[string]int64 {
		var rm metricdata.ResourceMetrics
		require.NoError(t, reader.Collect(context.Background(), &rm))
		got := map[string]int64{}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				var points []metricdata.DataPoint[int64]
				switch d := m.Data.(type) {
				case metricdata.Sum[int64]:
					points = d.DataPoints
				case metricdata.Gauge[int64]:
					points = d.DataPoints
				}
				for _, p := range points {
					if v, _ := p.Attributes.Value("breaker"); v.AsString() != name {
						continue
					}
					key := m.Name
					if v, ok := p.Attributes.Value("outcome"); ok {
						key += "/" + v.AsString()
					}
					if v, ok := p.Attributes.Value("to"); ok {
						key += "/" + v.AsString()
					}
					got[key] = p.Value
				}
			}
		}
		return got
	}
	collect() // the first collection turns the per-call counters on

	call(t, b, breaker.Success)
	call(t, b, breaker.Success)
	call(t, b, breaker.Neutral)
	call(t, b, breaker.Failure)
	call(t, b, breaker.Failure) // trips
	_, err := b.Allow()
	require.ErrorIs(t, err, breaker.ErrOpen)

	got := collect()
	assert.Equal(t, int64(2), got["flotilla.breaker.calls/success"])
	assert.Equal(t, int64(2), got["flotilla.breaker.calls/failure"])
	assert.Equal(t, int64(1), got["flotilla.breaker.calls/neutral"])
	assert.Equal(t, int64(1), got["flotilla.breaker.rejections"])
	assert.Equal(t, int64(2), got["flotilla.breaker.state"], "2 is open")
	assert.Equal(t, int64(1), got["flotilla.breaker.transitions/open"])
}
