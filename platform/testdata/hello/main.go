// Command hello is the smallest fleet member, for the start-up and memory
// benchmarks.
package main

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/flotilla-go/flotilla/platform"
)

func main() {
	app := echo.New()
	app.GET("/hello", func(c echo.Context) error { return c.String(http.StatusOK, "hello") })
	platform.Main(app, "hello")
}
