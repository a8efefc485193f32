// Command dashboard is the fleet's pages over its shared request log, its
// health and its objectives, server-rendered with no front-end build step:
//
//	/                   every service: hits, 4xx, 5xx, p50/p95/p99, SLO budget
//	                    left; the fleet's requests and latency over time;
//	                    health with reasons; recent errors
//	/service/NAME       one service: its routes, statuses, latency over time,
//	                    slowest routes and recent errors
//	/errors             recent 4xx, 5xx and handler errors, filtered
//	/trace/ID           one request across the fleet, as a waterfall
//
// Every page takes ?window=1h|24h|7d|30d and refreshes itself every 30 s.
// It reads the log's rollups, so a 30-day view costs about what an hour's
// does. The health monitor it runs also alerts when an objective burns its
// error budget (fast and slow burn), through the same sinks as down
// services.
package main

import (
	"context"
	"log"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/flotilla-go/flotilla/discovery"
	"github.com/flotilla-go/flotilla/health"
	"github.com/flotilla-go/flotilla/platform"
)

// newApp returns the dashboard's routes over the log at dbPath and the
// services of reg, and the monitor of their health and objectives.
func newApp(reg *discovery.Registry, dbPath string, opts ...health.MonitorOption) (*echo.Echo, *health.Monitor, func()) {
	d := &dashboard{path: dbPath, reg: reg}
	client := &http.Client{Transport: reg.Transport(nil, discovery.WithStrictNames())}
	var targets []health.Target
	for _, s := range reg.Services() {
		d.services = append(d.services, s.Name)
		if s.Endpoint.Network != "srv" && s.Name != "dashboard" {
			targets = append(targets, health.Target{Name: s.Name, URL: "http://" + s.Name + s.Health, Client: client})
		}
	}
	opts = append([]health.MonitorOption{health.WithInterval(10 * time.Second), health.WithProbeTimeout(2 * time.Second),
		health.WithBurnSource(d.burns)}, opts...)
	d.mon = health.NewMonitor(targets, opts...)
	app := echo.New()
	app.GET("/", d.overview)
	app.GET("/service/:name", d.service)
	app.GET("/errors", d.errors)
	app.GET("/trace/:id", d.trace)
	return app, d.mon, d.close
}

func main() {
	reg, err := platform.PortMap()
	if err != nil {
		log.Fatal(err)
	}
	dbPath, err := platform.LogPath()
	if err != nil {
		log.Fatal(err)
	}
	app, mon, _ := newApp(reg, dbPath) // it only reads: nothing to flush at exit
	go mon.Run(context.Background())
	platform.Main(app, "dashboard")
}
