package logger_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/flotilla-go/flotilla/internal/testwait"
	"github.com/flotilla-go/flotilla/logger"
)

// memSink keeps records in memory.
type memSink struct {
	mu   sync.Mutex
	recs []logger.Record
}

func (m *memSink) Log(r logger.Record) {
	m.mu.Lock()
	m.recs = append(m.recs, r)
	m.mu.Unlock()
}

func (m *memSink) last(t *testing.T) logger.Record {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	require.NotEmpty(t, m.recs)
	return m.recs[len(m.recs)-1]
}

func testApp(sink logger.Sink) *echo.Echo {
	e := echo.New()
	e.Use(middleware.RequestID())
	e.Use(logger.Middleware(sink, "agent-geo"))
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{DisablePrintStack: true}))
	e.GET("/geo/:ip", func(c echo.Context) error { return c.String(http.StatusOK, "ok "+c.Param("ip")) })
	e.GET("/teapot", func(c echo.Context) error { return echo.NewHTTPError(http.StatusTeapot, "short and stout") })
	e.GET("/wrapped", func(c echo.Context) error {
		return fmt.Errorf("lookup: %w", echo.NewHTTPError(http.StatusBadRequest, "bad ip"))
	})
	e.GET("/plain", func(c echo.Context) error { return errors.New("disk on fire") })
	e.GET("/sent", func(c echo.Context) error {
		c.String(http.StatusAccepted, "sent")
		return errors.New("failed after the response was sent")
	})
	e.GET("/panic", func(c echo.Context) error { panic("nil map") })
	e.GET("/wait", func(c echo.Context) error {
		<-c.Request().Context().Done()
		return c.Request().Context().Err()
	})
	e.POST("/echo", func(c echo.Context) error {
		var b bytes.Buffer
		b.ReadFrom(c.Request().Body)
		return c.Blob(http.StatusCreated, "text/plain", b.Bytes())
	})
	return e
}

func serve(e *echo.Echo, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return rec
}

func TestMiddleware_Status(t *testing.T) {
	cases := []struct {
		path   string
		status int
		errSub string
	}{
		{"/geo/8.8.8.8", 200, ""},
		{"/teapot", 418, "short and stout"},
		{"/wrapped", 500, "bad ip"}, // echo's error handler does not unwrap
		{"/plain", 500, "disk on fire"},
		{"/sent", 202, "failed after the response was sent"},
		{"/panic", 500, ""},
		{"/nowhere", 404, "Not Found"},
	}
	sink := &memSink{}
	e := testApp(sink)
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			rec := serve(e, httptest.NewRequest(http.MethodGet, tc.path, nil))
			require.Equal(t, tc.status, rec.Code, "status sent")
			r := sink.last(t)
			assert.Equal(t, tc.status, r.Status, "status logged")
			assert.Equal(t, tc.path, r.Path)
			assert.Contains(t, r.Error, tc.errSub)
			assert.Equal(t, "agent-geo", r.Service)
			assert.Equal(t, rec.Header().Get(echo.HeaderXRequestID), r.RequestID)
			assert.NotEmpty(t, r.RequestID)
		})
	}
}

// A client that leaves before the answer is logged as 499, not as a
// server error, and nothing is written for it.
func TestMiddleware_ClientClosedRequest(t *testing.T) {
	sink := &memSink{}
	e := testApp(sink)
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequest(http.MethodGet, "/wait", nil).WithContext(ctx)
	cancel()
	rec := serve(e, req)
	r := sink.last(t)
	assert.Equal(t, logger.StatusClientClosedRequest, r.Status)
	assert.Equal(t, 499, r.Status)
	assert.Contains(t, r.Error, "context canceled")
	assert.Empty(t, rec.Body.String(), "no answer is written to a client that left")

	// A deadline is the server's doing: a 5xx, as before.
	ctx, cancel = context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	serve(e, httptest.NewRequest(http.MethodGet, "/wait", nil).WithContext(ctx))
	assert.Equal(t, 500, sink.last(t).Status)
}

