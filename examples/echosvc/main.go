// Command echosvc is a generic fleet member named on the command line
// (echosvc svc-07): it echoes what it is asked, for filling a demo fleet.
package main

import (
	"fmt"
	"net/http"
	"os"

	"github.com/labstack/echo/v4"

	"github.com/flotilla-go/flotilla/platform"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: echosvc NAME")
		os.Exit(2)
	}
	name := os.Args[1]
	app := echo.New()
	app.GET("/echo/*", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"service": name, "path": "/" + c.Param("*")})
	})
	platform.Main(app, name)
}
