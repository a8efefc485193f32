// Command upstream plays a third-party price feed for crypto-feeds. It can
// be told to misbehave: POST /mode with ok, slow (5 s per answer) or fail
// (503), so the breaker in front of it can be seen at work.
package main

import (
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/flotilla-go/flotilla/platform"
)

type feed struct {
	mu     sync.Mutex
	mode   string
	prices map[string]float64
}

func (f *feed) get(c echo.Context) error {
	f.mu.Lock()
	mode := f.mode
	for k, v := range f.prices { // a small random walk
		f.prices[k] = v * (1 + (rand.Float64()-0.5)/100)
	}
	snapshot := make(map[string]float64, len(f.prices))
	for k, v := range f.prices {
		snapshot[k] = v
	}
	f.mu.Unlock()
	switch mode {
	case "fail":
		return echo.NewHTTPError(http.StatusServiceUnavailable, "upstream told to fail")
	case "slow":
		select {
		case <-time.After(5 * time.Second):
		case <-c.Request().Context().Done():
			return c.Request().Context().Err()
		}
	}
	return c.JSON(http.StatusOK, map[string]any{"prices": snapshot, "time": time.Now().UTC()})
}

func (f *feed) setMode(c echo.Context) error {
	mode := c.FormValue("mode")
	if mode != "ok" && mode != "slow" && mode != "fail" {
		return echo.NewHTTPError(http.StatusBadRequest, "mode must be ok, slow or fail")
	}
	f.mu.Lock()
	f.mode = mode
	f.mu.Unlock()
	return c.NoContent(http.StatusNoContent)
}

func main() {
	f := &feed{mode: "ok", prices: map[string]float64{"BTC": 97000, "ETH": 3600, "SOL": 240}}
	app := echo.New()
	app.GET("/prices", f.get)
	app.POST("/mode", f.setMode)
	platform.Main(app, "upstream")
}