// A panic with no recover below the middleware is logged as 500 and keeps
// propagating.
func TestMiddleware_PanicPassesThrough(t *testing.T) {
	sink := &memSink{}
	e := echo.New()
	e.Use(logger.Middleware(sink, "svc"))
	e.GET("/boom", func(c echo.Context) error { panic("boom") })
	c := e.NewContext(httptest.NewRequest(http.MethodGet, "/boom", nil), httptest.NewRecorder())
	c.SetPath("/boom")
	h := logger.Middleware(sink, "svc")(func(c echo.Context) error { panic("boom") })
	assert.PanicsWithValue(t, "boom", func() { h(c) })
	r := sink.last(t)
	assert.Equal(t, 500, r.Status)
	assert.Equal(t, "panic: boom", r.Error)
}

// A handler that takes over the connection of an upgrade request (a
// WebSocket, say) is logged as 101 once it returns; one that refuses the
// upgrade is logged with the status it sent.
func TestMiddleware_Upgrade(t *testing.T) {
	sink := &memSink{}
	e := testApp(sink)
	e.GET("/stream", func(c echo.Context) error {
		if c.QueryParam("refuse") != "" {
			return echo.NewHTTPError(http.StatusBadRequest, "no upgrade for you")
		}
		conn, rw, err := http.NewResponseController(c.Response()).Hijack()
		if err != nil {
			return err
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: flotilla-echo\r\nConnection: Upgrade\r\n\r\n")
		rw.Flush()
		line, _ := rw.ReadString('\n')
		rw.WriteString(line)
		if err := rw.Flush(); err != nil {
			return err
		}
		if c.QueryParam("fail") != "" {
			return errors.New("the session failed")
		}
		return nil
	})
	srv := httptest.NewUnstartedServer(e)
	var serverLog testwait.Buffer
	srv.Config.ErrorLog = log.New(&serverLog, "", 0)
	srv.Start()
	defer srv.Close()

	dial := func(path string) (net.Conn, *bufio.Reader, *http.Response) {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		require.NoError(t, err)
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: flotilla-echo\r\nConnection: Upgrade\r\n\r\n", path)
		br := bufio.NewReader(conn)
		res, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		return conn, br, res
	}
	logged := func(n int) logger.Record {
		require.Eventually(t, func() bool {
			sink.mu.Lock()
			defer sink.mu.Unlock()
			return len(sink.recs) == n
		}, 10*time.Second, time.Millisecond)
		return sink.last(t)
	}

	conn, br, res := dial("/stream")
	require.Equal(t, http.StatusSwitchingProtocols, res.StatusCode)
	fmt.Fprint(conn, "ping\n")
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "ping\n", line, "the connection is the handler's")
	conn.Close()
	r := logged(1)
	assert.Equal(t, http.StatusSwitchingProtocols, r.Status)
	assert.Equal(t, "/stream", r.Route)
	assert.NotEmpty(t, r.RequestID)

	conn, br, _ = dial("/stream?fail=1")
	fmt.Fprint(conn, "ping\n")
	line, err = br.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "ping\n", line)
	conn.Close()
	r = logged(2)
	assert.Equal(t, http.StatusSwitchingProtocols, r.Status)
	assert.Equal(t, "the session failed", r.Error)
	assert.Empty(t, serverLog.String(), "no error response is tried on the connection the handler took")

	conn, _, res = dial("/stream?refuse=1")
	conn.Close()
	require.Equal(t, http.StatusBadRequest, res.StatusCode)
	r = logged(3)
	assert.Equal(t, http.StatusBadRequest, r.Status)
	assert.Contains(t, r.Error, "no upgrade for you")
}

