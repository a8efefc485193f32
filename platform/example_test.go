package platform_test

import (
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/flotilla-go/flotilla/platform"
)

// A service's whole main. Run returns after a graceful shutdown; here the
// example stops itself with SIGTERM once it serves.
func ExampleRun() {
	dir, _ := os.MkdirTemp("", "flotilla-example")
	defer os.RemoveAll(dir)

	app := echo.New()
	app.GET("/geo/:ip", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"ip": c.Param("ip"), "country": "NL"})
	})
	go func() {
		for {
			if res, err := http.Get("http://127.0.0.1:38071/health"); err == nil {
				res.Body.Close()
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		res, _ := http.Get("http://127.0.0.1:38071/geo/192.0.2.1")
		fmt.Println(res.Status, res.Header.Get("X-Request-Id") != "")
		res.Body.Close()
		syscall.Kill(os.Getpid(), syscall.SIGTERM)
	}()
	err := platform.Run(app, "agent-geo",
		platform.WithListen("127.0.0.1:38071"),
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
