package discovery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// DefaultHealthPath is the health path of a service that does not set one.
const DefaultHealthPath = "/health"

// DefaultHost is the address TCP services bind to unless the registry says
// otherwise: loopback, so that only nginx and siblings reach them.
const DefaultHost = "127.0.0.1"

// ErrUnknownService is returned for a name that is not in the registry.
var ErrUnknownService = errors.New("unknown service")

// Service is one entry of the registry.
type Service struct {
	// Name is the service's name, a DNS label.
	Name string
	// Endpoint is where it listens.
	Endpoint Endpoint
	// Public marks a service the gateway and nginx may expose.
	Public bool
	// Health is its health path (default DefaultHealthPath).
	Health string
	// Tags are free labels.
	Tags []string
	// Line is the line of its [[service]] table in the file.
	Line int
}

// Defaults is the [defaults] table of the registry.
type Defaults struct {
	// DB is the fleet's shared request-log file, absolute.
	DB string
	// Host is the address TCP services bind to (default DefaultHost).
	Host string
	// SocketDir gives services without port or socket the socket
	// <SocketDir>/<name>.sock.
	SocketDir string
	// BasePort gives services without port or socket, when SocketDir is
	// not set, sequential ports from it in file order.
	BasePort int
}

// Problem is one thing wrong in a registry file, at a line.
type Problem struct {
	// File is the registry file.
	File string
	// Line is the problem's line, or 0 when it has none.
	Line int
	// Msg says what is wrong and how to fix it.
	Msg string
}

// String returns the problem as "file:line: message".
func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
	}
	return p.File + ": " + p.Msg
}

// ValidationError lists every problem found in a registry file.
type ValidationError struct {
	Problems []Problem
}

// Error lists the problems, one a line.
func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return "discovery: invalid registry:\n" + strings.Join(lines, "\n")
}

// Registry is the fleet's port map, loaded from one TOML file:
//
//	[defaults]
//	db = "/var/lib/flotilla/flotilla.db"   # the shared request log
//	socket_dir = "/run/flotilla"           # services without port or socket
//
//	[[service]]
//	name = "agent-gateway"
//	port = 8080
//	public = true
//
//	[[service]]
//	name = "agent-geo"
//	socket = "/run/flotilla/agent-geo.sock"
//	public = true
//	health = "/health"
//	tags = ["lookup"]
//
// A service has a port (TCP on [defaults] host, else 127.0.0.1, unless its
// own host says otherwise), a socket, an srv name (resolved through DNS SRV
// when dialing), or none of them and a place from socket_dir or base_port.
// Relative paths are relative to the file's folder. A Registry is safe for
// concurrent use; Reload replaces its contents only when the new file is
// valid.
type Registry struct {
	path string

	mu       sync.RWMutex
	services []Service
	byName   map[string]int
	defaults Defaults
	modTime  time.Time
	lastErr  error
}

// Load reads and validates the registry at path. Every problem is reported
// at once, each with the file and line, in a *ValidationError.
func Load(path string) (*Registry, error) {
	r := &Registry{path: path}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Path returns the registry's file.
func (r *Registry) Path() string { return r.path }

// Reload reads the file again. If the new contents are not valid it keeps
// the last good map and returns the error, also kept for LastError.
func (r *Registry) Reload() error {
	fi, err := os.Stat(r.path)
	if err == nil && fi.IsDir() {
		err = fmt.Errorf("is a directory: give the path of the registry file, such as %s", filepath.Join(r.path, "flotilla.toml"))
	}
	var data []byte
	if err == nil {
		data, err = os.ReadFile(r.path)
	}
	if err != nil {
		err = fmt.Errorf("discovery: registry %s: %w", r.path, err)
		r.setErr(err)
		return err
	}
	services, defaults, err := parse(r.path, data)
	if err != nil {
		r.setErr(err)
		return err
	}
	byName := make(map[string]int, len(services))
	for i, s := range services {
		byName[s.Name] = i
	}
	r.mu.Lock()
	r.services, r.byName, r.defaults, r.modTime, r.lastErr = services, byName, defaults, fi.ModTime(), nil
	r.mu.Unlock()
	return nil
}

func (r *Registry) setErr(err error) {
	r.mu.Lock()
	r.lastErr = err
	r.mu.Unlock()
}

// LastError returns the error of the last Reload, or nil if it succeeded.
func (r *Registry) LastError() error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.lastErr
}

