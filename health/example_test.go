package health_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/flotilla-go/flotilla/health"
)

// A service's /health with one critical check and one that only warns.
func ExampleHealth() {
	h := health.New("agent-geo", health.WithVersion("1.4.0"))
	h.Add(health.Check{
		Component: "geodb", Measurement: "rows", ComponentType: "datastore", Critical: true,
		Run: func(ctx context.Context) (any, error) { return 1200, nil },
	})
	h.Add(health.Check{
		Component: "disk", Measurement: "utilization", ObservedUnit: "percent",
		Run: func(ctx context.Context) (any, error) { return 91, health.Warnf("disk 91%% full") },
	})

	app := echo.New()
	app.GET("/health", h.Handler())
	app.GET("/health/live", h.LiveHandler())

	rec := httptest.NewRecorder()
	app.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"))
	r := h.Check(context.Background())
	fmt.Println(r.Status, r.Output)
	// Output:
	// 200 application/health+json
	// warn disk:utilization: disk 91% full
}

// A monitor of two services that prints one alert per change of the fleet.
func ExampleMonitor() {
	up := httptest.NewServer(health.New("agent-geo"))
	defer up.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()

	m := health.NewMonitor([]health.Target{
		{Name: "agent-geo", URL: up.URL + "/health"},
		{Name: "crypto-feeds", URL: gone.URL + "/health"},
	}, health.WithDownAfter(2), health.WithAlertSink(health.SinkFunc(func(_ context.Context, a health.Alert) error {
		fmt.Print(a.Text())
		return nil
	})), health.WithInterval(time.Millisecond))

	ctx, cancel := context.WithCancel(context.Background())
	for range 2 {
		m.Poll(ctx)
	}
	cancel()
	m.Run(ctx) // delivers what is queued and returns
	// Output:
	// 1 down (1 of 2 down now)
	// DOWN crypto-feeds: connection refused
}

// Alerts can go to a Slack-compatible webhook, a command, or a writer.
func ExampleWebhook() {
	sinks := []health.AlertSink{
		health.Webhook("https://hooks.example.com/services/T000/B000/XXXX", nil),
		health.Command("logger", "-t", "flotilla"),
		health.Writer(os.Stdout),
	}
	fmt.Println(len(sinks), errors.Is(health.Warnf("x"), health.ErrWarn))
	// Output: 3 true
}
