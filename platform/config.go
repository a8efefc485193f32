package platform

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/flotilla-go/flotilla/discovery"
)

// Defaults of Run. Each can be changed with an option, and most with an
// environment variable (see the README's configuration table).
const (
	// DefaultRegistry is the port map Run reads when FLOTILLA_REGISTRY is
	// not set, if the file exists in the working directory.
	DefaultRegistry = "flotilla.toml"
	// DefaultDB is the shared request log's file name, beside the registry
	// (or in the working directory without one), when neither
	// FLOTILLA_DB nor the registry's [defaults] db names it.
	DefaultDB = "flotilla.db"
	// DefaultShutdownTimeout bounds the drain of in-flight requests.
	DefaultShutdownTimeout = 10 * time.Second
	// DefaultReadHeaderTimeout bounds reading a request's headers, so a
	// slow client cannot hold a connection open.
	DefaultReadHeaderTimeout = 5 * time.Second
	// DefaultReadTimeout bounds reading a whole request.
	DefaultReadTimeout = 30 * time.Second
	// DefaultWriteTimeout bounds writing a response.
	DefaultWriteTimeout = 60 * time.Second
	// DefaultIdleTimeout closes keep-alive connections idle this long.
	DefaultIdleTimeout = 120 * time.Second
	// DefaultMaxHeaderBytes bounds a request's headers.
	DefaultMaxHeaderBytes = 64 << 10
	// DefaultBodyLimit bounds a request's body ("4M").
	DefaultBodyLimit = "4M"
	// DefaultRequestTimeout is the deadline of a request's context (of an
	// upgrade request's, until its handler takes the connection over).
	DefaultRequestTimeout = 30 * time.Second
	// DefaultLogRetry is how often Run retries opening a request log that
	// was unavailable at start.
	DefaultLogRetry = 5 * time.Second
)

// An Option changes a default of Run. Options win over the environment.
type Option func(*config)

type config struct {
	service         string
	registry        string
	registrySet     bool
	db              string
	listen          string
	version         string
	release         string
	shutdownTimeout time.Duration
	requestTimeout  time.Duration
	bodyLimit       string
	metrics         bool
	metricsSet      bool
	logRetry        time.Duration
	stderr          io.Writer
	reg             *discovery.Registry
	trusted         trustedProxies
	trustedSet      bool
	concurrency     int // a fixed limit; 0 adaptive; -1 off
	concurrencySet  bool
	optErr          error // a bad option's value
}

// WithRegistry sets the port map (env FLOTILLA_REGISTRY, default
// DefaultRegistry if it exists).
func WithRegistry(path string) Option {
	return func(c *config) { c.registry, c.registrySet = path, true }
}

// WithDB sets the shared request log's file (env FLOTILLA_DB).
//
// "off" (also FLOTILLA_DB=off) keeps no file at all, for hosts that only
// export request records (OTEL_LOGS_EXPORTER=otlp); /health then has no
// request-log check.
func WithDB(path string) Option { return func(c *config) { c.db = path } }

// WithListen sets where the service listens, as a discovery endpoint such
// as "unix:/run/flotilla/x.sock" or ":3034" (env FLOTILLA_LISTEN, or PORT
// for a port); it overrides the registry.
func WithListen(endpoint string) Option { return func(c *config) { c.listen = endpoint } }

// WithVersion sets the version and release /health reports (env
// FLOTILLA_VERSION and FLOTILLA_RELEASE).
func WithVersion(version, release string) Option {
	return func(c *config) { c.version, c.release = version, release }
}

// WithShutdownTimeout bounds the drain on SIGTERM (env
// FLOTILLA_SHUTDOWN_TIMEOUT, default DefaultShutdownTimeout).
func WithShutdownTimeout(d time.Duration) Option { return func(c *config) { c.shutdownTimeout = d } }

// WithRequestTimeout sets the deadline of each request's context (default
// DefaultRequestTimeout). An upgrade request (a WebSocket) is bound by it
// only until its handler takes the connection over; see Run.
func WithRequestTimeout(d time.Duration) Option { return func(c *config) { c.requestTimeout = d } }

// WithConcurrencyLimit fixes how many requests the service runs at once
// (env FLOTILLA_CONCURRENCY: auto, off or a number); 0 turns the limit off.
// By default the limit is adaptive: it follows the service's latency,
// between 10 and 1,000 requests in flight, from 100, and while the Go
// runtime queues goroutines (the CPU is short) it is capped at the
// service's best concurrency, about its cores; Run then gives Go one
// thread more than the cores, so that one is left to refuse requests (see
// Run). A request over the limit is answered 503 with Retry-After: 1 at
// once, without its handler.
func WithConcurrencyLimit(n int) Option {
	return func(c *config) {
		c.concurrency, c.concurrencySet = n, true
		if n == 0 {
			c.concurrency = -1
		} else if n < 0 && c.optErr == nil {
			c.optErr = fmt.Errorf("platform: WithConcurrencyLimit(%d): give a number of requests from 1, or 0 for no limit", n)
		}
	}
}

// WithBodyLimit bounds request bodies, such as "4M" (default
// DefaultBodyLimit).
func WithBodyLimit(limit string) Option { return func(c *config) { c.bodyLimit = limit } }

// WithMetrics serves OpenTelemetry metrics at /metrics in the Prometheus
// text format (env FLOTILLA_METRICS=1; default off).
func WithMetrics(on bool) Option { return func(c *config) { c.metrics, c.metricsSet = on, true } }

