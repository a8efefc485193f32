package platform

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A handler that took its connection over is counted until it returns; its
// context ends with ErrDraining when the streams drain, and wait waits for
// it, or says how many are left when its own context ends first.
func TestStreams(t *testing.T) {
	st := newStreams()
	took := make(chan struct{})
	cause := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res := echo.NewResponse(w, echo.New())
		ctx, end := st.begin(res, r.Context(), time.Hour)
		defer end()
		conn, _, err := http.NewResponseController(res).Hijack()
		if !assert.NoError(t, err) {
			return
		}
		defer conn.Close()
		close(took)
		<-ctx.Done()
		cause <- context.Cause(ctx)
	}))
	defer srv.Close()
	go http.Get(srv.URL)
	<-took

	gone, cancel := context.WithCancel(context.Background())
	cancel()
	assert.Equal(t, 1, st.wait(gone), "one handler left when the wait's context ended")
	select {
	case err := <-cause:
		t.Fatalf("the stream ended before the drain: %v", err)
	default:
	}

	st.drain()
	require.ErrorIs(t, <-cause, ErrDraining)
	assert.Equal(t, 0, st.wait(context.Background()))
}
