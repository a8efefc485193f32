package platform

import (
	"log/slog"
	"sync"
	"time"
)

// exportWarnEvery is how often, at most, a failing export is logged.
const exportWarnEvery = time.Minute

// exportErrors is OpenTelemetry's error handler for the service: a
// collector that cannot be reached is one warning a minute in the service's
// log, with the count of the failures since the last one, not a line per
// export attempt. Exports run off the request path, so requests never wait
// on it.
type exportErrors struct {
	log *slog.Logger

	mu     sync.Mutex
	last   time.Time
	missed int
}

func (e *exportErrors) Handle(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.last.IsZero() && time.Since(e.last) < exportWarnEvery {
		e.missed++
		return
	}
	e.log.Warn("telemetry export failed", "err", err, "failures_since_last_warning", e.missed)
	e.last, e.missed = time.Now(), 0
}
