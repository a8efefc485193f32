package platform

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/trace"

	"github.com/flotilla-go/flotilla/internal/traceid"
	"github.com/flotilla-go/flotilla/logger"
)

// keptLogs is a log exporter that keeps what it gets.
type keptLogs struct {
	mu   sync.Mutex
	recs []sdklog.Record
}

func (k *keptLogs) Export(_ context.Context, rs []sdklog.Record) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, r := range rs {
		k.recs = append(k.recs, r.Clone())
	}
	return nil
}
func (*keptLogs) Shutdown(context.Context) error   { return nil }
func (*keptLogs) ForceFlush(context.Context) error { return nil }

// Records queued by requests are emitted by the exporter's goroutine with
// their request's trace and span ids; flush emits every one queued before
// it, and a record observed after it is not sent, without a panic.
func TestRecordExporter_FlushEmitsWhatWasQueued(t *testing.T) {
	kept := &keptLogs{}
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewSimpleProcessor(kept)))
	e := newRecordExporter(lp.Logger("test"))
	tid, sid := traceid.Generator{}.NewIDs(context.Background())
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
	for i := range 100 {
		e.observe(ctx, logger.Record{Method: "GET", Path: "/x", Status: 200 + i%2*300, RequestID: "r"})
	}
	e.observe(context.Background(), logger.Record{Method: "GET", Path: "/untraced", Status: 200})
	require.NoError(t, e.flush(context.Background()))
	e.observe(ctx, logger.Record{Method: "GET", Path: "/late", Status: 200})
	require.NoError(t, lp.Shutdown(context.Background()))

	kept.mu.Lock()
	defer kept.mu.Unlock()
	require.Len(t, kept.recs, 101)
	for _, r := range kept.recs[:100] {
		assert.Equal(t, tid, r.TraceID())
		assert.Equal(t, sid, r.SpanID())
	}
	assert.False(t, kept.recs[100].TraceID().IsValid(), "a request without a trace gets a record without one")
	assert.Equal(t, "GET 500", kept.recs[1].Body().AsString())
	assert.Zero(t, e.dropped.Load())
}

// A full queue drops the record and counts it; the request never waits.
func TestRecordExporter_FullQueueDrops(t *testing.T) {
	e := &recordExporter{queue: make(chan exportedRecord, exportQueue)} // nobody drains it
	for range exportQueue + 5 {
		e.observe(context.Background(), logger.Record{Status: 200})
	}
	assert.Equal(t, uint64(5), e.dropped.Load())
	assert.Len(t, e.queue, exportQueue)
}
