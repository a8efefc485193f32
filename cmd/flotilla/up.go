package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/flotilla-go/flotilla/discovery"
)

// The restart backoff of flotilla up.
const (
	upFirstDelay = time.Second
	upMaxDelay   = 30 * time.Second
	upHealthyRun = 60 * time.Second // a run this long resets the delay
)

func (a *app) upCmd() *cobra.Command {
	var bin string
	c := &cobra.Command{
		Use:   "up [SERVICE...]",
		Short: "Run the fleet in the foreground, for development and machines without systemd",
		Long: `up runs the services of the port map (or those named) in the foreground, all
at once: each from its exec (default /usr/local/bin/NAME), or from --bin DIR,
with its env and FLOTILLA_REGISTRY set to the map. Each line a service writes
is printed with its name in front.

A service that fails (exits with a status other than 0) is started again
after 1 s, then 2 s, doubling up to 30 s; a run of a minute or more starts
the delays again from 1 s. One that exits 0 is not. A service restarted with
SIGHUP (flotilla restart) names its successor on the NOTIFY_SOCKET up gives
it (MAINPID=, as under systemd) before it drains and exits; up then
supervises the successor in its place; children a service leaves behind
are reaped when they exit. Ctrl-C stops them all gracefully
(SIGTERM to each service's process group: each drains within its shutdown
timeout and writes what it logged) and exits 0.

In production the supervisor is systemd (flotilla systemd writes the units).`,
		Example: `  flotilla up --bin ./bin
  flotilla up agent-geo agent-gateway`,
		RunE: func(cmd *cobra.Command, args []string) error {
			reg, services, err := a.services(args)
			if err != nil {
				return err
			}
			registry, err := filepath.Abs(reg.Path())
			if err != nil {
				return err
			}
			var run []upService
			for _, s := range services {
				if s.Endpoint.Network == "srv" {
					continue // elsewhere
				}
				path := s.Exec
				if bin != "" {
					path = filepath.Join(bin, s.Name)
				} else if path == "" {
					path = "/usr/local/bin/" + s.Name
				}
				if fi, err := os.Stat(path); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
					return fmt.Errorf("service %s: no executable at %s: build it there, give its exec in the port map, or use --bin DIR", s.Name, path)
				}
				run = append(run, upService{Service: s, path: path})
			}
			fmt.Fprintf(a.stderr, "flotilla up: %d services of %s; Ctrl-C stops them. In production the supervisor is systemd (flotilla systemd).\n", len(run), registry)
			out := &prefixer{w: a.stderr, colours: colour(a.stderr)}
			done, err := upNotify(run, func(msg string) { fmt.Fprintln(a.stderr, "flotilla up:", msg) })
			if err != nil {
				return err
			}
			defer done()
			orphans := &orphans{claimed: map[int]bool{}}
			reapCtx, stopReaping := context.WithCancel(context.Background())
			defer stopReaping()
			go orphans.reap(reapCtx)
			var wg sync.WaitGroup
			for _, s := range run {
				s.orphans = orphans
				wg.Add(1)
				go func() {
					defer wg.Done()
					s.supervise(cmd.Context(), registry, out)
				}()
			}
			wg.Wait()
			fmt.Fprintln(a.stderr, "flotilla up: all stopped")
			return nil
		},
	}
	c.Flags().StringVar(&bin, "bin", "", "run each service from DIR/NAME instead of its exec")
	return c
}

// upService is one service that flotilla up runs.
type upService struct {
	discovery.Service
	path    string
	notify  *net.UnixConn // its NOTIFY_SOCKET, where a hand-over names the successor
	orphans *orphans      // the runner's children that are no service's
}

// supervise runs s until ctx ends, starting it again with backoff when it
// fails; when ctx ends it stops it with SIGTERM and waits for it.
func (s upService) supervise(ctx context.Context, registry string, out *prefixer) {
	delay := upFirstDelay
	for {
		began := time.Now()
		err := s.runOnce(ctx, registry, out)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			out.say(s.Name, "exited cleanly (stopped with SIGTERM from elsewhere); not started again")
			return
		}
		if time.Since(began) >= upHealthyRun {
			delay = upFirstDelay
		}
		out.say(s.Name, fmt.Sprintf("exited (%v); starting it again in %v", err, delay))
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, upMaxDelay)
	}
}

