package platform_test

import (
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/flotilla-go/flotilla/internal/testwait"
)

// receiver is an OTLP/HTTP trace receiver: it decodes what the real
// exporter sends.
type receiver struct {
	mu    sync.Mutex
	spans []*tracepb.ResourceSpans
	other []string // paths of other exports, such as /v1/metrics
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if req.URL.Path != "/v1/traces" {
		r.mu.Lock()
		r.other = append(r.other, req.URL.Path)
		r.mu.Unlock()
	}
	var msg coltrace.ExportTraceServiceRequest
	if req.URL.Path != "/v1/traces" || proto.Unmarshal(body, &msg) != nil {
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.spans = append(r.spans, msg.ResourceSpans...)
	r.mu.Unlock()
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

type span struct {
	service, name, traceID, spanID, parentID string
	kind                                     string
	attrs                                    map[string]string
}

func (r *receiver) all() []span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []span
	for _, rs := range r.spans {
		svc := attrMap(rs.Resource.Attributes)["service.name"]
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				out = append(out, span{svc, s.Name, hex.EncodeToString(s.TraceId), hex.EncodeToString(s.SpanId),
					hex.EncodeToString(s.ParentSpanId), s.Kind.String(), attrMap(s.Attributes)})
			}
		}
	}
	return out
}

// Spans go out over OTLP/HTTP through the real exporter when an endpoint is
// set: one server span per request, named by route, with service.name, and
// the callee's span a child of the caller's.
func TestRun_ExportsSpansOverOTLP(t *testing.T) {
	rcv := &receiver{}
	ln := serveReceiver(t, rcv)

	dir := tempDir(t)
	reg := filepath.Join(dir, "flotilla.toml")
	require.NoError(t, writeRegistry(reg, "svc-a", "svc-b"))
	env := []string{"FLOTILLA_REGISTRY=" + reg, "FLOTILLA_DB=" + filepath.Join(dir, "f.db"),
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + ln.Addr().String(), "OTEL_BSP_SCHEDULE_DELAY=50"}
	a := start(t, "svc-a", env...).at("unix", filepath.Join(dir, "run", "svc-a.sock"))
	b := start(t, "svc-b", env...).at("unix", filepath.Join(dir, "run", "svc-b.sock"))
	a.healthy(t)
	b.healthy(t)
	code, body := a.get(t, "/chain/svc-b")
	require.Equal(t, 200, code, body)
	assert.Equal(t, 0, a.stop(t)) // shutdown flushes the exporter
	assert.Equal(t, 0, b.stop(t))

	var ca, cb, client span
	for _, s := range rcv.all() {
		switch {
		case s.name == "GET" && s.service == "svc-a":
			client = s
		case s.name != "GET /chain/*":
		case s.service == "svc-a":
			ca = s
		case s.service == "svc-b":
			cb = s
		}
	}
	require.NotEmpty(t, ca.spanID, "svc-a's server span arrived: %+v", rcv.all())
	require.NotEmpty(t, cb.spanID, "svc-b's server span arrived")
	assert.Equal(t, ca.traceID, cb.traceID, "one trace")
	require.NotEmpty(t, client.spanID, "svc-a's client span arrived: %+v", rcv.all())
	assert.Equal(t, ca.spanID, client.parentID, "the call is a child of svc-a's server span")
	assert.Equal(t, client.spanID, cb.parentID, "svc-b's span is a child of the call")
	assert.Equal(t, "SPAN_KIND_CLIENT", client.kind)
	assert.Equal(t, map[string]string{"http.request.method": "GET", "server.address": "svc-b", "server.port": "80",
		"url.full": "http://svc-b/chain/", "http.response.status_code": "200"}, client.attrs)
	assert.Equal(t, "", ca.parentID, "svc-a's span is the root")
}

