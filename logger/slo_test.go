package logger_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/logger"
)

// spread logs n requests of service evenly over the last d, every k-th one
// answered status and slow ones taking slow.
func spread(s *logger.Store, service string, n int, d time.Duration, k, status int, slowEvery int, slow time.Duration) {
	now := time.Now()
	for i := range n {
		r := logger.Record{Time: now.Add(-time.Duration(i) * d / time.Duration(n)), Service: service, Method: "GET", Route: "/", Status: 200,
			Duration: 10 * time.Millisecond}
		if k > 0 && i%k == 0 {
			r.Status = status
		}
		if slowEvery > 0 && i%slowEvery == 1 {
			r.Duration = slow
		}
		s.Log(r)
	}
}

// The burn rates and budgets follow the SRE Workbook's rule, from the
// rollups.
func TestSLOs_BurnRatesAndBudgets(t *testing.T) {
	s, _ := openStore(t)
	spread(s, "burning", 6000, time.Hour, 50, 500, 0, 0)          // 2% errors for an hour: 20× a 99.9% budget
	spread(s, "smoldering", 7200, 6*time.Hour, 100, 503, 0, 0)    // 1% for 6 hours: 10×
	spread(s, "fine", 7200, 6*time.Hour, 400, 500, 0, 0)          // 0.25%: 2.5×
	spread(s, "clients", 7200, 6*time.Hour, 2, 404, 0, 0)         // half 404s: not errors
	spread(s, "shedding", 7200, 6*time.Hour, 20, 429, 0, 0)       // 5% 429: errors
	spread(s, "slow", 7200, 6*time.Hour, 0, 0, 20, 2*time.Second) // 5% over 300ms at 99%: 5×
	require.NoError(t, s.Flush(context.Background()))

	avail := logger.Objective{Availability: 0.999}
	got, err := s.SLOs(context.Background(), map[string]logger.Objective{
		"burning": avail, "smoldering": avail, "fine": avail, "clients": avail, "shedding": avail,
		"slow":    {Latency: 300 * time.Millisecond, LatencyTarget: 0.99, Window: 7 * 24 * time.Hour},
		"nothing": avail,
	})
	require.NoError(t, err)
	by := map[string]logger.SLOReport{}
	for _, r := range got {
		by[r.Service] = r
	}
	require.Len(t, by, 7)

	b := by["burning"].Availability
	require.NotNil(t, b)
	assert.Equal(t, logger.FastBurnAlert, b.Alert)
	assert.InDelta(t, 20, b.Burn1h, 0.5)
	assert.Greater(t, b.Burn5m, logger.FastBurn)
	assert.Equal(t, int64(6000), b.Total)
	assert.Equal(t, int64(6000-120), b.Good)
	assert.InDelta(t, 1-20.0, b.Remaining, 0.01, "120 failures against a budget of 6")
	assert.Nil(t, by["burning"].Latency)

	sm := by["smoldering"].Availability
	assert.Equal(t, logger.SlowBurnAlert, sm.Alert)
	assert.InDelta(t, 10, sm.Burn6h, 0.5)
	assert.Less(t, sm.Burn1h, logger.FastBurn)

	assert.Equal(t, "", by["fine"].Availability.Alert)
	assert.InDelta(t, 2.5, by["fine"].Availability.Burn6h, 0.3)
	assert.Zero(t, by["clients"].Availability.Burn6h, "4xx other than 429 and 408 are the client's")
	assert.Equal(t, logger.FastBurnAlert, by["shedding"].Availability.Alert, "429 counts against availability: 50×")

	sl := by["slow"]
	assert.Nil(t, sl.Availability)
	require.NotNil(t, sl.Latency)
	assert.InDelta(t, 5, sl.Latency.Burn6h, 0.3)
	assert.Equal(t, "", sl.Latency.Alert)

	n := by["nothing"].Availability
	assert.Equal(t, 1.0, n.Remaining, "no requests, nothing spent")
	assert.Zero(t, n.Burn5m)

	// An override: only 5xx count, so the 429s do not.
	got, err = s.SLOs(context.Background(), map[string]logger.Objective{"shedding": {Availability: 0.999, Errors: [][2]int{{500, 599}}}})
	require.NoError(t, err)
	assert.Zero(t, got[0].Availability.Burn6h)
}

func TestObjective_String(t *testing.T) {
	assert.Equal(t, "availability 99.9%, latency 300ms at 99%", logger.Objective{Availability: 0.999, Latency: 300 * time.Millisecond, LatencyTarget: 0.99}.String())
	assert.Equal(t, "99.95%", logger.Percent(0.9995))
}
