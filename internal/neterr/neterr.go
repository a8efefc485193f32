// Package neterr names network errors the way an operator reads them, for
// the messages of the breaker's transport and of the health monitor.
package neterr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// Describe returns a short reason for err from a call bounded by timeout:
// "timeout after 2s", "connection refused", "connection reset",
// "no socket file", "connection closed before the response",
// "unknown host NAME", or err's own text.
func Describe(err error, timeout time.Duration) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded) || os.IsTimeout(err):
		return fmt.Sprintf("timeout after %v", timeout)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.ENOENT):
		return "no socket file"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed before the response"
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return "unknown host " + dns.Name
	}
	return err.Error()
}
