package traceid_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/flotilla-go/flotilla/internal/traceid"
)

func TestNew_OrderedByTime(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 18, 0, 0, 0, time.UTC)
	prev := traceid.New(t0)
	for i := 1; i <= 1000; i++ {
		at := t0.Add(time.Duration(i) * time.Millisecond)
		id := traceid.New(at)
		require.True(t, id.IsValid())
		require.Negative(t, bytes.Compare(prev[:], id[:]), "an id made a millisecond later sorts after")
		require.Less(t, prev.String(), id.String(), "in hex too, as the request log stores it")
		require.True(t, at.Equal(traceid.Time(id)), "the id carries its time")
		prev = id
	}
}

func TestNew_RandomWithinAMillisecond(t *testing.T) {
	now := time.Now()
	seen := map[trace.TraceID]bool{}
	for range 10_000 {
		id := traceid.New(now)
		require.False(t, seen[id], "ids made in the same millisecond differ")
		seen[id] = true
		require.True(t, now.Truncate(time.Millisecond).Equal(traceid.Time(id)))
	}
}

func TestGenerator_RatioSampling(t *testing.T) {
	// TraceIDRatioBased reads the last 8 bytes: they must be random for a
	// ratio to hold, even when every id is made in the same millisecond.
	tp := sdktrace.NewTracerProvider(sdktrace.WithIDGenerator(traceid.Generator{}),
		sdktrace.WithSampler(sdktrace.TraceIDRatioBased(0.25)))
	defer tp.Shutdown(context.Background())
	tr := tp.Tracer("test")
	const n = 20_000
	sampled := 0
	for range n {
		_, span := tr.Start(context.Background(), "op")
		if span.SpanContext().IsSampled() {
			sampled++
		}
		require.True(t, span.SpanContext().SpanID().IsValid())
		span.End()
	}
	// n·p = 5,000 with a standard deviation of 61: 4,500 to 5,500 is over
	// 8 deviations either way.
	assert.InDelta(t, n/4, sampled, 500)
}

func TestGenerator_SpanIDs(t *testing.T) {
	g := traceid.Generator{}
	tid, sid := g.NewIDs(context.Background())
	assert.True(t, tid.IsValid())
	assert.True(t, sid.IsValid())
	assert.WithinDuration(t, time.Now(), traceid.Time(tid), time.Second)
	assert.NotEqual(t, sid, g.NewSpanID(context.Background(), tid))
}
