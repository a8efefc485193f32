// Command dashboard is one HTML page over the fleet's shared request log
// and its health: per-service hits, error rate and latency percentiles for
// the last hour or day, server-rendered SVG charts, a health table of every
// service in the port map, recent errors, and every row of one trace. No
// front-end build step.
package main

import (
	"context"
	"database/sql"
	"log"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	_ "github.com/mattn/go-sqlite3"

	"github.com/flotilla-go/flotilla/discovery"
	"github.com/flotilla-go/flotilla/health"
	"github.com/flotilla-go/flotilla/platform"
)

// newApp returns the dashboard's routes over the log at dbPath and the
// services of reg.
func newApp(reg *discovery.Registry, dbPath string, mon *health.Monitor) (*echo.Echo, func(), error) {
	db, err := sql.Open("sqlite3", "file:"+dbPath+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		return nil, nil, err
	}
	d := &dashboard{path: dbPath, db: db, mon: mon, now: time.Now}
	app := echo.New()
	app.GET("/", d.index)
	return app, d.close, nil
}

func monitor(reg *discovery.Registry) *health.Monitor {
	client := &http.Client{Transport: reg.Transport(nil, discovery.WithStrictNames())}
	var targets []health.Target
	for _, s := range reg.Services() {
		if s.Endpoint.Network != "srv" && s.Name != "dashboard" {
			targets = append(targets, health.Target{Name: s.Name, URL: "http://" + s.Name + s.Health, Client: client})
		}
	}
	return health.NewMonitor(targets, health.WithInterval(10*time.Second), health.WithProbeTimeout(2*time.Second))
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
	mon := monitor(reg)
	app, _, err := newApp(reg, dbPath, mon) // it only reads: nothing to flush at exit
	if err != nil {
		log.Fatal(err)
	}
	go mon.Run(context.Background())
	platform.Main(app, "dashboard")
}
