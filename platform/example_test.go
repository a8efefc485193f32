package platform_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/flotilla-go/flotilla/platform"
)

// A service's whole main is platform.Main(app, "agent-geo"). Here
// RunContext runs it on a unix socket in a folder of its own and stops it
// gracefully, as SIGTERM would, by ending its context once it has answered.
func ExampleRunContext() {
	dir, err := os.MkdirTemp("", "flotilla-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "agent-geo.sock")

	app := echo.New()
	app.GET("/geo/:ip", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"ip": c.Param("ip"), "country": "NL"})
	})
	ctx, stop := context.WithCancel(context.Background())
	go func() {
		defer stop()
		client := &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", sock)
			},
		}}
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			res, err := client.Get("http://agent-geo/geo/192.0.2.1")
			if err != nil {
				continue // not listening yet
			}
			fmt.Println(res.Status, res.Header.Get("X-Request-Id") != "")
			res.Body.Close()
			return
		}
		fmt.Println("never served")
	}()
	err = platform.RunContext(ctx, app, "agent-geo",
		platform.WithListen("unix:"+sock),
		platform.WithDB(filepath.Join(dir, "flotilla.db")),
		platform.WithRegistry(""),
		platform.WithStderr(nilWriter{}))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stopped gracefully")
	// Output:
	// 200 OK true
	// stopped gracefully
}

type nilWriter struct{}

func (nilWriter) Write(p []byte) (int, error) { return len(p), nil }

// Calling a sibling by its name in the port map from a handler: pass the
// handler's context, so the call carries the request's trace and request id
// and ends with the request, and the breaker answers at once if the
// sibling is down.
func ExampleClient() {
	app := echo.New()
	app.GET("/api/prices", func(c echo.Context) error {
		ctx := c.Request().Context()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://upstream/prices", nil)
		if err != nil {
			return err
		}
		res, err := platform.Client().Do(req)
		if err != nil {
			return echo.NewHTTPError(http.StatusBadGateway, err.Error())
		}
		defer res.Body.Close()
		return c.Stream(res.StatusCode, res.Header.Get("Content-Type"), res.Body)
	})
	_ = app // platform.Run(app, "crypto-feeds") in main
}
