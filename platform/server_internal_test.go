package platform

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gatedConn holds back the bytes of a read, once armed, until released:
// the moment when a request has reached the server but is not parsed yet.
type gatedConn struct {
	net.Conn
	armed    atomic.Bool
	arrived  chan struct{}
	release  chan struct{}
	closed   chan struct{}
	once     sync.Once
	closeOne sync.Once
}

func (c *gatedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.armed.Load() {
		c.once.Do(func() { close(c.arrived) })
		<-c.release
	}
	return n, err
}

func (c *gatedConn) Close() error {
	c.closeOne.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

type gatedListener struct {
	net.Listener
	conns chan *gatedConn
}

func (l gatedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	gc := &gatedConn{Conn: c, arrived: make(chan struct{}), release: make(chan struct{}), closed: make(chan struct{})}
	l.conns <- gc
	return gc, nil
}

// A request that reaches an idle keep-alive connection just as the drain
// closes it is not run: had it run, its answer would be lost on the closed
// connection. Its client sees a closed idle connection, which it retries.
func TestServer_DrainNeverRunsARequestItCannotAnswer(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ln := gatedListener{Listener: tcp, conns: make(chan *gatedConn, 2)}
	var ran atomic.Int32
	srv := newServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran.Add(1)
		io.WriteString(w, "ok")
	}), slog.New(slog.NewTextHandler(io.Discard, nil)))
	srv.serve(ln)

	client, err := net.Dial("tcp", tcp.Addr().String())
	require.NoError(t, err)
	defer client.Close()
	gc := <-ln.conns
	// A connection that sends nothing keeps the drain going for its grace,
	// as a client about to send its first request would.
	fresh, err := net.Dial("tcp", tcp.Addr().String())
	require.NoError(t, err)
	defer fresh.Close()
	<-ln.conns
	br := bufio.NewReader(client)
	get := func(path string) (*http.Response, error) {
		if _, err := io.WriteString(client, "GET "+path+" HTTP/1.1\r\nHost: svc\r\n\r\n"); err != nil {
			return nil, err
		}
		res, err := http.ReadResponse(br, nil)
		if err == nil {
			io.ReadAll(res.Body)
			res.Body.Close()
		}
		return res, err
	}
	res, err := get("/first")
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode)
	answered := 1

	gc.armed.Store(true)
	second := make(chan error, 1)
	go func() {
		res, err := get("/second")
		if err == nil && res.StatusCode == 200 {
			answered++
		}
		second <- err
	}()
	<-gc.arrived // the server has the bytes of /second, unparsed
	drained := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() { drained <- srv.drain(ctx, false, 2*time.Second) }()
	select {
	case <-gc.closed: // the drain took the connection for idle
	case <-time.After(10 * time.Second):
		t.Fatal("the drain did not close the idle connection")
	}
	close(gc.release)
	err = <-second
	require.NoError(t, <-drained)
	assert.Error(t, err, "the second request was refused")
	assert.Equal(t, int32(answered), ran.Load(), "every request that ran was answered")
}