// runOnce runs s, its output through out, until it exits with no successor,
// and stops it gracefully when ctx ends. A process that hands over to a
// successor (SIGHUP, flotilla restart) names it in a MAINPID= message on its
// NOTIFY_SOCKET, as it would to systemd, and exits 0; the successor, which
// the runner then has as its child (it is a child subreaper), is followed in
// its place. It returns nil for an exit 0 with no successor.
func (s upService) runOnce(ctx context.Context, registry string, out *prefixer) error {
	cmd := exec.Command(s.path)
	cmd.Env = append(os.Environ(), "FLOTILLA_REGISTRY="+registry)
	if s.notify != nil {
		s.successor(0) // names left from an earlier run
		cmd.Env = append(cmd.Env, "NOTIFY_SOCKET="+s.notify.LocalAddr().String())
	}
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		cmd.Env = append(cmd.Env, k+"="+s.Env[k])
	}
	// Its own process group, which its successors share: Ctrl-C is the
	// runner's to pass on, to all of them at once.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw, err := os.Pipe() // a file, not a writer: successors write on after the first exits
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	err = cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		return err
	}
	lines := make(chan struct{})
	go func() {
		defer close(lines)
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			out.say(s.Name, sc.Text())
		}
		io.Copy(io.Discard, pr)
	}()
	group, pid := cmd.Process.Pid, cmd.Process.Pid
	s.orphans.claim(pid)
	defer func() { s.orphans.release(pid) }()
	wait := func() error {
		err := cmd.Wait()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exitError(exit.Sys().(syscall.WaitStatus))
		}
		return err
	}
	stopped := false
	for {
		exited := make(chan error, 1)
		go func() { exited <- wait() }()
		select {
		case err = <-exited:
		case <-ctx.Done():
			if !stopped { // once: the group holds every successor
				syscall.Kill(-group, syscall.SIGTERM)
				stopped = true
			}
			err = <-exited
		}
		if err != nil {
			if !stopped {
				syscall.Kill(-group, syscall.SIGTERM) // a successor it was starting
			}
			<-lines
			return err
		}
		next := s.successor(pid)
		if next == 0 {
			<-lines
			return nil
		}
		if !stopped {
			out.say(s.Name, fmt.Sprintf("handed over from pid %d to pid %d; following it", pid, next))
		}
		s.orphans.release(pid)
		pid = next
		s.orphans.claim(pid)
		wait = func() error { return waitChild(pid) }
	}
}

// exitError describes a status other than exit 0; nil for exit 0.
func exitError(ws syscall.WaitStatus) error {
	switch {
	case ws.Signaled():
		return fmt.Errorf("killed by signal %d: %v", ws.Signal(), ws.Signal())
	case ws.ExitStatus() != 0:
		return fmt.Errorf("status %d", ws.ExitStatus())
	}
	return nil
}

// successor returns the last pid other than pid that a MAINPID= message on
// s's notify socket named, 0 if none, reading only what is already there.
func (s upService) successor(pid int) int {
	if s.notify == nil {
		return 0
	}
	raw, err := s.notify.SyscallConn()
	if err != nil {
		return 0
	}
	next := 0
	buf := make([]byte, 4096)
	for {
		var n int
		var rerr error
		if err := raw.Read(func(fd uintptr) bool {
			n, _, rerr = syscall.Recvfrom(int(fd), buf, syscall.MSG_DONTWAIT)
			return true // never wait
		}); err != nil || rerr != nil {
			return next
		}
		for _, line := range strings.Split(string(buf[:n]), "\n") {
			if v, ok := strings.CutPrefix(line, "MAINPID="); ok {
				if p, err := strconv.Atoi(v); err == nil && p > 0 && p != pid {
					next = p
				}
			}
		}
	}
}

