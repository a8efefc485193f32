package logger

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// exactRank is the nearest-rank percentile of sorted durations.
func exactRank(sorted []int64, q float64) int64 {
	i := int(math.Ceil(q * float64(len(sorted))))
	return sorted[min(max(i, 1), len(sorted))-1]
}

// Every percentile read from the histogram is within 1/64 of the exact one,
// whatever the distribution.
func TestHist_PercentilesWithinTwoPercent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dists := map[string]func() int64{
		"uniform 1µs-10s": func() int64 { return 1 + rng.Int64N(10_000_000) },
		"lognormal ~5ms":  func() int64 { return int64(math.Exp(8.5 + 1.2*rng.NormFloat64())) },
		"bimodal":         func() int64 { return []int64{200, 250_000}[rng.IntN(2)] + rng.Int64N(100) },
		"tiny":            func() int64 { return rng.Int64N(40) },
		"one value":       func() int64 { return 123_457 },
	}
	for name, gen := range dists {
		t.Run(name, func(t *testing.T) {
			var h hist
			raw := make([]int64, 20_000)
			for i := range raw {
				raw[i] = gen()
				h.add(histBucket(raw[i]), 1)
			}
			slices.Sort(raw)
			for _, q := range []float64{0.001, 0.5, 0.9, 0.95, 0.99, 0.999, 1} {
				exact := exactRank(raw, q)
				got := h.quantile(q).Microseconds()
				if exact == 0 {
					assert.Zero(t, got, "q=%v", q)
					continue
				}
				assert.InEpsilon(t, float64(exact), float64(got), 1.0/64, "q=%v", q)
			}
		})
	}
}

func TestHistBucket_HoldsItsValues(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := int64(0); i < 1<<16; i++ {
		us := i
		if i >= 1<<12 {
			us = rng.Int64N(1 << 40)
		}
		b := histBucket(us)
		require.Equal(t, b, histBucket(b), "a bucket's name is in the bucket (%d)", us)
		if us >= histSub {
			require.LessOrEqual(t, math.Abs(float64(b-us))/float64(us), 1.0/64, "us=%d", us)
		} else {
			require.Equal(t, us, b)
		}
	}
	assert.Equal(t, int64(0), histBucket(-5), "negative durations count as 0")
	assert.Equal(t, histBucket(math.MaxInt64), histBucket(histBucket(math.MaxInt64)))
}

func TestHist_MergeAndJSON(t *testing.T) {
	var a, b hist
	big, huge := histBucket(1520), histBucket(99999) // 1519 (index 207), 99327 (index 400)
	a.add(10, 2)
	a.add(big, 1)
	b.add(3, 1)
	b.add(big, 4)
	b.add(huge, 1)
	a.merge(b)
	assert.Equal(t, hist{{3, 1}, {10, 2}, {big, 5}, {huge, 1}}, a)
	assert.Equal(t, int64(9), a.total())
	js := a.appendJSON(nil)
	assert.Equal(t, `[3,1,-6,2,-196,5,-192,1]`, string(js), "the first index, then counts, and the lengths of the empty runs between them")
	back, err := parseHist(nil, js)
	require.NoError(t, err)
	assert.Equal(t, a, back)
	for _, empty := range []string{"[]", "{}"} {
		h, err := parseHist(nil, []byte(empty))
		require.NoError(t, err)
		assert.Empty(t, h)
		assert.Equal(t, time.Duration(0), h.quantile(0.5))
		assert.Equal(t, "[]", string(h.appendJSON(nil)))
	}
	assert.Equal(t, "[0,1,1]", string(hist{{0, 1}, {1, 1}}.appendJSON(nil)), "neighbours need no run")
}

// Files written before the arrays hold objects of bucket names; they read
// as the same histogram, and are written back as arrays.
func TestParseHist_ReadsTheObjectsOfOlderVersions(t *testing.T) {
	h, err := parseHist(nil, []byte(`{"3":1,"10":2,"1519":5,"99327":1}`))
	require.NoError(t, err)
	assert.Equal(t, hist{{3, 1}, {10, 2}, {1519, 5}, {99327, 1}}, h)
	assert.Equal(t, `[3,1,-6,2,-196,5,-192,1]`, string(h.appendJSON(nil)))
	// A name inside a bucket but not its middle (only a hand-written file
	// has one) counts in that bucket.
	h, err = parseHist(nil, []byte(`{"1519":1,"1520":2}`))
	require.NoError(t, err)
	assert.Equal(t, "[207,3]", string(h.appendJSON(nil)))
}

func TestParseHist_RefusesWhatItDidNotWrite(t *testing.T) {
	for _, bad := range []string{"", "{", "[", "[5]", "[5,-2]", "[5,-2,-1,1]", "[5,0]", "[5,1,0,1]", "[-1,1]", "[01,1]", "[1,01]",
		"[1,-0,1]", "[1,1,]", "[,1]", "[1 ,1]", "[1,1]x", "[1,1.5]", "[99999999999999999999,1]", "[1887,1,1]", "[1,-1887,1]", "[1888,1]",
		`{"1":}`, `{"1":0}`, `{"2":1,"1":1}`, `{"1":1,}`, `{1:1}`,
		`{"1":1 ,"2":1}`, `{"-1":1}`, `{"0":01}`, `{"07":1}`, `{"1":1}x`, `{"99999999999999999999":1}`, `{"1":1,"1":2}`} {
		_, err := parseHist(nil, []byte(bad))
		assert.ErrorIs(t, err, errHistFormat, "%q", bad)
	}
	h, err := parseHist(nil, []byte("[1887,1]"))
	require.NoError(t, err, "the last bucket")
	assert.Equal(t, histBucket(math.MaxInt64), h[0].us)
}

// Whatever parses writes back as an array that parses to the same buckets;
// an array writes back as itself.
func FuzzParseHist(f *testing.F) {
	f.Add([]byte(`[3,1,-6,2]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"3":1,"10":2}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"1":1,"1":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHist(nil, b)
		if err != nil {
			return
		}
		out := h.appendJSON(nil)
		if len(b) > 0 && b[0] == '[' && string(out) != string(b) {
			t.Fatalf("read %q, wrote back %q", b, out)
		}
		back, err := parseHist(nil, out)
		if err != nil {
			t.Fatalf("%q wrote %q, which does not parse: %v", b, out, err)
		}
		var x, y histAcc
		x.add(h)
		y.add(back)
		if x != y {
			t.Fatalf("%q and %q hold different buckets", b, out)
		}
		for i := 1; i < len(h); i++ {
			if h[i].us <= h[i-1].us || h[i].n < 1 {
				t.Fatalf("%q: bins out of order: %v", b, h)
			}
		}
	})
}

// The accumulator gives the percentiles of the merged histograms.
func TestHistAcc_MatchesMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var merged hist
	var acc histAcc
	for range 50 {
		var h hist
		for range 200 {
			h.add(histBucket(int64(math.Exp(6+2*rng.NormFloat64()))), 1)
		}
		merged.merge(h)
		acc.add(h)
	}
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 1} {
		assert.Equal(t, merged.quantile(q), acc.quantile(q), "q=%v", q)
	}
	for us := int64(0); us < 1<<22; us += 7 {
		b := histBucket(us)
		require.Equal(t, b, histName(histIndex(b)), "us=%d", us)
	}
	assert.Equal(t, histBucket(math.MaxInt64), histName(histIndex(histBucket(math.MaxInt64))))
	assert.Less(t, histIndex(histBucket(math.MaxInt64)), histSlots)
}
