package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flotilla-go/flotilla/discovery"
)

// proc is what this machine says of the process that serves a service.
type proc struct {
	PID     int
	Started time.Time
	RSS     int64  // bytes
	Unit    string // its systemd unit, such as flotilla@agent-geo.service, if any
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's start time: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// procFS is /proc, a variable for tests.
var procFS = "/proc"

// findProcs finds, for each service that listens on this machine, the
// process that holds its listening socket, as ss -p does: the socket's
// inode from /proc/net/{tcp,tcp6,unix}, then the process whose open files
// include it. While a successor takes over, both hold the socket; the
// newer one is the service. PID 1 (systemd holding a .socket unit's
// listener) is not a service. A service whose socket this user cannot see
// the owner of, such as one of another user when not root, is looked up as
// the systemd unit flotilla@NAME.service when systemd runs; else it is
// missing from the result.
func findProcs(ctx context.Context, services []discovery.Service) map[string]proc {
	want := listenInodes(services)
	out := map[string]proc{}
	for pid, inos := range socketOwners(want) {
		if pid == 1 {
			continue
		}
		p, ok := readProc(pid)
		if !ok {
			continue
		}
		for _, ino := range inos {
			name := want[ino]
			if cur, ok := out[name]; !ok || p.Started.After(cur.Started) || (p.Started.Equal(cur.Started) && p.PID > cur.PID) {
				out[name] = p
			}
		}
	}
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		for _, s := range services {
			if _, ok := out[s.Name]; ok || s.Endpoint.Network == "srv" {
				continue
			}
			if pid := mainPID(ctx, "flotilla@"+s.Name+".service"); pid > 0 {
				if p, ok := readProc(pid); ok {
					out[s.Name] = p
				}
			}
		}
	}
	return out
}

// listenInodes maps the inodes of the listening sockets of services on this
// machine to the service's name.
func listenInodes(services []discovery.Service) map[uint64]string {
	want := map[uint64]string{}
	tcp := listeningTCP()
	unixes := listeningUnix()
	for _, s := range services {
		switch s.Endpoint.Network {
		case "tcp":
			for _, ino := range tcp.match(s.Endpoint.Address) {
				want[ino] = s.Name
			}
		case "unix":
			if ino, ok := unixes[s.Endpoint.Address]; ok {
				want[ino] = s.Name
			}
		}
	}
	return want
}

// tcpListeners are the listening TCP sockets of this machine.
type tcpListeners []struct {
	ip    net.IP
	port  int
	inode uint64
}

// match returns the inodes of the sockets that take connections for addr:
// on its address, or on every address, at its port.
func (ls tcpListeners) match(addr string) []uint64 {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	port, _ := strconv.Atoi(portStr)
	ip := net.ParseIP(host)
	var out []uint64
	for _, l := range ls {
		if l.port != port {
			continue
		}
		if ip == nil || l.ip.IsUnspecified() || l.ip.Equal(ip) {
			out = append(out, l.inode)
		}
	}
	return out
}

// listeningTCP reads /proc/net/tcp and tcp6 for sockets in state LISTEN.
func listeningTCP() tcpListeners {
	var out tcpListeners
	for _, name := range []string{"net/tcp", "net/tcp6"} {
		data, err := os.ReadFile(filepath.Join(procFS, name))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Scan() // header
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 10 || f[3] != "0A" { // 0A: TCP_LISTEN
				continue
			}
			host, port, ok := strings.Cut(f[1], ":")
			if !ok {
				continue
			}
			ip := procIP(host)
			p, err1 := strconv.ParseUint(port, 16, 16)
			ino, err2 := strconv.ParseUint(f[9], 10, 64)
			if ip == nil || err1 != nil || err2 != nil {
				continue
			}
			out = append(out, struct {
				ip    net.IP
				port  int
				inode uint64
			}{ip, int(p), ino})
		}
	}
	return out
}

// procIP decodes an address of /proc/net/tcp: 32-bit words in host (little
// endian) order.
func procIP(s string) net.IP {
	b, err := hex.DecodeString(s)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return nil
	}
	for i := 0; i < len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	return net.IP(b)
}

// listeningUnix maps the paths of listening unix sockets to their inodes,
// from /proc/net/unix.
func listeningUnix() map[string]uint64 {
	out := map[string]uint64{}
	data, err := os.ReadFile(filepath.Join(procFS, "net/unix"))
	if err != nil {
		return out
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Scan() // header
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// Num RefCount Protocol Flags Type St Inode Path; flag 0x10000
		// is __SO_ACCEPTCON, a listening socket.
		if len(f) < 8 {
			continue
		}
		flags, err1 := strconv.ParseUint(f[3], 16, 32)
		ino, err2 := strconv.ParseUint(f[6], 10, 64)
		if err1 != nil || err2 != nil || flags&0x10000 == 0 {
			continue
		}
		out[f[7]] = ino
	}
	return out
}

// socketOwners returns, for each process that has one of the sockets in
// want open, the inodes it has. Processes this user may not look into are
// skipped.
func socketOwners(want map[uint64]string) map[int][]uint64 {
	out := map[int][]uint64{}
	if len(want) == 0 {
		return out
	}
	entries, err := os.ReadDir(procFS)
	if err != nil {
		return out
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join(procFS, e.Name(), "fd")
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(dir, fd.Name()))
			if err != nil {
				continue
			}
			s, ok := strings.CutPrefix(link, "socket:[")
			if !ok {
				continue
			}
			ino, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64)
			if err != nil {
				continue
			}
			if _, ok := want[ino]; ok {
				out[pid] = append(out[pid], ino)
			}
		}
	}
	return out
}

// readProc reads a process's start time, resident memory and systemd unit.
func readProc(pid int) (proc, bool) {
	dir := filepath.Join(procFS, strconv.Itoa(pid))
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return proc{}, false
	}
	// The command name, in parentheses, may hold spaces: fields start
	// after the last ')'. State is field 3, starttime field 22.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return proc{}, false
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 20 || f[0] == "Z" {
		return proc{}, false
	}
	ticks, err := strconv.ParseInt(f[19], 10, 64)
	if err != nil {
		return proc{}, false
	}
	p := proc{PID: pid, Started: bootTime().Add(time.Duration(ticks) * time.Second / clockTicks)}
	if statm, err := os.ReadFile(filepath.Join(dir, "statm")); err == nil {
		if f := strings.Fields(string(statm)); len(f) > 1 {
			pages, _ := strconv.ParseInt(f[1], 10, 64)
			p.RSS = pages * int64(os.Getpagesize())
		}
	}
	if cg, err := os.ReadFile(filepath.Join(dir, "cgroup")); err == nil {
		for _, line := range strings.Split(strings.TrimSpace(string(cg)), "\n") {
			if base := filepath.Base(line); strings.HasSuffix(base, ".service") {
				p.Unit = base
			}
		}
	}
	return p, true
}

// bootTime is when the machine booted, from /proc/stat's btime.
var bootTime = sync.OnceValue(func() time.Time {
	data, err := os.ReadFile(filepath.Join(procFS, "stat"))
	if err != nil {
		return time.Time{}
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			s, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return time.Unix(s, 0)
		}
	}
	return time.Time{}
})

// mainPID asks systemd for a unit's main process; 0 when it has none.
func mainPID(ctx context.Context, unit string) int {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "systemctl", "show", "--property=MainPID", "--value", unit).Output()
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return pid
}