// FLOTILLA_METRICS=1 serves OpenTelemetry metrics in the Prometheus format.
func TestRun_Metrics(t *testing.T) {
	dir := tempDir(t)
	port := freePort(t)
	s := start(t, "agent-geo", "FLOTILLA_DB="+filepath.Join(dir, "f.db"), "PORT="+port, "FLOTILLA_METRICS=1",
		"PLATFORM_TEST_RELAY_TO=127.0.0.1:"+port).at("tcp", "127.0.0.1:"+port)
	s.healthy(t)
	s.get(t, "/hello/metrics")
	code, _ := s.get(t, "/relay/hello/itself") // a call through platform.Client's transport
	require.Equal(t, 200, code)
	conn, br := openStream(t, "tcp", "127.0.0.1:"+port, "/stream")
	echoes(t, conn, br, "a stream too")
	conn.Close()
	var text string
	eventually(t, 10*time.Second, func() bool {
		_, text = s.get(t, "/metrics")
		return contains(text, `http_route="/hello/:who"`) && contains(text, `http_route="/stream"`)
	}, "/metrics never showed both routes")
	assert.Contains(t, text, "http_server_request_duration_seconds_bucket")
	assert.Regexp(t, `http_response_status_code="200",http_route="/hello/:who"`, text)
	assert.Regexp(t, `http_response_status_code="101",http_route="/stream"`, text, "an upgraded connection, as the log says")
	assert.Contains(t, text, "flotilla_requestlog_queue")
	assert.Contains(t, text, `service_name="agent-geo"`)

	// The conventions: seconds in their buckets, no made-up method as a
	// label, error.type on 5xx, no http.route for a request no route took.
	req, err := http.NewRequest("FOO", "http://127.0.0.1:"+port+"/hello/x", nil)
	require.NoError(t, err)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	s.get(t, "/nope")
	s.get(t, "/panic")
	testwait.Until(t, 10*time.Second, func() bool {
		_, text = s.get(t, "/metrics")
		return contains(text, `http_request_method="_OTHER"`) && contains(text, `http_response_status_code="500"`)
	}, "/metrics never showed the odd requests", func() string { return text })
	assert.NotContains(t, text, "FOO")
	assert.Regexp(t, `http_client_request_duration_seconds_bucket\{http_request_method="GET",http_response_status_code="200",[^}]*server_address="127.0.0.1",server_port="`+port+`",url_scheme="http",le="0.005"\}`, text)
	for _, le := range []string{"0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.25", "0.5", "0.75", "1", "2.5", "5", "7.5", "10", "+Inf"} {
		assert.Contains(t, text, `le="`+le+`"`, "semconv's bucket boundary %s", le)
	}
	assert.NotContains(t, text, `le="10000"`, "not the SDK's millisecond defaults")
	assert.Regexp(t, `error_type="500",http_request_method="GET",http_response_status_code="500"`, text)
	assert.Regexp(t, `\{http_request_method="GET",http_response_status_code="404",[^}]*\}`, text)
	assert.NotRegexp(t, `http_response_status_code="404",http_route=`, text)
	if promtool, err := exec.LookPath("promtool"); err == nil {
		check := exec.Command(promtool, "check", "metrics")
		check.Stdin = strings.NewReader(text)
		out, err := check.CombinedOutput()
		assert.NoError(t, err, "promtool check metrics: %s", out)
	} else if os.Getenv("FLOTILLA_REQUIRE_INTEGRATION") != "" {
		t.Fatal("promtool is not installed (apt-get install prometheus)")
	}
	assert.Equal(t, 0, s.stop(t))
}

// Against a traces-only backend: the general endpoint with
// OTEL_METRICS_EXPORTER=none exports spans and no metrics, and logs no
// error; OTEL_SERVICE_NAME names the spans' service.
func TestRun_OTelEnvironment(t *testing.T) {
	rcv := &receiver{}
	ln := serveReceiver(t, rcv)
	dir := tempDir(t)
	port := freePort(t)
	s := start(t, "agent-geo", "FLOTILLA_DB="+filepath.Join(dir, "f.db"), "PORT="+port,
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://"+ln.Addr().String(), "OTEL_METRICS_EXPORTER=none",
		"OTEL_SERVICE_NAME=geo-in-otel", "OTEL_RESOURCE_ATTRIBUTES=deployment.environment.name=test",
		"OTEL_BSP_SCHEDULE_DELAY=50", "OTEL_METRIC_EXPORT_INTERVAL=50").at("tcp", "127.0.0.1:"+port)
	s.healthy(t)
	s.get(t, "/hello/otel")
	assert.Equal(t, 0, s.stop(t))
	var names []string
	for _, sp := range rcv.all() {
		names = append(names, sp.service+" "+sp.name)
	}
	assert.Contains(t, names, "geo-in-otel GET /hello/:who")
	rcv.mu.Lock()
	assert.Empty(t, rcv.other, "no metrics exported")
	rcv.mu.Unlock()
	assert.NotContains(t, s.stderr.String(), "failed to upload")
	assert.NotContains(t, s.stderr.String(), `"level":"ERROR"`)
}

// serveReceiver serves h (an OTLP receiver) on loopback for the test.
func serveReceiver(t *testing.T, h http.Handler) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln
}

// attrMap is OTLP attributes as text: strings, and integers in decimal.
func attrMap(kvs []*commonpb.KeyValue) map[string]string {
	out := map[string]string{}
	for _, a := range kvs {
		switch v := a.Value.Value.(type) {
		case *commonpb.AnyValue_StringValue:
			out[a.Key] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			out[a.Key] = strconv.FormatInt(v.IntValue, 10)
		}
	}
	return out
}

