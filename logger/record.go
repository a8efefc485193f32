package logger

import (
	"strings"
	"time"
	"unicode/utf8"
)

// Bounds applied to the text fields of a Record before it is stored. Longer
// values are cut at a UTF-8 character boundary; invalid UTF-8 is replaced by
// U+FFFD so every stored value is valid text; and control characters (a
// NUL, CR, LF, ESC, DEL and the rest of C0) are stored escaped as %XX, as
// in a URL, so that no value a client sends can cut a line short or forge
// lines in the output of sqlite3 or a terminal.
const (
	// MaxPathLen bounds Record.Path and Record.Route, in bytes.
	MaxPathLen = 2048
	// MaxUserAgentLen bounds Record.UserAgent, in bytes.
	MaxUserAgentLen = 256
	// MaxErrorLen bounds Record.Error, in bytes.
	MaxErrorLen = 1024
	// MaxFieldLen bounds every other text field (Service, Method, IP,
	// RequestID, TraceID), in bytes.
	MaxFieldLen = 128
)

// Record is one HTTP request as stored in the requests table. The zero value
// of a field is stored as 0 or the empty string.
type Record struct {
	// ID is the row's id in the requests table, in commit order; the
	// Reader's queries set it, and Log ignores it.
	ID int64
	// Time is when the request started. The zero Time is replaced by the
	// time the record is written.
	Time time.Time
	// Service is the name of the service that answered.
	Service string
	// Method is the HTTP method.
	Method string
	// Path is the URL path, without the query string.
	Path string
	// Route is the route template that matched, such as "/geo/:ip".
	Route string
	// Status is the HTTP status code sent to the client.
	Status int
	// Duration is how long the request took.
	Duration time.Duration
	// BytesIn is the size of the request body, when known.
	BytesIn int64
	// BytesOut is the size of the response body.
	BytesOut int64
	// IP is the client's address.
	IP string
	// UserAgent is the client's User-Agent header.
	UserAgent string
	// RequestID is the X-Request-ID of the request.
	RequestID string
	// TraceID is the W3C trace id (32 hex digits) of the request, if
	// traced. Traced rows are indexed by it; ids that begin with the time,
	// as the platform's do, keep that index cheap to write, while random
	// ones cost it a page write per row.
	TraceID string
	// Error is the text of the error the handler returned, if any.
	Error string
}

// clean returns s as valid UTF-8 of at most max bytes, control characters
// escaped.
func clean(s string, max int) string {
	s = escapeControls(s)
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
		if len(s) > max { // replacement characters are 3 bytes each
			return clean(s, max)
		}
	}
	return s
}

func isControl(b byte) bool { return b < 0x20 || b == 0x7f }

// escapeControls writes each control byte of s as %XX.
func escapeControls(s string) string {
	i := 0
	for i < len(s) && !isControl(s[i]) {
		i++
	}
	if i == len(s) {
		return s
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+8)
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		if c := s[i]; isControl(c) {
			b = append(b, '%', hex[c>>4], hex[c&15])
		} else {
			b = append(b, c)
		}
	}
	return string(b)
}

// normalize bounds every text field of r and fills a zero Time with now.
func (r *Record) normalize(now time.Time) {
	if r.Time.IsZero() {
		r.Time = now
	}
	r.Service = clean(r.Service, MaxFieldLen)
	r.Method = clean(r.Method, MaxFieldLen)
	r.Path = clean(r.Path, MaxPathLen)
	r.Route = clean(r.Route, MaxPathLen)
	r.IP = clean(r.IP, MaxFieldLen)
	r.UserAgent = clean(r.UserAgent, MaxUserAgentLen)
	r.RequestID = clean(r.RequestID, MaxFieldLen)
	r.TraceID = clean(r.TraceID, MaxFieldLen)
	r.Error = clean(r.Error, MaxErrorLen)
}
