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
