package platform

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTrustedProxies_Extractor(t *testing.T) {
	extra, err := parseTrustedProxies("10.0.0.0/8, 192.0.2.7")
	require.NoError(t, err)
	for _, tc := range []struct {
		name, remote, xff, realIP, want string
		trusted                         trustedProxies
	}{
		{name: "direct client forging XFF", remote: "203.0.113.5:4000", xff: "6.6.6.6", want: "203.0.113.5"},
		{name: "direct client forging X-Real-IP", remote: "203.0.113.5:4000", realIP: "6.6.6.6", want: "203.0.113.5"},
		{name: "nginx on loopback", remote: "127.0.0.1:5000", xff: "198.51.100.9", want: "198.51.100.9"},
		{name: "nginx on a unix socket", remote: "", xff: "198.51.100.9", want: "198.51.100.9"},
		{name: "nginx on a unix socket, X-Real-IP", remote: "@", realIP: "198.51.100.9", want: "198.51.100.9"},
		{name: "a forged entry before the real one", remote: "127.0.0.1:5000", xff: "6.6.6.6, 198.51.100.9", want: "198.51.100.9"},
		{name: "SQL in the header", remote: "127.0.0.1:5000", xff: "1.2.3.4'; DROP TABLE requests;--", want: "127.0.0.1"},
		{name: "a chain of trusted proxies", remote: "10.1.2.3:80", xff: "198.51.100.9, 10.9.9.9", want: "198.51.100.9", trusted: extra},
		{name: "an untrusted private peer", remote: "10.1.2.3:80", xff: "198.51.100.9", want: "10.1.2.3"},
		{name: "a trusted single address", remote: "192.0.2.7:80", xff: "198.51.100.9", want: "198.51.100.9", trusted: extra},
		{name: "IPv6 loopback", remote: "[::1]:80", xff: "2001:db8::1", want: "2001:db8::1"},
		{name: "no headers", remote: "127.0.0.1:5000", want: "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := http.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			if tc.xff != "" {
				r.Header.Set("X-Forwarded-For", tc.xff)
			}
			if tc.realIP != "" {
				r.Header.Set("X-Real-IP", tc.realIP)
			}
			assert.Equal(t, tc.want, tc.trusted.extractor()(r))
		})
	}
	_, err = parseTrustedProxies("10.0.0.0/8,nginx")
	assert.ErrorContains(t, err, `"nginx"`)
}
