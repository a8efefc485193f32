package platform

import (
	"net"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
)

// The OpenTelemetry HTTP semantic conventions (stable), as the server spans
// and the request metric use them.

// durationBuckets are the conventions' bucket boundaries for
// http.server.request.duration and http.client.request.duration, in
// seconds.
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// knownMethod returns m when it is one of the methods the conventions name,
// else "_OTHER", so that no client can grow a label's cardinality or a
// span name with made-up methods.
func knownMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete,
		http.MethodConnect, http.MethodOptions, http.MethodTrace, http.MethodPatch, "QUERY":
		return m
	}
	return "_OTHER"
}

// spanName is "{method} {route}", or "{method}" for a request no route
// matched; an unknown method ("_OTHER") is "HTTP".
func spanName(method, route string) string {
	if method == "_OTHER" {
		method = "HTTP"
	}
	if route == "" {
		return method
	}
	return method + " " + route
}

// requestAttributes are what the request metric and the server span share:
// the method (known ones only), status, scheme, route when one matched, and
// error.type on 5xx, so no client can grow the metric's labels.
func requestAttributes(r *http.Request, route string, status int) []attribute.KeyValue {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", knownMethod(r.Method)),
		attribute.Int("http.response.status_code", status),
		attribute.String("url.scheme", scheme),
	}
	if route != "" {
		attrs = append(attrs, attribute.String("http.route", route))
	}
	if status >= 500 {
		attrs = append(attrs, attribute.String("error.type", strconv.Itoa(status)))
	}
	return attrs
}

// serverAttributes are a server span's attributes for a request answered
// with status; route is empty when none matched.
func serverAttributes(r *http.Request, route, clientIP string, status int) []attribute.KeyValue {
	attrs := append(requestAttributes(r, route, status),
		attribute.String("url.path", r.URL.Path),
		attribute.String("client.address", clientIP),
		attribute.String("user_agent.original", r.UserAgent()),
		attribute.String("network.protocol.version", strconv.Itoa(r.ProtoMajor)+"."+strconv.Itoa(r.ProtoMinor)))
	if knownMethod(r.Method) != r.Method {
		attrs = append(attrs, attribute.String("http.request.method_original", r.Method))
	}
	if host, port := hostPort(r.Host); host != "" {
		attrs = append(attrs, attribute.String("server.address", host))
		if port > 0 {
			attrs = append(attrs, attribute.Int("server.port", port))
		}
	}
	return attrs
}

// hostPort splits a Host header; port is 0 when it has none.
func hostPort(h string) (string, int) {
	host, p, err := net.SplitHostPort(h)
	if err != nil {
		return h, 0
	}
	port, _ := strconv.Atoi(p)
	return host, port
}
