// Package discovery is the fleet's port map: one TOML file that the code
// reads, listeners on unix sockets or ports for each service, an
// http.Transport that calls services by name, DNS SRV resolution for fleets
// on many hosts, and the nginx configuration that fronts them.
package discovery

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// MaxSocketPath is the longest unix socket path the OS accepts, in bytes
// (sun_path is 108 bytes on Linux, one of them the terminating NUL).
const MaxSocketPath = 107

// Endpoint is where a service listens or is reached.
type Endpoint struct {
	// Network is "unix", "tcp", or "srv" (a DNS SRV name resolved when
	// dialing; see SRVResolver).
	Network string
	// Address is a socket path, a host:port, or an SRV name.
	Address string
}

// String returns the endpoint as "unix:/run/flotilla/agent-geo.sock",
// "tcp:127.0.0.1:3034" or "srv:_agent-geo._tcp.service.consul", the form
// ParseEndpoint reads.
func (e Endpoint) String() string { return e.Network + ":" + e.Address }

// IsZero reports whether e is the zero Endpoint.
func (e Endpoint) IsZero() bool { return e == Endpoint{} }

// ParseEndpoint reads an endpoint written as String writes it, or in a
// short form: ":3034" and "3034" (TCP on 127.0.0.1), "127.0.0.1:3034" or
// "[::1]:3034" (TCP), "/abs/path.sock" (unix).
func ParseEndpoint(s string) (Endpoint, error) {
	bad := func(why string) (Endpoint, error) {
		return Endpoint{}, fmt.Errorf("discovery: endpoint %q: %s; write unix:/path.sock, tcp:host:port, :port, port or /path.sock", s, why)
	}
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return bad("empty")
	case strings.HasPrefix(s, "unix:"):
		return unixEndpoint(s, strings.TrimPrefix(s, "unix:"))
	case strings.HasPrefix(s, "srv:"):
		name := strings.TrimPrefix(s, "srv:")
		if name == "" || strings.ContainsAny(name, " /:") {
			return bad("not a DNS SRV name such as _agent-geo._tcp.service.consul")
		}
		return Endpoint{Network: "srv", Address: name}, nil
	case strings.HasPrefix(s, "tcp:"):
		return tcpEndpoint(s, strings.TrimPrefix(s, "tcp:"))
	case strings.HasPrefix(s, "/"):
		return unixEndpoint(s, s)
	}
	if _, err := strconv.Atoi(s); err == nil {
		return tcpEndpoint(s, "127.0.0.1:"+s)
	}
	if strings.HasPrefix(s, ":") {
		return tcpEndpoint(s, "127.0.0.1"+s)
	}
	return tcpEndpoint(s, s)
}

func unixEndpoint(orig, path string) (Endpoint, error) {
	if !strings.HasPrefix(path, "/") {
		return Endpoint{}, fmt.Errorf("discovery: endpoint %q: a socket path must be absolute", orig)
	}
	if len(path) > MaxSocketPath {
		return Endpoint{}, fmt.Errorf("discovery: endpoint %q: socket path is %d bytes, longer than the OS limit of %d: use a shorter folder such as /run/flotilla", orig, len(path), MaxSocketPath)
	}
	return Endpoint{Network: "unix", Address: path}, nil
}

func tcpEndpoint(orig, addr string) (Endpoint, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return Endpoint{}, fmt.Errorf("discovery: endpoint %q: %v; write host:port, :port or port", orig, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	if err := checkPort(port); err != nil {
		return Endpoint{}, fmt.Errorf("discovery: endpoint %q: %w", orig, err)
	}
	return Endpoint{Network: "tcp", Address: net.JoinHostPort(host, port)}, nil
}

func checkPort(port string) error {
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return nil
}
