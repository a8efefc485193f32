package main

import (
	"net/http"
	"net/http/httputil"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"github.com/flotilla-go/flotilla/breaker"
	"github.com/flotilla-go/flotilla/discovery"
	"github.com/flotilla-go/flotilla/platform"
)

// config is the gateway's flags.
type config struct {
	perSecond        float64
	burst            int
	freeKeys         bool
	keysPerHour      int
	keysTotalPerHour int
	badKeysPerMinute int
	bodyTimeout      time.Duration
	adminToken       string
	breaker          []breaker.TransportOption // for tests
}

// newApp returns the gateway's routes.
func newApp(reg *discovery.Registry, k *keys, cfg config) *echo.Echo {
	a := &access{
		keys:       k,
		perKey:     newLimiters(rate.Limit(cfg.perSecond), cfg.burst),
		perAddress: newLimiters(rate.Every(time.Hour/time.Duration(max(cfg.keysPerHour, 1))), cfg.keysPerHour),
		badKeys:    newLimiters(rate.Every(time.Minute/time.Duration(max(cfg.badKeysPerMinute, 1))), max(cfg.badKeysPerMinute, 1)),
		total:      rate.NewLimiter(rate.Every(time.Hour/time.Duration(max(cfg.keysTotalPerHour, 1))), cfg.keysTotalPerHour),
		adminToken: cfg.adminToken,
		freeKeys:   cfg.freeKeys,
	}
	g := &gateway{reg: reg, bodyTimeout: cfg.bodyTimeout}
	g.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) { pr.SetXForwarded() },
		Transport: platform.Propagate(breaker.NewTransport(reg.Transport(nil, discovery.WithStrictNames()),
			append([]breaker.TransportOption{breaker.WithRetries(1), breaker.WithDeadlineHeader(platform.BudgetHeader)}, cfg.breaker...)...)),
		// The gateway's own request-id middleware has set the header.
		ModifyResponse: func(res *http.Response) error { res.Header.Del(echo.HeaderXRequestID); return nil },
		ErrorHandler:   proxyError,
	}
	app := echo.New()
	app.POST("/api/keys/create", a.createKey)
	app.Any("/v1/:service/*", g.call, g.public, a.guard)
	return app
}
