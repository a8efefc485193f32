// Package upgrade recognises a request that asks to switch protocols, as a
// WebSocket handshake does, for the request log and the platform's
// middleware.
package upgrade

import (
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
