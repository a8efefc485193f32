package main

import (
	"bytes"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/flotilla-go/flotilla/breaker"
	"github.com/flotilla-go/flotilla/discovery"
)

// gateway proxies /v1/<service>/<path> to the public services of the port
// map.
type gateway struct {
	reg         *discovery.Registry
	proxy       *httputil.ReverseProxy
	bodyTimeout time.Duration
}

// public is the first middleware of /v1: only public services of the port
// map are reached.
func (g *gateway) public(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		name := c.Param("service")
		if s, ok := g.reg.Service(name); !ok || !s.Public {
			return echo.NewHTTPError(http.StatusNotFound, "no public service "+strconv.Quote(name))
		}
		return next(c)
	}
}

func (g *gateway) call(c echo.Context) error {
	name := c.Param("service")
	req := c.Request().Clone(c.Request().Context())
	req.Header.Del("Authorization") // the key stays here
	if req.Body != nil && req.Body != http.NoBody {
		// The whole body first, on the client's time.
		http.NewResponseController(c.Response()).SetReadDeadline(time.Now().Add(g.bodyTimeout))
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return echo.NewHTTPError(http.StatusRequestTimeout, "request body not received in time").WithInternal(err)
		}
		req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	// The proxy's transport (platform.Propagate) passes the trace and the
	// request id on: one of each across the hop, in the shared log. The
	// path goes on as the client escaped it.
	rest := strings.TrimPrefix(c.Request().URL.EscapedPath(), "/v1/"+name)
	path, err := url.PathUnescape(rest)
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "bad path escape")
	}
	req.URL.Scheme, req.URL.Host, req.Host = "http", name, name
	req.URL.Path, req.URL.RawPath = "/"+strings.TrimPrefix(path, "/"), "/"+strings.TrimPrefix(rest, "/")
	g.proxy.ServeHTTP(c.Response(), req)
	return nil
}

// proxyError answers an open breaker with 503 and Retry-After, anything
// else with 502.
func proxyError(w http.ResponseWriter, r *http.Request, err error) {
	var open *breaker.OpenError
	if errors.As(err, &open) {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(open.RetryAfter().Seconds()))))
		http.Error(w, "service unavailable: "+open.Error(), http.StatusServiceUnavailable)
		return
	}
	http.Error(w, "bad gateway: "+err.Error(), http.StatusBadGateway)
}
