package neterr_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/flotilla-go/flotilla/internal/neterr"
)

func TestDescribe(t *testing.T) {
	op := func(err error) error { return &net.OpError{Op: "dial", Net: "tcp", Err: err} }
	cases := []struct {
		err  error
		want string
	}{
		{context.DeadlineExceeded, "timeout after 2s"},
		{op(syscall.ECONNREFUSED), "connection refused"},
		{op(syscall.ECONNRESET), "connection reset"},
		{op(syscall.ENOENT), "no socket file"},
		{fmt.Errorf("read: %w", io.EOF), "connection closed before the response"},
		{&net.DNSError{Name: "agent-geo", Err: "no such host"}, "unknown host agent-geo"},
		{errors.New("tls: bad certificate"), "tls: bad certificate"},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, neterr.Describe(c.err, 2*time.Second), "%v", c.err)
	}
}
