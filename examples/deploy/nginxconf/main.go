// Command nginxconf prints the nginx configuration of a fleet's public
// services from its port map:
//
//	go run ./examples/deploy/nginxconf -registry /etc/flotilla/flotilla.toml \
//	    -listen 80 -root agent-gateway > /etc/nginx/conf.d/flotilla.conf
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/flotilla-go/flotilla/discovery"
)

func main() {
	registry := flag.String("registry", "flotilla.toml", "the port map")
	listen := flag.String("listen", "80", "nginx's listen directive")
	server := flag.String("server-name", "_", "nginx's server_name")
	root := flag.String("root", "", "the service that answers /, such as agent-gateway")
	flag.Parse()

	reg, err := discovery.Load(*registry)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	conf, err := discovery.NginxConfig(reg, discovery.NginxOptions{Listen: *listen, ServerName: *server, Root: *root})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Stdout.Write(conf)
}
