// Package traceid makes OpenTelemetry trace ids that begin with the time
// they were made, so that an index on trace ids grows at its end, as an
// index on time does, instead of at a random place for every new trace.
//
// A trace id is 16 bytes: the first 6 are the Unix time in milliseconds,
// big-endian (until the year 10889), the other 10 are random. The 8 bytes
// that OpenTelemetry's TraceIDRatioBased sampler reads (the last 8) are all
// random, so sampling by ratio works as with random ids; AWS X-Ray's ids
// and UUIDv7 put a time first in the same way.
package traceid

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// New returns a trace id for a trace that starts at t.
func New(t time.Time) trace.TraceID {
	var id trace.TraceID
	ms := uint64(t.UnixMilli())
	// 48 bits of time, then 16 random bits, then 64 random bits.
	binary.BigEndian.PutUint64(id[:8], ms<<16|rand.Uint64()&0xffff)
	binary.BigEndian.PutUint64(id[8:], rand.Uint64())
	if !id.IsValid() { // only at the Unix epoch with zero random bits
		id[15] = 1
	}
	return id
}

// Time returns the time in a trace id made by New, to the millisecond.
// Ids made elsewhere give meaningless times.
func Time(id trace.TraceID) time.Time {
	return time.UnixMilli(int64(binary.BigEndian.Uint64(id[:8]) >> 16))
}

// Generator implements the OpenTelemetry SDK's IDGenerator
// (sdktrace.WithIDGenerator): trace ids from New at the current time,
// random span ids. It is safe for concurrent use.
type Generator struct{}

// NewIDs returns a new trace id, made now, and a random span id.
func (Generator) NewIDs(context.Context) (trace.TraceID, trace.SpanID) {
	return New(time.Now()), spanID()
}

// NewSpanID returns a random span id.
func (Generator) NewSpanID(context.Context, trace.TraceID) trace.SpanID {
	return spanID()
}

func spanID() trace.SpanID {
	var id trace.SpanID
	for !id.IsValid() {
		binary.BigEndian.PutUint64(id[:], rand.Uint64())
	}
	return id
}
