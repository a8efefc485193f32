package platform

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/trace"

	"github.com/flotilla-go/flotilla/logger"
)

// exportQueue is how many request records may wait for the log SDK; a
// record past it is dropped and counted (flotilla.requestlog.export.dropped).
const exportQueue = 4096

// recordExporter sends each request record as an OpenTelemetry log record
// as well, for fleets that outgrow one machine: a collector routes them to
// ClickHouse, Loki or Elasticsearch. The record's trace and span ids come
// from the request's context, so backends link it to its trace.
//
// The request only queues the record, with its span context; a goroutine
// of the exporter's own turns it into a log record and hands it to the
// SDK's batch processor, which sends batches over OTLP. Building the
// record and the SDK's copy of its attributes thus cost the request
// nothing.
type recordExporter struct {
	l       log.Logger
	queue   chan exportedRecord
	dropped atomic.Uint64 // records that found the queue full
	stop    chan struct{} // closed by flush
	done    chan struct{} // closed once run has returned
	once    sync.Once
}

type exportedRecord struct {
	r  logger.Record
	sc trace.SpanContext
}

// newRecordExporter starts an exporter that emits to l.
func newRecordExporter(l log.Logger) *recordExporter {
	e := &recordExporter{l: l, queue: make(chan exportedRecord, exportQueue), stop: make(chan struct{}), done: make(chan struct{})}
	go e.run()
	return e
}

// observe is the request log's observer (logger.WithObserver): it queues
// the record, or counts it dropped when the queue is full. It never blocks.
func (e *recordExporter) observe(ctx context.Context, r logger.Record) {
	select {
	case e.queue <- exportedRecord{r, trace.SpanContextFromContext(ctx)}:
	default:
		e.dropped.Add(1)
	}
}

func (e *recordExporter) run() {
	defer close(e.done)
	for {
		select {
		case x := <-e.queue:
			e.emit(x)
		case <-e.stop:
			for { // what was queued before the flush
				select {
				case x := <-e.queue:
					e.emit(x)
				default:
					return
				}
			}
		}
	}
}

// flush emits the records queued so far and stops the exporter; call it
// before the logger provider's Shutdown, which sends them. It gives up
// when ctx ends. Records queued after it stay unsent.
func (e *recordExporter) flush(ctx context.Context) error {
	e.once.Do(func() { close(e.stop) })
	select {
	case <-e.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// emit hands one request record to the SDK as a log record with the HTTP
// conventions' attributes.
func (e *recordExporter) emit(x exportedRecord) {
	r := x.r
	var rec log.Record
	rec.SetTimestamp(r.Time)
	rec.SetObservedTimestamp(r.Time.Add(r.Duration))
	switch {
	case r.Status >= 500:
		rec.SetSeverity(log.SeverityError)
	case r.Status >= 400:
		rec.SetSeverity(log.SeverityWarn)
	default:
		rec.SetSeverity(log.SeverityInfo)
	}
	method := knownMethod(r.Method)
	rec.SetBody(attribute.StringValue(spanName(method, r.Route) + " " + strconv.Itoa(r.Status)))
	rec.AddAttributes(
		attribute.String("http.request.method", method),
		attribute.String("url.path", r.Path),
		attribute.Int("http.response.status_code", r.Status),
		attribute.Float64("http.server.request.duration", r.Duration.Seconds()),
		attribute.Int64("http.request.body.size", r.BytesIn),
		attribute.Int64("http.response.body.size", r.BytesOut),
		attribute.String("client.address", r.IP),
		attribute.String("user_agent.original", r.UserAgent),
		attribute.String("flotilla.request_id", r.RequestID),
	)
	if r.Route != "" {
		rec.AddAttributes(attribute.String("http.route", r.Route))
	}
	if r.Status >= 500 {
		rec.AddAttributes(attribute.String("error.type", strconv.Itoa(r.Status)))
	}
	if r.Error != "" {
		rec.AddAttributes(attribute.String("flotilla.error", r.Error))
	}
	ctx := context.Background()
	if x.sc.IsValid() {
		ctx = trace.ContextWithSpanContext(ctx, x.sc)
	}
	e.l.Emit(ctx, rec)
}
