// Command flotilla operates a fleet of Flotilla services from one terminal:
// what pm2 ls, pm2 logs, pm2 monit and pm2 restart all are to PM2, for any
// fleet described by a port map and its shared request log.
//
//	flotilla check                    # every problem of the port map, with file:line
//	flotilla ps                       # one row per service: health, pid, memory, traffic
//	flotilla top                      # the same, refreshing, with sparklines
//	flotilla logs -f agent-geo        # the request log as lines, following
//	flotilla trace 4bf92f35           # one request across the fleet, as a waterfall
//	flotilla restart --all --batch 3  # zero-downtime rolling restart
//	flotilla nginx -o /etc/nginx/conf.d/flotilla.conf --check
//	flotilla systemd                  # the units, a drop-in per service
//	flotilla up --bin ./bin           # the fleet in the foreground, for development
//	flotilla slo                      # error budgets and burn rates of the map's objectives
//	flotilla rollups rebuild          # rebuild the log's rollups from its raw rows
//
// It finds the port map as the services do: --registry, else
// FLOTILLA_REGISTRY, else ./flotilla.toml; and the log: --db, else
// FLOTILLA_DB, else the map's [defaults] db, else flotilla.db beside the map.
// It opens the log read-only and never writes it, but for rollups rebuild.
//
// Every table has --json. Exit codes: 0 ok, 1 a finding (a failing check, a
// service that did not come back, an unknown trace), 2 bad usage.
//
// flotilla reads and signals; it supervises nothing. In production the
// supervisor is systemd (flotilla systemd writes its units; see
// examples/deploy).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK      = 0
	exitFinding = 1
	exitUsage   = 2
)

// usageError is bad usage: a flag, an argument or a value the command
// cannot take. It exits 2.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// ranError is an error from a command that ran, as opposed to one cobra
// found in its arguments. It exits 1 unless it wraps a usageError.
type ranError struct{ error }

func (e ranError) Unwrap() error { return e.error }

// errFinding is an error whose message was already printed.
var errFinding = errors.New("finding")

// run runs the command line args and returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := app.root()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ran ranError
	var usage usageError
	switch {
	case errors.As(err, &usage):
		fmt.Fprintln(stderr, "flotilla:", err)
		fmt.Fprintln(stderr, "Run 'flotilla --help' for usage.")
		return exitUsage
	case errors.As(err, &ran):
		if !errors.Is(err, errFinding) {
			fmt.Fprintln(stderr, "flotilla:", err)
		}
		return exitFinding
	default: // found by cobra: an unknown command, flag or argument count
		fmt.Fprintln(stderr, "flotilla:", err)
		fmt.Fprintln(stderr, "Run 'flotilla --help' for usage.")
		return exitUsage
	}
}

// app holds the global flags and the streams.
type app struct {
	registry, db string
	stdin        io.Reader
	stdout       io.Writer
	stderr       io.Writer
}

func (a *app) root() *cobra.Command {
	root := &cobra.Command{
		Use:   "flotilla",
		Short: "Operate a fleet of Flotilla services: check, ps, top, logs, trace, restart",
		Long: `flotilla operates a fleet of Flotilla services from one terminal.

It finds the port map as the services do (--registry, else FLOTILLA_REGISTRY,
else ./flotilla.toml) and the shared request log (--db, else FLOTILLA_DB, else
the map's [defaults] db, else flotilla.db beside the map). It opens the log
read-only. It reads and signals; the supervisor is systemd (or PM2, or a
shell), never flotilla.

Exit codes: 0 ok, 1 a finding (a failing check, a failed rollout, an unknown
trace), 2 bad usage.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&a.registry, "registry", "", "the port map (default $FLOTILLA_REGISTRY, else ./flotilla.toml)")
	root.PersistentFlags().StringVar(&a.db, "db", "", "the shared request log (default $FLOTILLA_DB, else the map's [defaults] db)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	for _, c := range []*cobra.Command{a.checkCmd(), a.psCmd(), a.topCmd(), a.logsCmd(), a.traceCmd(), a.restartCmd(), a.nginxCmd(), a.systemdCmd(), a.upCmd(), a.sloCmd(), a.rollupsCmd()} {
		ranErrors(c)
		root.AddCommand(c)
	}
	return root
}

// ranErrors marks the errors of c and its subcommands as found while
// running, not in the arguments: they exit 1.
func ranErrors(c *cobra.Command) {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if err := run(cmd, args); err != nil {
				return ranError{err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		ranErrors(sub)
	}
}
