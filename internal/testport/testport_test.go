package testport_test

import (
	"net"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/internal/testport"
)

// The ports are distinct, and each can be listened on.
func TestFree(t *testing.T) {
	seen := map[int]bool{}
	for range 1000 { // enough that the kernel repeats itself, unless Free stops it
		p := testport.Free(t)
		assert.False(t, seen[p], "port %d twice", p)
		seen[p] = true
	}
	p := testport.Free(t)
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	require.NoError(t, err)
	ln.Close()
}
