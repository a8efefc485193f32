// Command gateway (agent-gateway) is the fleet's one public entry:
//
//	POST /api/keys/create            a new API key, shown once, 200 credits
//	ANY  /v1/<service>/<path>        proxied to a public service of the port map
//
// Calls need "Authorization: Bearer <key>"; each spends a credit (402 when
// none are left) and is rate limited per key (429 with Retry-After). Key
// creation is limited per client address and in total (429), can require
// the admin token of GATEWAY_ADMIN_TOKEN, or be turned off (-free-keys=0).
// Only services marked public in the port map are reached (404 otherwise);
// an open breaker answers 503 with Retry-After. A request's body is read
// whole, within -body-timeout, before it is proxied, so a slow client
// spends its own time, never the upstream's. Keys never reach the request
// log: the log stores paths, never the Authorization header.
package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"log"
	"math"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/flotilla-go/flotilla/breaker"
	"github.com/flotilla-go/flotilla/discovery"
	"github.com/flotilla-go/flotilla/platform"
)

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

func main() {
	keysPath := flag.String("keys", "", "the API keys' SQLite file (default: gateway-keys.db beside the port map)")
	cfg := config{}
	flag.Float64Var(&cfg.perSecond, "rate", 10, "requests per second per key")
	flag.IntVar(&cfg.burst, "burst", 20, "burst per key")
	credits := flag.Int("credits", FreeCredits, "credits of a new key")
	flag.BoolVar(&cfg.freeKeys, "free-keys", true, "anyone may create a key, within -keys-per-hour; else only with GATEWAY_ADMIN_TOKEN")
	flag.IntVar(&cfg.keysPerHour, "keys-per-hour", 5, "keys one client address may create per hour")
	flag.IntVar(&cfg.keysTotalPerHour, "keys-total-per-hour", 100, "keys all clients together may create per hour")
	flag.DurationVar(&cfg.bodyTimeout, "body-timeout", 10*time.Second, "time a client has to send a request's body")
	flag.Parse()
	cfg.adminToken = os.Getenv("GATEWAY_ADMIN_TOKEN") // a secret: never a flag, which ps shows

	reg, err := platform.PortMap()
	if err != nil {
		log.Fatal(err)
	}
	if *keysPath == "" {
		*keysPath = filepath.Join(filepath.Dir(reg.Path()), "gateway-keys.db")
	}
	k, err := openKeys(*keysPath)
	if err != nil {
		log.Fatal(err)
	}
	k.credits = *credits
	platform.Main(newApp(reg, k, cfg), "agent-gateway")
}