// Watch reloads the registry whenever the file's modification time changes,
// checking every interval, until ctx ends. A bad edit keeps the last good
// map; report, if not nil, is called with each reload's error (nil after a
// good reload).
func (r *Registry) Watch(ctx context.Context, interval time.Duration, report func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var seen time.Time
	r.mu.RLock()
	seen = r.modTime
	r.mu.RUnlock()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fi, err := os.Stat(r.path)
		if err != nil || fi.ModTime().Equal(seen) {
			continue
		}
		seen = fi.ModTime()
		err = r.Reload()
		if report != nil {
			report(err)
		}
	}
}

// Services returns the services in file order.
func (r *Registry) Services() []Service {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append([]Service(nil), r.services...)
}

// Service returns the entry of name.
func (r *Registry) Service(name string) (Service, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	i, ok := r.byName[name]
	if !ok {
		return Service{}, false
	}
	return r.services[i], true
}

// Lookup returns the endpoint of name, or an error wrapping
// ErrUnknownService.
func (r *Registry) Lookup(name string) (Endpoint, error) {
	s, ok := r.Service(name)
	if !ok {
		return Endpoint{}, fmt.Errorf("discovery: %w %q: add it to %s", ErrUnknownService, name, r.path)
	}
	return s.Endpoint, nil
}

// Defaults returns the [defaults] table, with paths made absolute.
func (r *Registry) Defaults() Defaults {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.defaults
}

// The file's layout, decoded strictly: an unknown key is an error.
type fileLayout struct {
	Defaults struct {
		DB        string `toml:"db"`
		Host      string `toml:"host"`
		SocketDir string `toml:"socket_dir"`
		BasePort  *int   `toml:"base_port"`
	} `toml:"defaults"`
	Service []struct {
		Name   string   `toml:"name"`
		Port   *int     `toml:"port"`
		Host   string   `toml:"host"`
		Socket string   `toml:"socket"`
		SRV    string   `toml:"srv"`
		Public bool     `toml:"public"`
		Health string   `toml:"health"`
		Tags   []string `toml:"tags"`
	} `toml:"service"`
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// parse decodes and validates a registry, collecting every problem.
func parse(path string, data []byte) ([]Service, Defaults, error) {
	var probs []Problem
	add := func(line int, format string, args ...any) {
		probs = append(probs, Problem{File: path, Line: line, Msg: fmt.Sprintf(format, args...)})
	}
	var f fileLayout
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		var strict *toml.StrictMissingError
		var de *toml.DecodeError
		switch {
		case errors.As(err, &strict):
			for _, e := range strict.Errors {
				row, _ := e.Position()
				add(row, "unknown key %q: the keys are name, port, host, socket, srv, public, health, tags ([[service]]) and db, host, socket_dir, base_port ([defaults])", strings.Join(e.Key(), "."))
			}
		case errors.As(err, &de):
			row, _ := de.Position()
			add(row, "%s", de.Error())
		default:
			add(0, "%v", err)
		}
		return nil, Defaults{}, &ValidationError{Problems: probs}
	}
	lines := keyLines(data)
	dir := filepath.Dir(path)
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		a, err := filepath.Abs(filepath.Join(dir, p))
		if err != nil {
			return filepath.Join(dir, p)
		}
		return a
	}
	d := Defaults{DB: abs(f.Defaults.DB), Host: f.Defaults.Host, SocketDir: abs(f.Defaults.SocketDir)}
	if d.Host == "" {
		d.Host = DefaultHost
	}
	if f.Defaults.BasePort != nil {
		d.BasePort = *f.Defaults.BasePort
		if d.BasePort < 1 || d.BasePort > 65535 {
			add(lines["defaults.base_port"], "base_port %d is not a port from 1 to 65535", d.BasePort)
		}
	}

	var services []Service
	names := map[string]int{}    // name -> line
	ports := map[string]string{} // host:port -> service
	sockets := map[string]string{}
	next := d.BasePort
	for i, s := range f.Service {
		key := func(k string) int {
			if l := lines[fmt.Sprintf("service.%d.%s", i, k)]; l > 0 {
				return l
			}
			return lines[fmt.Sprintf("service.%d", i)]
		}
		line := key("")
		svc := Service{Name: s.Name, Public: s.Public, Health: s.Health, Tags: s.Tags, Line: lines[fmt.Sprintf("service.%d", i)]}
		if svc.Health == "" {
			svc.Health = DefaultHealthPath
		} else if !strings.HasPrefix(svc.Health, "/") {
			add(key("health"), "service %q: health path %q must start with /", s.Name, s.Health)
		}
		switch {
		case s.Name == "":
			add(line, "a [[service]] without name")
		case !dnsLabel.MatchString(s.Name):
			add(key("name"), "service name %q is not a DNS label: use lowercase letters, digits and '-', at most 63, not starting or ending with '-'", s.Name)
		}
		if first, dup := names[s.Name]; dup && s.Name != "" {
			add(key("name"), "service %q is listed twice (first at line %d)", s.Name, first)
		} else {
			names[s.Name] = key("name")
		}
		given := 0
		for _, set := range []bool{s.Port != nil, s.Socket != "", s.SRV != ""} {
			if set {
				given++
			}
		}
		if given > 1 {
			add(line, "service %q: give only one of port, socket and srv", s.Name)
			continue
		}
		host := s.Host
		if host == "" {
			host = d.Host
		}
		switch {
		case s.Port != nil:
			if *s.Port < 1 || *s.Port > 65535 {
				add(key("port"), "service %q: port %d is not from 1 to 65535", s.Name, *s.Port)
				continue
			}
			svc.Endpoint = Endpoint{Network: "tcp", Address: joinHostPort(host, *s.Port)}
		case s.Socket != "":
			svc.Endpoint = Endpoint{Network: "unix", Address: abs(s.Socket)}
		case s.SRV != "":
			svc.Endpoint = Endpoint{Network: "srv", Address: s.SRV}
		case d.SocketDir != "":
			svc.Endpoint = Endpoint{Network: "unix", Address: filepath.Join(d.SocketDir, s.Name+".sock")}
		case d.BasePort > 0:
			if next > 65535 {
				add(line, "service %q: base_port %d leaves no port for it", s.Name, d.BasePort)
				continue
			}
			svc.Endpoint = Endpoint{Network: "tcp", Address: joinHostPort(host, next)}
			next++
		default:
			add(line, "service %q has no port, socket or srv, and [defaults] sets neither socket_dir nor base_port", s.Name)
			continue
		}
		switch svc.Endpoint.Network {
		case "tcp":
			_, port, _ := strings.Cut(svc.Endpoint.Address[strings.LastIndex(svc.Endpoint.Address, "]")+1:], ":")
			if other, dup := ports[port]; dup {
				add(key("port"), "service %q: port %s is already used by %q", s.Name, port, other)
			}
			ports[port] = s.Name
		case "unix":
			l := key("socket")
			if len(svc.Endpoint.Address) > MaxSocketPath {
				add(l, "service %q: socket path %s is %d bytes, longer than the OS limit of %d: use a shorter folder such as /run/flotilla", s.Name, svc.Endpoint.Address, len(svc.Endpoint.Address), MaxSocketPath)
			}
			if other, dup := sockets[svc.Endpoint.Address]; dup {
				add(l, "service %q: socket %s is already used by %q", s.Name, svc.Endpoint.Address, other)
			}
			sockets[svc.Endpoint.Address] = s.Name
		}
		services = append(services, svc)
	}
	if len(probs) > 0 {
		return nil, Defaults{}, &ValidationError{Problems: probs}
	}
	return services, d, nil
}

