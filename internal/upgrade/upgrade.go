// Package upgrade recognises a request that asks to switch protocols, as a
// WebSocket handshake does, for the request log and the platform's
// middleware.
package upgrade

import (
	"bufio"
	"net"
	"net/http"
	"strings"
)

// Requested reports whether h, a request's headers, asks to upgrade the
// connection: an Upgrade header, and "upgrade" among the Connection
// header's tokens (RFC 9110, section 7.8). It reads the maps directly, so
// that a request without Upgrade costs one lookup.
func Requested(h http.Header) bool {
	if len(h["Upgrade"]) == 0 {
		return false
	}
	for _, v := range h["Connection"] {
		for token := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(token), "upgrade") {
				return true
			}
		}
	}
	return false
}

// Watch is the response writer of an upgrade request while its handler
// runs: it hands the connection over as the writer it wraps does, then
// sets Hijacked and runs OnHijack (when not nil).
type Watch struct {
	http.ResponseWriter
	OnHijack func()
	Hijacked bool
}

// Hijack hands the connection over.
func (w *Watch) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.Hijacked = true
		if w.OnHijack != nil {
			w.OnHijack()
		}
	}
	return conn, rw, err
}

// Flush flushes the writer it wraps, when that can.
func (w *Watch) Flush() { http.NewResponseController(w.ResponseWriter).Flush() }

// Unwrap is the writer it wraps, for http.ResponseController.
func (w *Watch) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijacked reports whether w, or a writer it wraps, is a Watch whose
// handler took the connection over.
func Hijacked(w http.ResponseWriter) bool {
	for w != nil {
		if watch, ok := w.(*Watch); ok && watch.Hijacked {
			return true
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return false
		}
		w = u.Unwrap()
	}
	return false
}