// WithTrustedProxies sets the proxies, as CIDRs or addresses, whose
// X-Forwarded-For and X-Real-IP headers say who the client is (env
// FLOTILLA_TRUSTED_PROXIES, comma-separated). Loopback and unix-socket
// peers, such as nginx on the same machine, are always trusted; from any
// other peer the headers are ignored, and the request log stores the
// peer's address. It sets the app's IPExtractor unless the app has one.
func WithTrustedProxies(cidrs ...string) Option {
	return func(c *config) {
		c.trusted, c.trustedSet = nil, true
		for _, v := range cidrs {
			p, err := parseTrustedProxies(v)
			if err != nil {
				c.optErr = fmt.Errorf("platform: WithTrustedProxies: %w", err)
				return
			}
			c.trusted = append(c.trusted, p...)
		}
	}
}

// WithStderr sets where the service's own log goes (default os.Stderr).
func WithStderr(w io.Writer) Option { return func(c *config) { c.stderr = w } }

// configError names a bad environment variable and what it accepts.
func configError(name, value, accepts string) error {
	return fmt.Errorf("platform: %s=%q: %s", name, value, accepts)
}

// load applies options, then the environment, then defaults.
func load(service string, opts []Option) (*config, error) {
	c := &config{service: service}
	for _, o := range opts {
		o(c)
	}
	if c.optErr != nil {
		return nil, c.optErr
	}
	if c.stderr == nil {
		c.stderr = os.Stderr
	}
	env := os.Getenv
	if v := env("FLOTILLA_TRUSTED_PROXIES"); v != "" && !c.trustedSet {
		p, err := parseTrustedProxies(v)
		if err != nil {
			return nil, configError("FLOTILLA_TRUSTED_PROXIES", v, "comma-separated CIDRs or addresses such as 10.0.0.0/8,192.0.2.7: "+err.Error())
		}
		c.trusted = p
	}
	if !c.registrySet {
		if v := env("FLOTILLA_REGISTRY"); v != "" {
			c.registry = v
		} else if _, err := os.Stat(DefaultRegistry); err == nil {
			c.registry = DefaultRegistry
		}
	}
	if c.registry != "" {
		reg, err := discovery.Load(c.registry)
		if err != nil {
			return nil, fmt.Errorf("platform: port map: %w", err)
		}
		c.reg = reg
	}
	if c.db == "" {
		c.db = env("FLOTILLA_DB")
	}
	if c.db == "" && c.reg != nil {
		c.db = c.reg.Defaults().DB
	}
	if c.db == "" {
		if c.registry != "" {
			c.db = filepath.Join(filepath.Dir(c.registry), DefaultDB)
		} else {
			c.db = DefaultDB
		}
	}
	if c.listen == "" {
		c.listen = env("FLOTILLA_LISTEN")
	}
	if c.listen != "" {
		if _, err := discovery.ParseEndpoint(c.listen); err != nil {
			return nil, configError("FLOTILLA_LISTEN", c.listen, "an endpoint: unix:/path.sock, tcp:host:port, :port or port")
		}
	} else if p := env("PORT"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, configError("PORT", p, "a port number from 1 to 65535")
		}
		c.listen = strconv.Itoa(n)
	}
	if c.version == "" {
		c.version = env("FLOTILLA_VERSION")
	}
	if c.release == "" {
		c.release = env("FLOTILLA_RELEASE")
	}
	if c.shutdownTimeout == 0 {
		c.shutdownTimeout = DefaultShutdownTimeout
		if v := env("FLOTILLA_SHUTDOWN_TIMEOUT"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return nil, configError("FLOTILLA_SHUTDOWN_TIMEOUT", v, "a positive duration such as 10s or 1m30s")
			}
			c.shutdownTimeout = d
		}
	}
	if !c.metricsSet {
		switch v := env("FLOTILLA_METRICS"); v {
		case "", "0", "false":
		case "1", "true":
			c.metrics = true
		default:
			return nil, configError("FLOTILLA_METRICS", v, "1 or 0")
		}
	}
	if !c.concurrencySet {
		v := env("FLOTILLA_CONCURRENCY")
		n, err := parseConcurrency(v)
		if err != nil {
			return nil, configError("FLOTILLA_CONCURRENCY", v, "auto, off, or a number of requests in flight from 1")
		}
		c.concurrency = n
	}
	if c.requestTimeout == 0 {
		c.requestTimeout = DefaultRequestTimeout
	}
	if c.bodyLimit == "" {
		c.bodyLimit = DefaultBodyLimit
	}
	if c.logRetry == 0 {
		c.logRetry = DefaultLogRetry
	}
	return c, nil
}

// PortMap returns the port map Run uses with the same options: WithRegistry,
// else FLOTILLA_REGISTRY, else flotilla.toml in the working directory. It is
// an error when there is none, or when the configuration is bad.
func PortMap(opts ...Option) (*discovery.Registry, error) {
	c, err := load("", opts)
	if err != nil {
		return nil, err
	}
	if c.reg == nil {
		return nil, errors.New("platform: no port map: set FLOTILLA_REGISTRY or put " + DefaultRegistry + " in the working directory")
	}
	return c.reg, nil
}

// LogPath returns the shared request log's file that Run uses with the
// same options: WithDB, else FLOTILLA_DB, else the port map's [defaults]
// db, else DefaultDB beside the port map or in the working directory.
func LogPath(opts ...Option) (string, error) {
	c, err := load("", opts)
	if err != nil {
		return "", err
	}
	return c.db, nil
}