func joinHostPort(host string, port int) string {
	return strings.TrimSuffix(strings.TrimPrefix(host, "["), "]") + ":" + strconv.Itoa(port)
}

// keyLines maps "defaults.KEY", "service.I" and "service.I.KEY" to their
// line in data, using the parser's positions.
func keyLines(data []byte) map[string]int {
	out := map[string]int{}
	var p unstable.Parser
	p.Reset(data)
	table := ""
	service := -1
	for p.NextExpression() {
		e := p.Expression()
		line := p.Shape(e.Raw).Start.Line
		switch e.Kind {
		case unstable.ArrayTable, unstable.Table:
			var parts []string
			for it := e.Key(); it.Next(); {
				parts = append(parts, string(it.Node().Data))
				line = p.Shape(it.Node().Raw).Start.Line
			}
			table = strings.Join(parts, ".")
			if e.Kind == unstable.ArrayTable && table == "service" {
				service++
				out[fmt.Sprintf("service.%d", service)] = line
			}
		case unstable.KeyValue:
			var parts []string
			for it := e.Key(); it.Next(); {
				parts = append(parts, string(it.Node().Data))
				line = p.Shape(it.Node().Raw).Start.Line
			}
			k := strings.Join(parts, ".")
			if table == "service" {
				out[fmt.Sprintf("service.%d.%s", service, k)] = line
			} else if table != "" {
				out[table+"."+k] = line
			}
		}
	}
	return out
}
