package logger_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/flotilla-go/flotilla/logger"
)

// A service logs every request into the fleet's shared file.
func ExampleMiddleware() {
	dir, _ := os.MkdirTemp("", "flotilla-example")
	defer os.RemoveAll(dir)
	store, err := logger.Open(filepath.Join(dir, "flotilla.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	app := echo.New()
	app.Use(logger.Middleware(store, "agent-geo"))
	app.GET("/geo/:ip", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"ip": c.Param("ip"), "country": "NL"})
	})

	app.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/geo/192.0.2.1?key=secret", nil))
	if err := store.Flush(context.Background()); err != nil {
		log.Fatal(err)
	}
	sum, _ := store.Summary(context.Background(), time.Now().Add(-time.Hour))
	for _, s := range sum {
		fmt.Printf("%s: %d hits, %.0f%% errors\n", s.Service, s.Hits, 100*s.ErrorRate)
	}
	// Output: agent-geo: 1 hits, 0% errors
}

// Records can be logged directly, from any goroutine; Log never blocks.
func ExampleStore_Log() {
	dir, _ := os.MkdirTemp("", "flotilla-example")
	defer os.RemoveAll(dir)
	store, err := logger.Open(filepath.Join(dir, "flotilla.db"), logger.WithRetention(7*24*time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	store.Log(logger.Record{
		Service:  "crypto-feeds",
		Method:   "GET",
		Path:     "/api/prices",
		Route:    "/api/prices",
		Status:   http.StatusOK,
		Duration: 12 * time.Millisecond,
		TraceID:  "4bf92f3577b34da6a3ce929d0e0e4736",
	})
	if err := store.Close(); err != nil { // writes what is queued
		log.Fatal(err)
	}
	st := store.Stats()
	fmt.Println("written:", st.Written, "dropped:", st.Dropped)
	// Output: written: 1 dropped: 0
}

// The requests of one trace, across every service of the fleet.
func ExampleStore_ByTrace() {
	dir, _ := os.MkdirTemp("", "flotilla-example")
	defer os.RemoveAll(dir)
	store, err := logger.Open(filepath.Join(dir, "flotilla.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	now := time.Now()
	store.Log(logger.Record{Time: now, Service: "agent-gateway", Path: "/v1/agent-geo/geo/192.0.2.1", Status: 502, TraceID: trace})
	store.Log(logger.Record{Time: now.Add(time.Millisecond), Service: "agent-geo", Path: "/geo/192.0.2.1", Status: 500, TraceID: trace, Error: "table not loaded"})
	store.Flush(context.Background())

	rows, _ := store.ByTrace(context.Background(), trace)
	for _, r := range rows {
		fmt.Printf("%s %d %s %q\n", r.Service, r.Status, r.Path, r.Error)
	}
	// Output:
	// agent-gateway 502 /v1/agent-geo/geo/192.0.2.1 ""
	// agent-geo 500 /geo/192.0.2.1 "table not loaded"
}

// A tool reads the fleet's log without writing it: the 5xx of the last hour,
// then every row of one of their traces.
func ExampleOpenReader() {
	dir, _ := os.MkdirTemp("", "flotilla-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "flotilla.db")
	store, err := logger.Open(path) // a service, elsewhere
	if err != nil {
		log.Fatal(err)
	}
	trace := "4bf92f3577b34da6a3ce929d0e0e4736"
	store.Log(logger.Record{Service: "agent-gateway", Method: "GET", Path: "/v1/agent-geo/geo/1", Status: 502, TraceID: trace})
	store.Log(logger.Record{Service: "agent-geo", Method: "GET", Path: "/geo/1", Status: 500, TraceID: trace, Error: "table not loaded"})
	store.Close()

	r, err := logger.OpenReader(path)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	errs, _ := r.Requests(ctx, logger.Query{Since: time.Now().Add(-time.Hour), MinStatus: 500, MaxStatus: 599})
	fmt.Println(len(errs), "server errors")
	id, _ := r.FindTrace(ctx, "4bf92f35", time.Now().Add(-time.Hour))
	rows, _ := r.ByTrace(ctx, id)
	for _, row := range rows {
		fmt.Println(strings.TrimSpace(fmt.Sprintf("%s %d %s", row.Service, row.Status, row.Error)))
	}
	// Output:
	// 2 server errors
	// agent-gateway 502
	// agent-geo 500 table not loaded
}

// A service's objectives, from its rollups: the share of the error budget
// left over the window, and whether it burns fast enough to alert.
func ExampleStore_SLOs() {
	dir, _ := os.MkdirTemp("", "flotilla-example")
	defer os.RemoveAll(dir)
	store, err := logger.Open(filepath.Join(dir, "flotilla.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	now := time.Now()
	for i := range 1000 { // one 503 in 100 over the last ten minutes
		status := http.StatusOK
		if i%100 == 0 {
			status = http.StatusServiceUnavailable
		}
		store.Log(logger.Record{Time: now.Add(-time.Duration(i) * 600 * time.Millisecond), Service: "agent-geo", Status: status})
	}
	if err := store.Flush(context.Background()); err != nil {
		log.Fatal(err)
	}
	reports, err := store.SLOs(context.Background(), map[string]logger.Objective{"agent-geo": {Availability: 0.99}})
	if err != nil {
		log.Fatal(err)
	}
	b := reports[0].Availability
	fmt.Printf("%s: %d of %d good, %.0f%% of the budget left, alert %q\n", reports[0].Objective, b.Good, b.Total, 100*b.Remaining, b.Alert)
	// Output: availability 99%: 990 of 1000 good, 0% of the budget left, alert ""
}
