package upgrade

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
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
