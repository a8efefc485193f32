package discovery

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
)

// DefaultSocketMode is the mode of the unix sockets Listen creates: owner
// and group may connect (put nginx's user in the fleet's group).
const DefaultSocketMode fs.FileMode = 0o660

// A ListenOption changes a default of Listen.
type ListenOption func(*listenOptions)

type listenOptions struct {
	mode fs.FileMode
	name string
}

// WithSocketMode sets the mode of a unix socket (default DefaultSocketMode).
func WithSocketMode(m fs.FileMode) ListenOption { return func(o *listenOptions) { o.mode = m } }

// WithName names the service in errors (Registry.Listen sets it).
func WithName(name string) ListenOption { return func(o *listenOptions) { o.name = name } }

// Listen listens on ep.
//
// For a unix socket it creates the parent folder (mode 0750) if needed,
// removes a stale socket file that nothing accepts on, refuses a socket that
// a running process listens on and any path that is not a socket (never
// removing it), sets the socket's mode to DefaultSocketMode, and removes
// the file when the listener is closed. For TCP, a port in use is an error
// that names the service and the port.
func Listen(ctx context.Context, ep Endpoint, opts ...ListenOption) (net.Listener, error) {
	o := listenOptions{mode: DefaultSocketMode}
	for _, opt := range opts {
		opt(&o)
	}
	who := "listen"
	if o.name != "" {
		who = fmt.Sprintf("service %q", o.name)
	}
	var lc net.ListenConfig
	switch ep.Network {
	case "tcp":
		ln, err := lc.Listen(ctx, "tcp", ep.Address)
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("discovery: %s: port %s is already in use: stop what holds it (ss -ltnp 'sport = :%[2]s') or change the port map: %w", who, port(ep.Address), err)
		}
		if err != nil {
			return nil, fmt.Errorf("discovery: %s: listen on %s: %w", who, ep, err)
		}
		return ln, nil
	case "unix":
		return listenUnix(ctx, &lc, ep.Address, who, o.mode)
	case "srv":
		return nil, fmt.Errorf("discovery: %s: cannot listen on %s: an SRV name is only for calling; give the service a port or socket", who, ep)
	}
	return nil, fmt.Errorf("discovery: %s: unknown network %q in endpoint %s", who, ep.Network, ep)
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func listenUnix(ctx context.Context, lc *net.ListenConfig, path, who string, mode fs.FileMode) (net.Listener, error) {
	if len(path) > MaxSocketPath {
		return nil, fmt.Errorf("discovery: %s: socket path %s is %d bytes, longer than the OS limit of %d", who, path, len(path), MaxSocketPath)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("discovery: %s: create socket folder: %w", who, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("discovery: %s: %s exists and is not a socket: move it away (it is never removed automatically)", who, path)
		}
		d := net.Dialer{Timeout: time.Second}
		if c, err := d.DialContext(ctx, "unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("discovery: %s: socket %s is already in use by a running process", who, path)
		}
		// Stale: left by a process that died without closing it.
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("discovery: %s: remove stale socket: %w", who, err)
		}
	}
	ln, err := lc.Listen(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("discovery: %s: listen on unix:%s: %w", who, path, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("discovery: %s: chmod socket: %w", who, err)
	}
	return ln, nil
}

// Listen returns the listener of the named service. It takes, in order: a
// socket inherited through systemd socket activation (LISTEN_FDS,
// LISTEN_PID, LISTEN_FDNAMES; the one named after the service when names are
// given, else the only one), then the registry's entry. Inherited sockets
// that are not used are closed.
func (r *Registry) Listen(ctx context.Context, name string, opts ...ListenOption) (net.Listener, error) {
	if ln, err := Inherited(name); ln != nil || err != nil {
		return ln, err
	}
	s, ok := r.Service(name)
	if !ok {
		return nil, fmt.Errorf("discovery: service %q: %w: add a [[service]] with name = %q and a port or socket to %s, or start it under systemd socket activation", name, ErrUnknownService, name, r.path)
	}
	return Listen(ctx, s.Endpoint, append([]ListenOption{WithName(name)}, opts...)...)
}

// Inherited returns the listener that systemd socket activation passed for
// the named service, or nil if the process got none. It reads and unsets
// LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES, so child processes do not see
// them.
func Inherited(name string) (net.Listener, error) {
	if os.Getenv("LISTEN_FDS") == "" {
		return nil, nil
	}
	if pid, _ := strconv.Atoi(os.Getenv("LISTEN_PID")); pid != os.Getpid() {
		return nil, nil // meant for another process
	}
	named, err := activation.ListenersWithNames()
	if err != nil {
		return nil, fmt.Errorf("discovery: service %q: inherited sockets: %w", name, err)
	}
	var pick net.Listener
	var all []net.Listener
	for fdName, lns := range named {
		for _, ln := range lns {
			if ln == nil {
				continue
			}
			all = append(all, ln)
			if fdName == name && pick == nil {
				pick = ln
			}
		}
	}
	if pick == nil && len(all) == 1 {
		pick = all[0]
	}
	for _, ln := range all {
		if ln != pick {
			ln.Close()
		}
	}
	if pick == nil && len(all) > 0 {
		return nil, fmt.Errorf("discovery: service %q: systemd passed %d sockets and none is named %q: set FileDescriptorName=%[3]s in its .socket unit", name, len(all), name)
	}
	return pick, nil
}
