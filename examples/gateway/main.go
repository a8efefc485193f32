// Command gateway (agent-gateway) is the fleet's one public entry:
//
//	POST /api/keys/create            a new API key, shown once, 200 credits
//	ANY  /v1/<service>/<path>        proxied to a public service of the port map
//
// Calls need "Authorization: Bearer <key>"; each spends a credit (402 when
// none are left) and is rate limited per key (429 with Retry-After). Only
// services marked public in the port map are reached (404 otherwise); an
// open breaker answers 503 with Retry-After. Keys never reach the request
// log: the log stores paths, never the Authorization header.
package main

import (
	"errors"
	"flag"
	"log"
	"math"
	"net/http"
	"net/http/httputil"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"github.com/flotilla-go/flotilla/breaker"
	"github.com/flotilla-go/flotilla/discovery"
	"github.com/flotilla-go/flotilla/platform"
)

type gateway struct {
	keys   *keys
	reg    *discovery.Registry
	proxy  *httputil.ReverseProxy
	rate   rate.Limit
	burst  int
	mu     sync.Mutex
	limits map[string]*rate.Limiter
}

func (g *gateway) createKey(c echo.Context) error {
	key, err := g.keys.create(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"key": key, "credits": g.keys.credits,
		"note": "shown once: keep it; send it as Authorization: Bearer <key>"})
}

func (g *gateway) limiter(id string) *rate.Limiter {
	g.mu.Lock()
	defer g.mu.Unlock()
	l := g.limits[id]
	if l == nil {
		l = rate.NewLimiter(g.rate, g.burst)
		g.limits[id] = l
	}
	return l
}

func (g *gateway) call(c echo.Context) error {
	name := c.Param("service")
	s, ok := g.reg.Service(name)
	if !ok || !s.Public {
		return echo.NewHTTPError(http.StatusNotFound, "no public service "+strconv.Quote(name))
	}
	key, ok := strings.CutPrefix(c.Request().Header.Get("Authorization"), "Bearer ")
	if !ok {
		return echo.NewHTTPError(http.StatusUnauthorized, "send Authorization: Bearer <key>; create one with POST /api/keys/create")
	}
	id, err := g.keys.check(c.Request().Context(), key)
	if errors.Is(err, errBadKey) {
		return echo.NewHTTPError(http.StatusUnauthorized, "invalid API key")
	} else if err != nil {
		return err
	}
	// Rate limit before spending: a refused call costs no credit.
	r := g.limiter(id).Reserve()
	if d := r.Delay(); d > 0 {
		r.Cancel()
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(d.Seconds()))))
		return echo.NewHTTPError(http.StatusTooManyRequests, "rate limit: slow down")
	}
	if _, err := g.keys.spend(c.Request().Context(), id); errors.Is(err, errNoCredits) {
		return echo.NewHTTPError(http.StatusPaymentRequired, "no credits left on this key")
	} else if err != nil {
		return err
	}
	req := c.Request().Clone(c.Request().Context())
	req.Header.Del("Authorization") // the key stays here
	// The proxy's transport (platform.Propagate) passes the trace and the
	// request id on: one of each across the hop, in the shared log.
	req.URL.Scheme, req.URL.Host, req.Host = "http", name, name
	req.URL.Path = "/" + c.Param("*")
	req.URL.RawPath = ""
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
	perSecond := flag.Float64("rate", 10, "requests per second per key")
	burst := flag.Int("burst", 20, "burst per key")
	credits := flag.Int("credits", FreeCredits, "credits of a new key")
	flag.Parse()

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
	app := newApp(reg, k, rate.Limit(*perSecond), *burst)
	platform.Main(app, "agent-gateway")
}

// newApp returns the gateway's routes.
func newApp(reg *discovery.Registry, k *keys, perSecond rate.Limit, burst int, opts ...breaker.Option) *echo.Echo {
	g := &gateway{keys: k, reg: reg, rate: perSecond, burst: burst, limits: map[string]*rate.Limiter{}}
	g.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) { pr.SetXForwarded() },
		Transport: platform.Propagate(breaker.Transport(reg.Transport(nil, discovery.WithStrictNames()),
			append([]breaker.Option{breaker.WithRetries(1)}, opts...)...)),
		ErrorHandler: proxyError,
	}
	app := echo.New()
	app.POST("/api/keys/create", g.createKey)
	app.Any("/v1/:service/*", g.call)
	return app
}
