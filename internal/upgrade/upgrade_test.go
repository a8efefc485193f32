package upgrade

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRequested(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    http.Header
		want bool
	}{
		{"websocket", http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"}}, true},
		{"token among others", http.Header{"Upgrade": {"websocket"}, "Connection": {"keep-alive, Upgrade"}}, true},
		{"lower case, second field", http.Header{"Upgrade": {"h2c"}, "Connection": {"close", " upgrade "}}, true},
		{"no Upgrade", http.Header{"Connection": {"Upgrade"}}, false},
		{"Upgrade without the token", http.Header{"Upgrade": {"websocket"}, "Connection": {"keep-alive"}}, false},
		{"token inside another", http.Header{"Upgrade": {"websocket"}, "Connection": {"upgrades"}}, false},
		{"plain request", http.Header{"Accept": {"*/*"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) { assert.Equal(t, tc.want, Requested(tc.h)) })
	}
}

// Watch sees a handler take the connection over, through echo's response
// as handlers reach it, and still lets it flush.
func TestWatch(t *testing.T) {
	type seen struct {
		hijacked bool
		hooked   int
	}
	got := make(chan seen, 1)
	hijacked := make(chan bool, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		hooked := 0
		w := &Watch{ResponseWriter: rw, OnHijack: func() { hooked++ }}
		res := echo.NewResponse(w, echo.New())
		if r.URL.Path == "/flush" {
			res.Write([]byte("x"))
			assert.NoError(t, http.NewResponseController(res).Flush())
		} else if conn, _, err := http.NewResponseController(res).Hijack(); assert.NoError(t, err) {
			conn.Close()
		}
		got <- seen{w.Hijacked, hooked}
		hijacked <- Hijacked(&Watch{ResponseWriter: res}) // found through echo's response and another watch
	}))
	defer srv.Close()

	res, err := http.Get(srv.URL + "/flush")
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, seen{false, 0}, <-got)
	assert.False(t, <-hijacked)

	_, err = http.Get(srv.URL + "/hijack")
	assert.Error(t, err, "the handler closed the connection it took")
	assert.Equal(t, seen{true, 1}, <-got)
	assert.True(t, <-hijacked)
	assert.False(t, Hijacked(httptest.NewRecorder()), "a writer without a watch")
}
