package platform

import (
	"context"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"

	"github.com/flotilla-go/flotilla/logger"
)

// recordExporter sends each request record as an OpenTelemetry log record
// as well, through the log SDK's batch processor (off the request path),
// for fleets that outgrow one machine: a collector routes them to
// ClickHouse, Loki or Elasticsearch. The record's trace and span ids come
// from the request's context, so backends link it to its trace.
type recordExporter struct{ l log.Logger }

// observe is the request log's observer (logger.WithObserver).
func (e recordExporter) observe(ctx context.Context, r logger.Record) {
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
	e.l.Emit(ctx, rec)
}
