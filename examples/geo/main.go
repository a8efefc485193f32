// Command geo (agent-geo) answers GET /geo/:ip with the country of an IP
// address from a small range table embedded in the binary. The table is
// made-up sample data (documentation and private ranges), not a real
// geolocation database.
package main

import (
	"bufio"
	"bytes"
	_ "embed"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/flotilla-go/flotilla/platform"
)

//go:embed ranges.csv
var rangesCSV []byte

type ipRange struct {
	first, last   netip.Addr
	code, country string
}

func loadRanges(data []byte) ([]ipRange, error) {
	var out []ipRange
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) != 4 {
			return nil, fmt.Errorf("ranges.csv:%d: want 4 fields, got %d", n, len(f))
		}
		first, err1 := netip.ParseAddr(f[0])
		last, err2 := netip.ParseAddr(f[1])
		if err1 != nil || err2 != nil || last.Less(first) {
			return nil, fmt.Errorf("ranges.csv:%d: bad range %s-%s", n, f[0], f[1])
		}
		out = append(out, ipRange{first, last, f[2], f[3]})
	}
	return out, sc.Err()
}

func lookup(ranges []ipRange) echo.HandlerFunc {
	return func(c echo.Context) error {
		ip, err := netip.ParseAddr(c.Param("ip"))
		if err != nil {
			return c.JSON(http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("%q is not an IP address", c.Param("ip"))})
		}
		ip = ip.Unmap()
		for _, r := range ranges {
			if !ip.Less(r.first) && !r.last.Less(ip) {
				return c.JSON(http.StatusOK, map[string]string{"ip": ip.String(), "country_code": r.code, "country": r.country})
			}
		}
		return c.JSON(http.StatusNotFound, map[string]string{"error": "no country known for " + ip.String()})
	}
}

func main() {
	ranges, err := loadRanges(rangesCSV)
	if err != nil {
		panic(err) // the embedded table is part of the build
	}
	app := echo.New()
	app.GET("/geo/:ip", lookup(ranges))
	platform.Main(app, "agent-geo")
}
