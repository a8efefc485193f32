package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/flotilla-go/flotilla/discovery"
	"github.com/flotilla-go/flotilla/health"
)

// restartPoll is how often restart looks for a successor.
const restartPoll = 50 * time.Millisecond

// restarted is one line of restart's output.
type restarted struct {
	Name    string  `json:"name"`
	Method  string  `json:"method"` // sighup or systemctl reload
	OldPID  int     `json:"old_pid"`
	NewPID  int     `json:"new_pid,omitempty"`
	Seconds float64 `json:"seconds"` // to healthy, or to giving up
	OK      bool    `json:"ok"`
	Reason  string  `json:"reason,omitempty"`
}

func (a *app) restartCmd() *cobra.Command {
	var (
		all, asJSON bool
		batch       int
		timeout     time.Duration
	)
	c := &cobra.Command{
		Use:   "restart [SERVICE...|--all]",
		Short: "Zero-downtime rolling restart, a batch at a time (like pm2 reload)",
		Long: `restart restarts services without dropping a request, --batch at a time
(default 1), in the port map's order.

Each service is restarted the way it runs: systemctl reload flotilla@NAME when
its process is that systemd unit, else SIGHUP to its pid. Either way the
service starts its successor on the same socket and hands over to it. restart
then waits until a new process holds the socket, the old one has let go of
it, and /health passes (pass or warn), and prints the time that took.

A service that does not come back within --timeout stops the rollout: the
services after it are left untouched, its reason is printed, and restart
exits 1. The old process keeps serving when its successor cannot start.

Only services whose process runs on this machine can be restarted; restart
checks all of them before it touches any.`,
		Example: `  flotilla restart agent-geo
  flotilla restart --all --batch 5
  flotilla restart --all --timeout 1m --json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			switch {
			case all && len(args) > 0:
				return usagef("give service names or --all, not both")
			case !all && len(args) == 0:
				return usagef("give the services to restart, or --all")
			case batch < 1:
				return usagef("--batch %d: give 1 or more", batch)
			case timeout <= 0:
				return usagef("--timeout %v: give a positive duration", timeout)
			}
			reg, services, err := a.services(args)
			if err != nil {
				return err
			}
			procs := findProcs(ctx, services)
			var missing []string
			for _, s := range services {
				if _, ok := procs[s.Name]; !ok {
					missing = append(missing, s.Name)
				}
			}
			if len(missing) > 0 {
				return fmt.Errorf("no process on this machine holds the socket of %s: start it first (nothing was restarted)", strings.Join(missing, ", "))
			}
			client := &http.Client{Transport: reg.Transport(nil, discovery.WithStrictNames())}
			for i := 0; i < len(services); i += batch {
				group := services[i:min(i+batch, len(services))]
				results := make([]restarted, len(group))
				var wg sync.WaitGroup
				for j, s := range group {
					wg.Add(1)
					go func() {
						defer wg.Done()
						results[j] = restartOne(ctx, s, procs[s.Name], client, timeout)
					}()
				}
				wg.Wait()
				failed := false
				for _, r := range results {
					failed = failed || !r.OK
					a.printRestarted(r, asJSON)
				}
				if failed {
					if left := len(services) - i - len(group); left > 0 {
						fmt.Fprintf(a.stderr, "rollout stopped: %d services left untouched\n", left)
					}
					return errFinding
				}
			}
			return nil
		},
	}
	f := c.Flags()
	f.BoolVar(&all, "all", false, "restart every service of the port map")
	f.IntVar(&batch, "batch", 1, "how many services to restart at once")
	f.DurationVar(&timeout, "timeout", 30*time.Second, "how long each service may take to be healthy again")
	f.BoolVar(&asJSON, "json", false, "print one JSON object per service: name, method, old_pid, new_pid, seconds, ok, reason")
	return c
}

func (a *app) printRestarted(r restarted, asJSON bool) {
	if asJSON {
		writeJSON(a.stdout, r)
		return
	}
	if r.OK {
		fmt.Fprintf(a.stdout, "%s: pid %d -> %d, healthy in %s (%s)\n", r.Name, r.OldPID, r.NewPID, ms(time.Duration(r.Seconds*float64(time.Second))), r.Method)
		return
	}
	fmt.Fprintf(a.stdout, "%s: not back after %s (%s): %s\n", r.Name, ms(time.Duration(r.Seconds*float64(time.Second))), r.Method, r.Reason)
}

// restartOne restarts one service and waits for its successor.
func restartOne(ctx context.Context, s discovery.Service, old proc, client *http.Client, timeout time.Duration) restarted {
	res := restarted{Name: s.Name, OldPID: old.PID, Method: "sighup"}
	began := time.Now()
	done := func(ok bool, reason string) restarted {
		res.OK, res.Reason, res.Seconds = ok, reason, time.Since(began).Seconds()
		return res
	}
	unit := "flotilla@" + s.Name + ".service"
	if old.Unit == unit {
		res.Method = "systemctl reload"
		if out, err := exec.CommandContext(ctx, "systemctl", "reload", unit).CombinedOutput(); err != nil {
			return done(false, fmt.Sprintf("systemctl reload %s: %v: %s", unit, err, strings.TrimSpace(string(out))))
		}
	} else if err := syscall.Kill(old.PID, syscall.SIGHUP); err != nil {
		return done(false, fmt.Sprintf("signal pid %d: %v", old.PID, err))
	}
	mon := health.NewMonitor([]health.Target{{Name: s.Name, URL: "http://" + s.Name + s.Health, Client: client}},
		health.WithProbeTimeout(min(timeout, 2*time.Second)), health.WithDownAfter(1))
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(restartPoll)
	defer t.Stop()
	reason := "no successor took the socket"
	for {
		p, ok := findProcs(ctx, []discovery.Service{s})[s.Name]
		switch {
		case !ok:
			reason = "no process holds the socket"
		case p.PID == old.PID:
			reason = fmt.Sprintf("no successor took the socket; pid %d still serves", old.PID)
		case stillHolds(s, old.PID):
			reason = fmt.Sprintf("successor %d started, pid %d has not handed over", p.PID, old.PID)
		default:
			st := mon.Poll(ctx).Targets[0]
			if st.Status == health.Pass || st.Status == health.Warn {
				res.NewPID = p.PID
				return done(true, "")
			}
			reason = fmt.Sprintf("successor %d: health %s: %s", p.PID, st.Status, st.Reason)
		}
		select {
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), context.Canceled) {
				return done(false, "canceled; "+reason)
			}
			return done(false, reason)
		case <-t.C:
		}
	}
}

// stillHolds reports whether pid still has s's listening socket open.
func stillHolds(s discovery.Service, pid int) bool {
	_, holds := socketOwners(listenInodes([]discovery.Service{s}))[pid]
	return holds
}
