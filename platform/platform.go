// Package platform makes an echo app a member of the fleet with one call:
//
//	app := echo.New()
//	app.GET("/geo/:ip", lookup)
//	platform.Main(app, "agent-geo")
//
// Run reads its configuration (options, then FLOTILLA_* and OTEL_*
// variables, then defaults), opens the fleet's shared request log, adds
// /health, the middleware chain and tracing, listens where the port map
// says, serves, and shuts down gracefully on SIGTERM or SIGINT. It is the
// only package of flotilla that reads the environment or handles signals.
package platform

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/mattn/go-isatty"
	"go.opentelemetry.io/otel"

	"github.com/flotilla-go/flotilla/discovery"
	"github.com/flotilla-go/flotilla/health"
	"github.com/flotilla-go/flotilla/logger"
)

// Main runs Run and exits the process: 0 after a graceful shutdown, 1 with
// the error on stderr otherwise.
func Main(app *echo.Echo, service string, opts ...Option) {
	if err := Run(app, service, opts...); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Run starts the named service and blocks until it has shut down. It
// returns nil after a graceful shutdown (SIGTERM or SIGINT: /health turns to
// fail, the listener closes, in-flight requests finish within the shutdown
// timeout, the contexts of upgraded connections such as WebSockets end with
// ErrDraining and their handlers are waited for within it too, the request
// log is flushed, tracing is shut down; a second signal exits at once with
// status 2), or the error that stopped it, wrapped with what failed.
//
// An upgrade request is bounded by the request timeout until its handler
// takes the connection over; from then on its context has no deadline.
//
// With the concurrency limit on (the default), Run gives Go one thread more
// than the runtime's default GOMAXPROCS (the CPUs, or the cgroup's CPU
// limit; set so, it no longer follows later changes of that limit), unless
// the GOMAXPROCS variable is set: when handlers keep every CPU busy, the
// limit holds them to about one per CPU, and that thread is left to read
// requests and shed the rest. Without it, a CPU-bound service under
// overload answers what it serves hundreds of milliseconds late
// (docs/performance.md).
func Run(app *echo.Echo, service string, opts ...Option) error {
	return RunContext(context.Background(), app, service, opts...)
}

// RunContext is Run that also shuts down gracefully, as on SIGTERM, when
// ctx ends: for tests, and for programs that run a service beside other
// work.
func RunContext(ctx context.Context, app *echo.Echo, service string, opts ...Option) error {
	if app == nil {
		return errors.New("platform: Run needs an *echo.Echo")
	}
	c, err := load(service, opts)
	if err != nil {
		return err
	}
	if c.concurrency >= 0 {
		roomToShed()
	}
	if c.reg != nil {
		running.Store(c.reg)
	}
	log := newLogger(c)
	app.HideBanner, app.HidePort = true, true
	app.Logger.SetOutput(lineWriter{log: log.With("source", "echo")})

	stop := ctx.Done()
	ctx = context.WithoutCancel(ctx) // setting up and shutting down run to their own bounds
	inst, err := prepare(ctx, app, c, log)
	if err != nil {
		return err
	}
	defer inst.tel.Shutdown(ctx)              // on an error; after a shutdown, a no-op
	defer inst.rl.Close(context.Background()) // likewise

	adoptInherited()
	ln, err := listen(ctx, c)
	if err != nil {
		return err
	}
	srv := newServer(app, log)
	log.Info("started", "endpoint", endpointOf(ln), "log", c.db, "version", c.version, "pid", os.Getpid())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	srv.serve(ln)
	signalReady()

	handedOver, err := waitForEnd(stop, srv, ln, c, sigs, log)
	if err != nil {
		return err
	}
	go func() {
		sig := <-sigs
		log.Error("second signal: exiting now", "signal", sig.String())
		os.Exit(2)
	}()
	if err := shutdown(inst, srv, c, handedOver, log); err != nil {
		return fmt.Errorf("platform: %s: shutdown: %w", service, err)
	}
	log.Info("stopped")
	return nil
}

// roomToShed raises GOMAXPROCS by one, once per process, unless the
// GOMAXPROCS variable sets it (see Run).
var roomToShed = sync.OnceFunc(func() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + 1)
		shedRoom.Store(1)
	}
})

