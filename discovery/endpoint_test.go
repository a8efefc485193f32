package discovery_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/discovery"
)

func TestParseEndpoint(t *testing.T) {
	cases := map[string]string{
		"unix:/run/flotilla/agent-geo.sock":  "unix:/run/flotilla/agent-geo.sock",
		"/run/flotilla/agent-geo.sock":       "unix:/run/flotilla/agent-geo.sock",
		"tcp:127.0.0.1:3034":                 "tcp:127.0.0.1:3034",
		"127.0.0.1:3034":                     "tcp:127.0.0.1:3034",
		":3034":                              "tcp:127.0.0.1:3034",
		"3034":                               "tcp:127.0.0.1:3034",
		"[::1]:3034":                         "tcp:[::1]:3034",
		"0.0.0.0:80":                         "tcp:0.0.0.0:80",
		" 3034 ":                             "tcp:127.0.0.1:3034",
		"srv:_agent-geo._tcp.service.consul": "srv:_agent-geo._tcp.service.consul",
	}
	for in, want := range cases {
		ep, err := discovery.ParseEndpoint(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, ep.String(), in)
		again, err := discovery.ParseEndpoint(ep.String())
		require.NoError(t, err)
		assert.Equal(t, ep, again, "String round-trips")
	}
}

func TestParseEndpoint_Bad(t *testing.T) {
	cases := map[string]string{
		"":                                       "empty",
		"0":                                      "1 to 65535",
		"70000":                                  "1 to 65535",
		":http":                                  "1 to 65535",
		"unix:relative.sock":                     "absolute",
		"localhost":                              "missing port",
		"srv:":                                   "SRV name",
		"/" + strings.Repeat("a", 120) + ".sock": "OS limit of 107",
	}
	for in, want := range cases {
		_, err := discovery.ParseEndpoint(in)
		require.Error(t, err, in)
		assert.Contains(t, err.Error(), want, in)
	}
}

// Any text as an endpoint: an error, or an endpoint whose String parses
// back to itself.
func FuzzParseEndpoint(f *testing.F) {
	for _, s := range []string{"unix:/run/a.sock", "tcp:127.0.0.1:80", ":3034", "3034", "[::1]:80", "srv:_http._tcp.x", "unix:", "tcp:host:99999", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ep, err := discovery.ParseEndpoint(s)
		if err != nil {
			return
		}
		again, err := discovery.ParseEndpoint(ep.String())
		if err != nil || again != ep {
			t.Fatalf("%q parsed as %v, whose String %q parses as %v, %v", s, ep, ep.String(), again, err)
		}
	})
}
