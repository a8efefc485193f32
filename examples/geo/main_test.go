package main

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLookup(t *testing.T) {
	ranges, err := loadRanges(rangesCSV)
	require.NoError(t, err)
	e := echo.New()
	e.GET("/geo/:ip", lookup(ranges))
	for path, want := range map[string]struct {
		code int
		body string
	}{
		"/geo/192.0.2.7":          {200, `"country_code":"NL"`},
		"/geo/::ffff:203.0.113.9": {200, `"country":"Japan"`},
		"/geo/2001:db8::1":        {200, `"country_code":"ZZ"`},
		"/geo/8.8.8.8":            {404, "no country known for 8.8.8.8"},
		"/geo/not-an-ip":          {400, `"error":"\"not-an-ip\" is not an IP address"`},
		"/geo/999.1.1.1":          {400, "is not an IP address"},
	} {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		assert.Equal(t, want.code, rec.Code, path)
		assert.Contains(t, rec.Body.String(), want.body, path)
	}
}

func TestLoadRanges_Bad(t *testing.T) {
	_, err := loadRanges([]byte("1.2.3.4,1.2.3.0,XX,Backwards\n"))
	assert.ErrorContains(t, err, "ranges.csv:1: bad range")
	_, err = loadRanges([]byte("# comment\n1.2.3.4\n"))
	assert.ErrorContains(t, err, "ranges.csv:2: want 4 fields")
}