// shedRoom is the number of Ps roomToShed added: 1 or 0.
var shedRoom atomic.Int32

// waitForEnd serves until a signal ends the service: SIGTERM or SIGINT (or
// stop closing), or SIGHUP once a successor serves on ln (then handedOver
// is true; a successor that fails to start leaves this process serving).
// It returns the error that stopped the server otherwise.
func waitForEnd(stop <-chan struct{}, srv *server, ln net.Listener, c *config, sigs <-chan os.Signal, log *slog.Logger) (handedOver bool, err error) {
	hups := make(chan os.Signal, 1)
	signal.Notify(hups, syscall.SIGHUP)
	defer signal.Stop(hups)
	for {
		select {
		case err := <-srv.served:
			return false, fmt.Errorf("platform: %s: serve: %w", c.service, err)
		case sig := <-sigs:
			log.Info("shutting down", "signal", sig.String(), "timeout", c.shutdownTimeout)
			return false, nil
		case <-stop:
			log.Info("shutting down", "reason", "context ended", "timeout", c.shutdownTimeout)
			return false, nil
		case <-hups:
			pid, err := restart(ln, c.service, log)
			if err != nil {
				log.Error("restart failed; still serving", "err", err)
				continue
			}
			log.Info(fmt.Sprintf("handed over to pid %d", pid), "successor", pid, "timeout", c.shutdownTimeout)
			return true, nil
		}
	}
}

// shutdown drains the service within the shutdown timeout, a hard bound on
// all of it: /health turns to fail (unless a successor serves), upgraded
// connections (WebSockets) are told to end through their request's
// context, the connections close as their requests are answered, the
// handlers of upgraded ones are waited for, the request log is flushed
// and closed, and tracing is shut down. Records the log could not write
// by the deadline are counted as dropped and named in the error.
func shutdown(inst *instance, srv *server, c *config, handedOver bool, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
	defer cancel()
	inst.streams.drain()
	if !handedOver {
		inst.h.SetShuttingDown()
	}
	var errs []error
	if err := srv.drain(ctx, handedOver, min(DefaultRestartGrace, c.shutdownTimeout)); err != nil {
		errs = append(errs, err)
	}
	if n := inst.streams.wait(ctx); n > 0 {
		errs = append(errs, fmt.Errorf("drain: %d upgraded connections (WebSockets) still open: end their handlers when the request's context ends", n))
	}
	if err := inst.rl.Close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("request log: %w", err))
	}
	if err := inst.tel.Shutdown(ctx); err != nil {
		log.Warn("telemetry shutdown", "err", err)
	}
	return errors.Join(errs...)
}

// instance is a service's parts once wired.
type instance struct {
	tel     *telemetry
	rl      *requestLog
	h       *health.Health
	streams *streams
}

