package discovery

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
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

	// The front door's settings (nginx; see NginxConfig).

	// Hosts are the host names nginx routes to the service, each its own
	// server_name (hosts = ["geo.example.com"]); without them the service
	// is routed on the default server.
	Hosts []string
	// Paths are the path prefixes routed to it (default "/<name>/").
	Paths []string
	// Rate limits requests per client address, in nginx's form, such as
	// "10r/s"; over it nginx answers 429 with Retry-After. Empty: no limit.
	Rate string
	// Burst is how many requests over Rate are let through at once
	// (default DefaultNginxBurst when Rate is set).
	Burst int
	// BodyLimit is the largest request body nginx takes, such as "4M"
	// (client_max_body_size; nginx's default 1M when empty).
	BodyLimit string
	// Unbuffered is buffering = false: responses stream to the client as
	// they come (proxy_buffering off).
	Unbuffered bool

	// The supervisor's settings (systemd; see flotilla systemd).

	// Exec is the service's binary (default /usr/local/bin/<name>).
	Exec string
	// Env is set in its environment.
	Env map[string]string
	// User runs it (default the template's, flotilla).
	User string
	// MemoryMax caps its memory, in systemd's form, such as "256M".
	MemoryMax string
	// CPUWeight is its share of the CPU against the others (systemd's
	// default 100).
	CPUWeight int
	// TasksMax caps its threads and processes.
	TasksMax int
	// Restart is "on-failure" (the template's) or "always".
	Restart string

	// SLO is its objectives (the slo key), nil when it has none.
	SLO *SLO
}

// nginxPaths are the path prefixes nginx routes to s: its paths, else the
// whole of its hosts, else /<name>/.
func (s Service) nginxPaths() []string {
	switch {
	case len(s.Paths) > 0:
		return s.Paths
	case len(s.Hosts) > 0:
		return []string{"/"}
	}
	return []string{"/" + s.Name + "/"}
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
	warnings []Problem
	nginx    NginxSettings
	modTime  time.Time
	size     int64
	lastErr  error
}

// Load reads and validates the registry at path. Every problem is reported
// at once, each with the file and line, in a *ValidationError: unknown keys
// (with the nearest known one), values of the wrong type, names that are
// not DNS labels, duplicate names, ports and sockets, bad socket paths. A
// file that lists no service is an error too. A UTF-8 byte-order mark is
// allowed.
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
	pm, err := parse(r.path, data)
	if err != nil {
		r.setErr(err)
		return err
	}
	services, defaults, warnings := pm.services, pm.defaults, pm.warnings
	byName := make(map[string]int, len(services))
	for i, s := range services {
		byName[s.Name] = i
	}
	r.mu.Lock()
	r.services, r.byName, r.defaults, r.warnings, r.nginx, r.modTime, r.size, r.lastErr = services, byName, defaults, warnings, pm.nginx, fi.ModTime(), fi.Size(), nil
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

// Watch reloads the registry whenever the file's modification time or
// size changes, checking every interval, until ctx ends. A bad edit keeps
// the last good map; so does a file caught half-written (its size or time
// changed while it was read, or it lists no service): it is read again at
// the next check. report, if not nil, is called with each reload's error
// (nil after a good reload).
func (r *Registry) Watch(ctx context.Context, interval time.Duration, report func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	type stamp struct {
		mod  time.Time
		size int64
	}
	r.mu.RLock()
	seen := stamp{mod: r.modTime, size: r.size}
	r.mu.RUnlock()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fi, err := os.Stat(r.path)
		if err != nil || (stamp{fi.ModTime(), fi.Size()}) == seen {
			continue
		}
		err = r.Reload()
		after, serr := os.Stat(r.path)
		if serr == nil && (stamp{after.ModTime(), after.Size()}) != (stamp{fi.ModTime(), fi.Size()}) {
			continue // written while read: read it again, whole, next time
		}
		seen = stamp{fi.ModTime(), fi.Size()}
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

// Nginx returns the [nginx] table of the last good file.
func (r *Registry) Nginx() NginxSettings {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.nginx
}

// Warnings returns what in the last good file is valid but likely wrong,
// each at its line, as of when it was read: a socket folder that does not
// exist or that this user cannot write, a port below 1024 on the default
// host (binding it needs root), and a public service whose health path was
// set to "". Warnings do not stop Load; flotilla check prints them.
func (r *Registry) Warnings() []Problem {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Clone(r.warnings)
}

func joinHostPort(host string, port int) string {
	return strings.TrimSuffix(strings.TrimPrefix(host, "["), "]") + ":" + strconv.Itoa(port)
}