// logReceiver is an OTLP/HTTP log receiver: it decodes what the official
// log exporter sends.
type logReceiver struct {
	mu   sync.Mutex
	recs []*logspb.LogRecord
	svc  []string
}

func (r *logReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var msg collogs.ExportLogsServiceRequest
	if req.URL.Path != "/v1/logs" || proto.Unmarshal(body, &msg) != nil {
		http.Error(w, "not logs", http.StatusNotFound)
		return
	}
	r.mu.Lock()
	for _, rl := range msg.ResourceLogs {
		svc := attrMap(rl.Resource.Attributes)["service.name"]
		for _, sl := range rl.ScopeLogs {
			for _, lr := range sl.LogRecords {
				r.recs = append(r.recs, lr)
				r.svc = append(r.svc, svc)
			}
		}
	}
	r.mu.Unlock()
	out, _ := proto.Marshal(&collogs.ExportLogsServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

// With OTEL_LOGS_EXPORTER=otlp every request record also goes out as an
// OpenTelemetry log record, with the conventions' attributes and the same
// trace id as its row in the shared file.
func TestRun_RequestRecordsOverOTLP(t *testing.T) {
	rcv := &logReceiver{}
	ln := serveReceiver(t, rcv)
	dir := tempDir(t)
	db := filepath.Join(dir, "f.db")
	port := freePort(t)
	s := start(t, "agent-geo", "FLOTILLA_DB="+db, "PORT="+port,
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://"+ln.Addr().String(), "OTEL_LOGS_EXPORTER=otlp",
		"OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none", "OTEL_BLRP_SCHEDULE_DELAY=50").at("tcp", "127.0.0.1:"+port)
	s.healthy(t)
	for range 4 {
		s.get(t, "/hello/otlp")
	}
	s.get(t, "/panic")
	assert.Equal(t, 0, s.stop(t)) // shutdown flushes the exporter

	rows := rows(t, openDB(t, db), "1")
	require.Len(t, rows, 5)
	recordsMatchRows(t, rcv, rows)
}

// recordsMatchRows checks that rcv got one log record per row, each with
// its row's trace id, a span id and the row's values as the HTTP
// conventions' attributes.
func recordsMatchRows(t *testing.T, rcv *logReceiver, rows []row) {
	t.Helper()
	byTrace := map[string]row{}
	for _, r := range rows {
		byTrace[r.traceID] = r
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	require.Len(t, rcv.recs, len(rows), "one log record per request")
	for i, lr := range rcv.recs {
		assert.Equal(t, "agent-geo", rcv.svc[i])
		attrs := attrMap(lr.Attributes)
		row, ok := byTrace[hex.EncodeToString(lr.TraceId)]
		require.True(t, ok, "the record's trace id %x is a row's", lr.TraceId)
		assert.Len(t, lr.SpanId, 8, "with its span")
		assert.Equal(t, row.requestID, attrs["flotilla.request_id"])
		assert.Equal(t, strconv.Itoa(row.status), attrs["http.response.status_code"])
		assert.Equal(t, "GET", attrs["http.request.method"])
		assert.Equal(t, row.route, attrs["http.route"])
		if row.status == 500 {
			assert.Equal(t, "500", attrs["error.type"])
			assert.Equal(t, "SEVERITY_NUMBER_ERROR", lr.SeverityNumber.String())
		}
	}
}

// FLOTILLA_DB=off: no shared file, no request-log check in /health, and
// the records still go out over OTLP.
func TestRun_LogOffExportsOnly(t *testing.T) {
	rcv := &logReceiver{}
	ln := serveReceiver(t, rcv)
	port := freePort(t)
	s := start(t, "agent-geo", "FLOTILLA_DB=off", "PORT="+port, "OTEL_EXPORTER_OTLP_ENDPOINT=http://"+ln.Addr().String(),
		"OTEL_LOGS_EXPORTER=otlp", "OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none").at("tcp", "127.0.0.1:"+port)
	h := s.healthy(t)
	assert.NotContains(t, h.Checks, "requestlog:queue")
	s.get(t, "/hello/off")
	assert.Equal(t, 0, s.stop(t))
	rcv.mu.Lock()
	assert.Len(t, rcv.recs, 1)
	rcv.mu.Unlock()
	_, err := os.Stat("off")
	assert.True(t, os.IsNotExist(err), "no file named off in the service's working folder")
}

// A collector that cannot be reached costs the requests nothing, and the
// service's log one warning, not a line per failed export.
func TestRun_CollectorDown(t *testing.T) {
	down := freePort(t) // nothing listens there
	port := freePort(t)
	s := start(t, "agent-geo", "FLOTILLA_DB="+filepath.Join(tempDir(t), "f.db"), "PORT="+port,
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:"+down, "OTEL_LOGS_EXPORTER=otlp",
		"OTEL_BSP_SCHEDULE_DELAY=20", "OTEL_BLRP_SCHEDULE_DELAY=20", "OTEL_METRIC_EXPORT_INTERVAL=20",
		"OTEL_EXPORTER_OTLP_TIMEOUT=50").at("tcp", "127.0.0.1:"+port)
	s.healthy(t)
	eventually(t, 20*time.Second, func() bool {
		code, _ := s.get(t, "/hello/collector")
		require.Equal(t, 200, code)
		return strings.Contains(s.stderr.String(), "telemetry export failed")
	}, "no export ever failed")
	for range 50 { // more export attempts fail meanwhile
		code, _ := s.get(t, "/hello/collector")
		require.Equal(t, 200, code)
	}
	assert.Equal(t, 0, s.stop(t), s.stderr.String())
	assert.Equal(t, 1, strings.Count(s.stderr.String(), "telemetry export failed"), s.stderr.String())
}

// A real OpenTelemetry Collector (core otelcol, its OTLP receiver, and its
// OTLP/HTTP and debug exporters, built by .ci/run from .ci/otelcol)
// between the service and a receiver of the test's: every request's
// record arrives through it with the trace id of its row in the shared
// file, and the collector's own debug output shows each one; once the
// collector is gone, requests are still answered and the lost exports
// are counted in one warning.
func TestRun_RequestRecordsThroughACollector(t *testing.T) {
	otelcol := os.Getenv("FLOTILLA_OTELCOL")
	if otelcol == "" {
		const build = "(cd .ci/otelcol && go build -o /tmp/otelcol .) and set FLOTILLA_OTELCOL=/tmp/otelcol"
		if os.Getenv("FLOTILLA_REQUIRE_INTEGRATION") != "" {
			t.Fatal("FLOTILLA_OTELCOL is not set and FLOTILLA_REQUIRE_INTEGRATION is: " + build)
		}
		t.Skip("no collector: " + build)
	}
	rcv := &logReceiver{}
	ln := serveReceiver(t, rcv)
	dir := tempDir(t)
	in := freePort(t)
	config := filepath.Join(dir, "otelcol.yaml")
	require.NoError(t, os.WriteFile(config, []byte(`receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:`+in+`
exporters:
  otlp_http:
    endpoint: http://`+ln.Addr().String()+`
    compression: none
  debug:
    verbosity: detailed
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [otlp_http, debug]
`), 0o600))
	col := exec.Command(otelcol, "--config", config)
	var colOut testwait.Buffer
	col.Stdout, col.Stderr = &colOut, &colOut
	require.NoError(t, col.Start())
	colDone := make(chan struct{})
	go func() { col.Wait(); close(colDone) }()
	t.Cleanup(func() { col.Process.Kill(); <-colDone })
	testwait.Until(t, 30*time.Second, func() bool {
		select {
		case <-colDone:
			t.Fatalf("the collector exited: %s", colOut.String())
		default:
		}
		c, err := net.Dial("tcp", "127.0.0.1:"+in)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, "the collector never listened", colOut.String)

	db := filepath.Join(dir, "f.db")
	port := freePort(t)
	s := start(t, "agent-geo", "FLOTILLA_DB="+db, "PORT="+port,
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:"+in, "OTEL_LOGS_EXPORTER=otlp",
		"OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none", "OTEL_BLRP_SCHEDULE_DELAY=50",
		"OTEL_EXPORTER_OTLP_TIMEOUT=500").at("tcp", "127.0.0.1:"+port)
	s.healthy(t)
	for range 20 {
		code, _ := s.get(t, "/hello/collector")
		require.Equal(t, 200, code)
	}
	s.get(t, "/panic")
	d := openDB(t, db)
	eventually(t, 10*time.Second, func() bool { return len(rows(t, d, "1")) == 21 }, "rows not logged")
	testwait.Until(t, 30*time.Second, func() bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		return len(rcv.recs) >= 21
	}, "the records did not come through the collector", colOut.String)
	recordsMatchRows(t, rcv, rows(t, d, "1"))
	for _, r := range rows(t, d, "1") {
		assert.Contains(t, colOut.String(), "Trace ID: "+r.traceID, "the collector's debug exporter shows the record")
	}

	require.NoError(t, col.Process.Kill()) // the collector goes away
	<-colDone
	eventually(t, 30*time.Second, func() bool {
		code, _ := s.get(t, "/hello/nocollector")
		require.Equal(t, 200, code)
		return strings.Contains(s.stderr.String(), "telemetry export failed")
	}, "the failed exports were never counted")
	assert.Equal(t, 0, s.stop(t), s.stderr.String())
}
