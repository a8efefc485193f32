package logger

import (
	"context"
)

// MaxTraceRows is the most rows ByTrace returns.
const MaxTraceRows = 1000

// ByTrace returns the requests of one trace, oldest first, at most
// MaxTraceRows of them: the whole path of a request through the fleet. It
// is Reader.ByTrace on the Store's read-only connections.
func (s *Store) ByTrace(ctx context.Context, traceID string) ([]Record, error) {
	return s.reader.ByTrace(ctx, traceID)
}
