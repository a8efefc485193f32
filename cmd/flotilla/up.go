package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
the delays again from 1 s. One that exits 0 (stopped, or handed over to its
successor by flotilla restart) is not. Ctrl-C
stops them all gracefully (SIGTERM: each drains within its shutdown timeout
and writes what it logged) and exits 0.

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
			var wg sync.WaitGroup
			for _, s := range run {
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
	path string
}

// supervise runs s until ctx ends, starting it again with backoff when it
// exits; when ctx ends it stops it with SIGTERM and waits for it.
func (s upService) supervise(ctx context.Context, registry string, out *prefixer) {
	delay := upFirstDelay
	for {
		began := time.Now()
		err := s.runOnce(ctx, registry, out)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			// A graceful stop: a SIGTERM from elsewhere, or a hand-over
			// to a successor (flotilla restart), which serves on.
			out.say(s.Name, "exited cleanly (stopped, or handed over to a successor); not started again")
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

// runOnce runs s once, its output through out, and stops it gracefully when
// ctx ends.
func (s upService) runOnce(ctx context.Context, registry string, out *prefixer) error {
	cmd := exec.Command(s.path)
	cmd.Env = append(os.Environ(), "FLOTILLA_REGISTRY="+registry)
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		cmd.Env = append(cmd.Env, k+"="+s.Env[k])
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Ctrl-C is the runner's to pass on
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pw.Close()
		return err
	}
	lines := make(chan struct{})
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			out.say(s.Name, sc.Text())
		}
		io.Copy(io.Discard, pr)
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); pw.Close() }()
	var err error
	select {
	case err = <-exited:
	case <-ctx.Done():
		cmd.Process.Signal(syscall.SIGTERM)
		err = <-exited
	}
	<-lines
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return fmt.Errorf("status %d", exit.ExitCode())
	}
	return err
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
