// Command healthmon watches every service of the port map and sends one
// alert per change of the fleet's state, to a webhook (Slack-compatible) or
// to stdout. GET /status shows the last poll.
package main

import (
	"context"
	"flag"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/flotilla-go/flotilla/discovery"
	"github.com/flotilla-go/flotilla/health"
	"github.com/flotilla-go/flotilla/platform"
)

// targets lists the services of the port map that can be probed.
func targets(reg *discovery.Registry, client *http.Client, self string) []health.Target {
	var out []health.Target
	for _, s := range reg.Services() {
		if s.Endpoint.Network == "srv" || s.Name == self {
			continue
		}
		out = append(out, health.Target{Name: s.Name, URL: "http://" + s.Name + s.Health, Client: client})
	}
	return out
}

func main() {
	webhook := flag.String("webhook", "", "POST alerts to this URL (default: print them)")
	interval := flag.Duration("interval", health.DefaultInterval, "time between polls")
	flag.Parse()

	reg, err := platform.PortMap()
	if err != nil {
		log.Fatal(err)
	}
	client := &http.Client{Transport: reg.Transport(nil, discovery.WithStrictNames())}
	sink := health.Writer(os.Stdout)
	if *webhook != "" {
		sink = health.Webhook(*webhook, nil)
	}
	m := health.NewMonitor(targets(reg, client, "healthmon"), health.WithInterval(*interval), health.WithAlertSink(sink))
	ctx := context.Background()
	go m.Run(ctx)
	go reg.Watch(ctx, 5*time.Second, func(err error) {
		if err == nil {
			m.SetTargets(targets(reg, client, "healthmon"))
		}
	})

	app := echo.New()
	app.GET("/status", func(c echo.Context) error { return c.JSON(http.StatusOK, m.Snapshot()) })
	platform.Main(app, "healthmon")
}