// prepare sets up telemetry, the request log and /health, and adds the
// middleware chain to app, outermost first: request ID, recover, tracing
// (which also sets the request's deadline), request metrics (when on), the
// request log (which leaves out the platform's own /health and /metrics),
// the refusal of a request whose caller's budget is spent, the concurrency
// limit, body limit, and the mapping of deadline errors to 503.
func prepare(ctx context.Context, app *echo.Echo, c *config, log *slog.Logger) (*instance, error) {
	otel.SetErrorHandler(&exportErrors{log: log})
	tel, err := newTelemetry(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("platform: telemetry: %w", err)
	}
	rl := openRequestLog(c.db, c.logRetry, log)
	h := health.New(c.service, health.WithVersion(c.version), health.WithReleaseID(c.release))
	if !rl.off {
		h.Add(rl.check())
	}

	if app.IPExtractor == nil {
		app.IPExtractor = c.trusted.extractor()
	}
	app.Use(requestID)
	app.Use(recoverer(log))
	st := newStreams()
	app.Use(tracing(newServerSpans(tel.tp, tel.recorded, otel.GetTextMapPropagator()), c.requestTimeout, st))
	var lim *limiter // used below, inside the request log; made first, for the metrics
	if c.concurrency >= 0 {
		lim = newLimiter(c.concurrency)
	}
	if tel.mp != nil {
		m, err := tel.requestMetrics(rl, func() uint64 { return shedCount(lim) })
		if err != nil {
			rl.Close(ctx)
			tel.Shutdown(ctx)
			return nil, fmt.Errorf("platform: metrics: %w", err)
		}
		app.Use(m)
	}
	// The platform's own /health and /metrics are polled by monitors,
	// nginx, flotilla ps and Prometheus: their rows would fill the log and
	// every traffic figure without saying anything about the service.
	own := map[string]bool{} // routes the platform serves, filled below
	logOpts := []logger.MiddlewareOption{logger.WithSkipper(func(c echo.Context) bool { return own[c.Path()] })}
	if tel.records != nil {
		logOpts = append(logOpts, logger.WithObserver(tel.records.observe))
	}
	app.Use(logger.Middleware(rl, c.service, logOpts...))
	app.Use(refuseSpent)
	if lim != nil {
		app.Use(lim.middleware(own))
		h.Add(lim.check())
	}
	app.Use(middleware.BodyLimit(c.bodyLimit))
	app.Use(timeoutErrors)
	routed := map[string]bool{}
	for _, r := range app.Routes() {
		routed[r.Method+" "+r.Path] = true
	}
	for p, handler := range map[string]echo.HandlerFunc{"/health": h.Handler(), "/health/live": h.LiveHandler()} {
		if !routed["GET "+p] {
			app.GET(p, handler)
			app.HEAD(p, handler)
			own[p] = true
		}
	}
	if tel.metrics != nil && !routed["GET /metrics"] {
		app.GET("/metrics", echo.WrapHandler(tel.metrics))
		own["/metrics"] = true
	}
	return &instance{tel: tel, rl: rl, h: h, streams: st}, nil
}

// listen picks the listener: a socket from systemd, else FLOTILLA_LISTEN or
// PORT, else the port map.
func listen(ctx context.Context, c *config) (net.Listener, error) {
	if ln, err := discovery.Inherited(c.service); ln != nil || err != nil {
		if err != nil {
			return nil, fmt.Errorf("platform: %s: %w", c.service, err)
		}
		ownSocket(ln)
		return ln, nil
	}
	if c.listen != "" {
		ep, err := discovery.ParseEndpoint(c.listen)
		if err != nil {
			return nil, fmt.Errorf("platform: %s: %w", c.service, err)
		}
		ln, err := discovery.Listen(ctx, ep, discovery.WithName(c.service))
		if err != nil {
			return nil, fmt.Errorf("platform: %w", err)
		}
		return ln, nil
	}
	if c.reg == nil {
		return nil, fmt.Errorf("platform: %s: nowhere to listen: set FLOTILLA_LISTEN (such as :3034 or unix:/run/flotilla/%[1]s.sock) or PORT, or give a port map with FLOTILLA_REGISTRY", c.service)
	}
	ln, err := c.reg.Listen(ctx, c.service)
	if errors.Is(err, discovery.ErrUnknownService) {
		return nil, fmt.Errorf("platform: %w; or give the service its place with FLOTILLA_LISTEN (such as unix:/run/flotilla/%s.sock or :3034) or PORT", err, c.service)
	}
	if err != nil {
		return nil, fmt.Errorf("platform: %w", err)
	}
	return ln, nil
}

func endpointOf(ln net.Listener) string {
	a := ln.Addr()
	return a.Network() + ":" + a.String()
}

// newLogger returns the service's own log: JSON on stderr, or text when
// stderr is a terminal, with the service's name on every line.
func newLogger(c *config) *slog.Logger {
	var h slog.Handler
	if f, ok := c.stderr.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		h = slog.NewTextHandler(c.stderr, nil)
	} else {
		h = slog.NewJSONHandler(c.stderr, nil)
	}
	return slog.New(h).With("service", c.service)
}

// lineWriter turns what echo's logger writes into log lines.
type lineWriter struct{ log *slog.Logger }

func (w lineWriter) Write(p []byte) (int, error) {
	w.log.Info(strings.TrimSpace(string(p)))
	return len(p), nil
}

var _ io.Writer = lineWriter{}