func TestMiddleware_Fields(t *testing.T) {
	sink := &memSink{}
	e := testApp(sink)
	req := httptest.NewRequest(http.MethodPost, "/echo?api_key=sekrit", strings.NewReader("hello"))
	req.Header.Set("User-Agent", "curl/8")
	req.Header.Set("X-Real-IP", "203.0.113.7")
	req.Header.Set(echo.HeaderXRequestID, "req-42")
	rec := serve(e, req)
	require.Equal(t, 201, rec.Code)
	r := sink.last(t)
	assert.Equal(t, "POST", r.Method)
	assert.Equal(t, "/echo", r.Path)
	assert.Equal(t, "/echo", r.Route)
	assert.Equal(t, int64(5), r.BytesIn)
	assert.Equal(t, int64(5), r.BytesOut)
	assert.Equal(t, "curl/8", r.UserAgent)
	assert.Equal(t, "203.0.113.7", r.IP)
	assert.Equal(t, "req-42", r.RequestID)
	assert.False(t, r.Time.IsZero())
	assert.Positive(t, r.Duration)

	serve(e, httptest.NewRequest(http.MethodGet, "/geo/1.2.3.4", nil))
	assert.Equal(t, "/geo/:ip", sink.last(t).Route, "route template")
	assert.Equal(t, "/geo/1.2.3.4", sink.last(t).Path)
}

func TestMiddleware_TraceID(t *testing.T) {
	sink := &memSink{}
	e := testApp(sink)
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	req := httptest.NewRequest(http.MethodGet, "/geo/1.1.1.1", nil)
	req = req.WithContext(trace.ContextWithSpanContext(context.Background(), sc))
	serve(e, req)
	assert.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", sink.last(t).TraceID)

	serve(e, httptest.NewRequest(http.MethodGet, "/geo/1.1.1.1", nil))
	assert.Empty(t, sink.last(t).TraceID, "no span, no trace id")
}

func TestMiddleware_Skipper(t *testing.T) {
	sink := &memSink{}
	e := echo.New()
	e.Use(logger.Middleware(sink, "svc", logger.WithSkipper(func(c echo.Context) bool { return c.Path() == "/health" })))
	e.GET("/health", func(c echo.Context) error { return c.NoContent(200) })
	e.GET("/x", func(c echo.Context) error { return c.NoContent(200) })
	serve(e, httptest.NewRequest(http.MethodGet, "/health", nil))
	serve(e, httptest.NewRequest(http.MethodGet, "/x", nil))
	require.Len(t, sink.recs, 1)
	assert.Equal(t, "/x", sink.recs[0].Path)
}

// End to end through a real file: no byte of the secrets reaches the
// database or its WAL.
func TestMiddleware_SecretsNeverStored(t *testing.T) {
	s, path := openStore(t)
	e := testApp(s)
	req := httptest.NewRequest(http.MethodGet, "/geo/9.9.9.9?api_key=QUERYSECRET123&token=QUERYSECRET456", nil)
	req.Header.Set("Authorization", "Bearer HEADERSECRET789")
	req.Header.Set("Cookie", "session=COOKIESECRET000")
	rec := serve(e, req)
	require.Equal(t, 200, rec.Code)
	require.NoError(t, s.Flush(context.Background()))

	db := rawDB(t, path)
	var p, route string
	require.NoError(t, db.QueryRow("SELECT path, route FROM requests").Scan(&p, &route))
	assert.Equal(t, "/geo/9.9.9.9", p)
	assert.Equal(t, "/geo/:ip", route)
	require.NoError(t, s.Close())
	var all []byte
	for _, f := range []string{path, path + "-wal"} {
		data, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		require.NoError(t, err)
		all = append(all, data...)
	}
	require.True(t, bytes.Contains(all, []byte("/geo/9.9.9.9")), "the row is in the file")
	for _, secret := range []string{"QUERYSECRET", "HEADERSECRET", "COOKIESECRET", "api_key"} {
		assert.False(t, bytes.Contains(all, []byte(secret)), "%s reached the file", secret)
	}
}
