package discovery_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"

	"github.com/flotilla-go/flotilla/discovery"
)

// A service listens where the port map says, and a sibling calls it by
// name.
func ExampleRegistry_Transport() {
	dir, _ := os.MkdirTemp("", "flotilla-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "flotilla.toml")
	os.WriteFile(path, []byte(`
[defaults]
socket_dir = "run"   # relative to this file

[[service]]
name = "agent-geo"
public = true
`), 0o644)

	reg, err := discovery.Load(path)
	if err != nil {
		log.Fatal(err) // every problem, each with file:line
	}
	ln, err := reg.Listen(context.Background(), "agent-geo")
	if err != nil {
		log.Fatal(err)
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "NL")
	}))
	defer ln.Close()

	client := &http.Client{Transport: reg.Transport(nil, discovery.WithStrictNames())}
	res, err := client.Get("http://agent-geo/geo/192.0.2.1")
	if err != nil {
		log.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	ep, _ := reg.Lookup("agent-geo")
	fmt.Println(ep.Network, string(b))
	// Output: unix NL
}

func ExampleParseEndpoint() {
	for _, s := range []string{"3034", ":3034", "unix:/run/flotilla/agent-geo.sock", "/run/flotilla/agent-geo.sock"} {
		ep, _ := discovery.ParseEndpoint(s)
		fmt.Println(ep)
	}
	// Output:
	// tcp:127.0.0.1:3034
	// tcp:127.0.0.1:3034
	// unix:/run/flotilla/agent-geo.sock
	// unix:/run/flotilla/agent-geo.sock
}

// The nginx side of the port map, generated so it cannot drift.
func ExampleNginxConfig() {
	reg, err := discovery.Load("testdata/fleet.toml")
	if err != nil {
		log.Fatal(err)
	}
	conf, err := discovery.NginxConfig(reg, discovery.NginxOptions{Listen: "80", Root: "agent-gateway"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(conf) > 0)
	// Output: true
}
