// Command crypto (crypto-feeds) serves GET /api/prices from the upstream
// feed through platform.Client. When the upstream fails or its breaker is
// open, it answers the last good prices, marked stale.
package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/flotilla-go/flotilla/platform"
)

type prices struct {
	Prices map[string]float64 `json:"prices"`
	Time   time.Time          `json:"time"`
	Stale  bool               `json:"stale"`
	Reason string             `json:"reason,omitempty"`
}

type cache struct {
	mu   sync.Mutex
	last *prices
}

func (c *cache) handler(upstream string) echo.HandlerFunc {
	client := platform.Client()
	return func(ec echo.Context) error {
		p, err := fetch(ec, client, upstream)
		c.mu.Lock()
		defer c.mu.Unlock()
		if err == nil {
			c.last = p
			return ec.JSON(http.StatusOK, p)
		}
		if c.last == nil {
			return echo.NewHTTPError(http.StatusServiceUnavailable, "no prices yet: "+err.Error())
		}
		stale := *c.last
		stale.Stale, stale.Reason = true, err.Error()
		return ec.JSON(http.StatusOK, stale)
	}
}

func fetch(ec echo.Context, client *http.Client, url string) (*prices, error) {
	req, err := http.NewRequestWithContext(ec.Request().Context(), http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	res, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("upstream: %s", res.Status)
	}
	var p prices
	if err := json.NewDecoder(res.Body).Decode(&p); err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	return &p, nil
}

func main() {
	app := echo.New()
	c := &cache{}
	app.GET("/api/prices", c.handler("http://upstream/prices"))
	platform.Main(app, "crypto-feeds")
}
