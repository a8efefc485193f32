// Package platform makes an echo app a member of the fleet with one call:
//
//	app := echo.New()
//	app.GET("/geo/:ip", lookup)
//	log.Fatal(platform.Run(app, "agent-geo"))
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
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

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
func Run(app *echo.Echo, service string, opts ...Option) error {
	if app == nil {
		return errors.New("platform: Run needs an *echo.Echo")
	}
	c, err := load(service, opts)
	if err != nil {
		return err
	}
	if c.reg != nil {
		running.Store(c.reg)
	}
	log := newLogger(c)
	app.HideBanner, app.HidePort = true, true
	app.Logger.SetOutput(lineWriter{log: log.With("source", "echo")})

	ctx := context.Background()
	inst, err := prepare(ctx, app, c, log)
	if err != nil {
		return err
	}
	tel, rl, h := inst.tel, inst.rl, inst.h
	defer tel.Shutdown(context.WithoutCancel(ctx))
	defer rl.Close()

	adoptInherited()
	ln, err := listen(ctx, c)
	if err != nil {
		return err
	}
	var draining atomic.Bool
	var open atomic.Int64 // open connections
	accepting := &onceCloseListener{Listener: ln}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if draining.Load() {
				w.Header().Set("Connection", "close")
			}
			app.ServeHTTP(w, r)
		}),
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				open.Add(1)
			case http.StateClosed, http.StateHijacked:
				open.Add(-1)
			}
		},
		ReadHeaderTimeout: DefaultReadHeaderTimeout,
		ReadTimeout:       DefaultReadTimeout,
		WriteTimeout:      DefaultWriteTimeout,
		IdleTimeout:       DefaultIdleTimeout,
		MaxHeaderBytes:    DefaultMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("started", "endpoint", endpointOf(ln), "log", c.db, "version", c.version, "pid", os.Getpid())

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	hups := make(chan os.Signal, 1)
	signal.Notify(hups, syscall.SIGHUP)
	defer signal.Stop(sigs)
	defer signal.Stop(hups)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(accepting) }()
	signalReady()

	restarted := false
wait:
	for {
		select {
		case err := <-served:
			return fmt.Errorf("platform: %s: serve: %w", service, err)
		case sig := <-sigs:
			log.Info("shutting down", "signal", sig.String(), "timeout", c.shutdownTimeout)
			break wait
		case <-hups:
			pid, err := restart(ln, service, log)
			if err != nil {
				log.Error("restart failed; still serving", "err", err)
				continue
			}
			log.Info("restarted: successor serves; draining", "successor", pid, "timeout", c.shutdownTimeout)
			restarted = true
			break wait
		}
	}
	go func() {
		sig := <-sigs
		log.Error("second signal: exiting now", "signal", sig.String())
		os.Exit(2)
	}()
	sctx, cancel := context.WithTimeout(ctx, c.shutdownTimeout)
	defer cancel()
	// Stop accepting, and tell open connections to close after their next
	// response, and upgraded ones (WebSockets) to end now, through their
	// request's context. On a socket from systemd or handed to a successor,
	// new connections wait in the socket's queue for the next process.
	draining.Store(true)
	inst.streams.drain()
	if !restarted {
		h.SetShuttingDown()
		// Idle connections close now, the others after their next
		// response. (After a restart, idle ones are left alone for the
		// grace: a client may be about to send on one.)
		srv.SetKeepAlivesEnabled(false)
	}
	accepting.Close()
	// Serve returns once its accept loop has seen the listener closed; by
	// then every connection it accepted is counted in open.
	<-served
	// Let the open connections make their next request and close, so that
	// Shutdown finds them gone. net/http's Shutdown drops, without an
	// answer, a request it reads after it began, even on a connection
	// accepted just before: the client would see EOF on a fresh connection,
	// which it cannot retry. Those left after the grace (idle ones, after a
	// restart, whose clients send nothing more) Shutdown closes.
	grace := time.Now().Add(min(DefaultRestartGrace, c.shutdownTimeout))
	for open.Load() > 0 && time.Now().Before(grace) {
		time.Sleep(5 * time.Millisecond)
	}
	var errs []error
	if err := srv.Shutdown(sctx); err != nil {
		errs = append(errs, fmt.Errorf("drain: %w", err))
		srv.Close()
	}
	if n := inst.streams.wait(sctx); n > 0 {
		errs = append(errs, fmt.Errorf("drain: %d upgraded connections (WebSockets) still open: end their handlers when the request's context ends", n))
	}
	if err := rl.Close(); err != nil {
		errs = append(errs, fmt.Errorf("request log: %w", err))
	}
	if err := tel.Shutdown(sctx); err != nil {
		log.Warn("telemetry shutdown", "err", err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("platform: %s: shutdown: %w", service, errors.Join(errs...))
	}
	log.Info("stopped")
	return nil
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
// request log, body limit, and the mapping of deadline errors to 503.
func prepare(ctx context.Context, app *echo.Echo, c *config, log *slog.Logger) (*instance, error) {
	tel, err := newTelemetry(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("platform: telemetry: %w", err)
	}
	rl := openRequestLog(c.db, c.logRetry, log)
	h := health.New(c.service, health.WithVersion(c.version), health.WithReleaseID(c.release))
	h.Add(rl.check())

	app.Use(requestID)
	app.Use(recoverer(log))
	st := newStreams()
	app.Use(tracing(newServerSpans(tel.tp, tel.recorded, otel.GetTextMapPropagator()), c.requestTimeout, st))
	if tel.mp != nil {
		m, err := tel.requestMetrics(rl)
		if err != nil {
			rl.Close()
			tel.Shutdown(ctx)
			return nil, fmt.Errorf("platform: metrics: %w", err)
		}
		app.Use(m)
	}
	app.Use(logger.Middleware(rl, c.service))
	app.Use(middleware.BodyLimit(c.bodyLimit))
	app.Use(timeoutErrors)
	routed := map[string]bool{}
	for _, r := range app.Routes() {
		routed[r.Method+" "+r.Path] = true
	}
	for _, p := range []string{"/health", "/health/live"} {
		if !routed["GET "+p] {
			app.GET(p, h.Handler())
			app.HEAD(p, h.Handler())
		}
	}
	if tel.metrics != nil && !routed["GET /metrics"] {
		app.GET("/metrics", echo.WrapHandler(tel.metrics))
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