// waitChild waits for the child pid (a successor adopted as a subreaper)
// to exit, as exitError describes it.
func waitChild(pid int) error {
	for {
		var ws syscall.WaitStatus
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("follow successor pid %d: %w", pid, err)
		}
		return exitError(ws)
	}
}

// reapEvery is how often the runner looks for orphans to reap.
const reapEvery = 2 * time.Second

// orphans reaps the processes that end as the runner's children without
// being a service it runs or follows: a service's own children that
// outlived it, which reparent to the runner because it is a child
// subreaper, and would stay zombies until it exits. A zombie is reaped
// only once two looks, reapEvery apart, found it unclaimed, so a successor
// that died before the runner took it up is still the runner's to wait
// for.
type orphans struct {
	mu      sync.Mutex
	claimed map[int]bool // the pids a service's supervision waits for
}

func (o *orphans) claim(pid int) {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.claimed[pid] = true
}

func (o *orphans) release(pid int) {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.claimed, pid)
}

// reap looks for unclaimed zombie children every reapEvery until ctx ends.
func (o *orphans) reap(ctx context.Context) {
	tick := time.NewTicker(reapEvery)
	defer tick.Stop()
	seen := map[int]bool{} // unclaimed zombies at the last look
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := map[int]bool{}
		for _, pid := range zombieChildren(os.Getpid()) {
			o.mu.Lock()
			claimed := o.claimed[pid]
			o.mu.Unlock()
			switch {
			case claimed:
			case seen[pid]:
				var ws syscall.WaitStatus
				syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
			default:
				now[pid] = true
			}
		}
		seen = now
	}
}

// zombieChildren lists the children of process pid that have exited and
// wait to be reaped, from /proc/PID/task/*/children.
func zombieChildren(pid int) []int {
	files, _ := filepath.Glob(filepath.Join(procFS, strconv.Itoa(pid), "task", "*", "children"))
	var out []int
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, field := range strings.Fields(string(data)) {
			child, err := strconv.Atoi(field)
			if err != nil {
				continue
			}
			stat, err := os.ReadFile(filepath.Join(procFS, field, "stat"))
			if err != nil {
				continue
			}
			// The state follows the command name, in parentheses.
			if i := bytes.LastIndexByte(stat, ')'); i >= 0 && bytes.HasPrefix(bytes.TrimSpace(stat[i+1:]), []byte("Z")) {
				out = append(out, child)
			}
		}
	}
	return out
}

// upNotify makes the runner a child subreaper, so that a service's
// successor becomes its child when the first process exits, and opens a
// notify socket per service in a new private folder. It returns a function
// that removes them. Without subreaping (not Linux), hand-overs are not
// followed: it says so and returns no sockets.
func upNotify(services []upService, warn func(string)) (func(), error) {
	const prSetChildSubreaper = 36
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		warn(fmt.Sprintf("cannot follow hand-overs (prctl PR_SET_CHILD_SUBREAPER: %v): a service restarted with SIGHUP is no longer supervised", errno))
		return func() {}, nil
	}
	dir, err := os.MkdirTemp("", "flotilla-up-") // 0700
	if err != nil {
		return nil, fmt.Errorf("notify sockets: %w", err)
	}
	closeAll := func() {
		for i := range services {
			if services[i].notify != nil {
				services[i].notify.Close()
			}
		}
		os.RemoveAll(dir)
	}
	for i := range services {
		c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(dir, fmt.Sprintf("%d.sock", i)), Net: "unixgram"})
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("notify socket of %s: %w", services[i].Name, err)
		}
		services[i].notify = c
	}
	return closeAll, nil
}

// prefixer writes lines with the name of the service they came from.
type prefixer struct {
	mu      sync.Mutex
	w       io.Writer
	colours bool
}

func (p *prefixer) say(name, line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	tag := name + " |"
	if p.colours {
		tag = cyan.Render(name) + " |"
	}
	fmt.Fprintln(p.w, tag, line)
}
