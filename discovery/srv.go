package discovery

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// DefaultResolvConf is where NewSRVResolver finds the DNS server when
// WithDNSServer is not given.
const DefaultResolvConf = "/etc/resolv.conf"

// SRVTarget is one target of an SRV name.
type SRVTarget struct {
	// Host is the target's name and Port its port, from the SRV record.
	Host string
	Port uint16
	// Priority and Weight are the record's: lower priorities are tried
	// first; within one, targets are chosen in proportion to weight.
	Priority, Weight uint16
	// Addrs are the target's addresses.
	Addrs []string
}

// SRVResolver resolves DNS SRV names, as served by Consul DNS, CoreDNS or a
// Kubernetes headless service, into addresses to dial. Answers are cached
// for their TTL. It is safe for concurrent use.
type SRVResolver struct {
	server string
	client *dns.Client
	now    func() time.Time

	mu      sync.Mutex
	cache   map[string]srvEntry
	queries int
}

type srvEntry struct {
	targets []SRVTarget
	expires time.Time
}

// An SRVOption changes a default of NewSRVResolver.
type SRVOption func(*SRVResolver)

// WithDNSServer sets the DNS server to ask, as host:port (default: the
// first nameserver of DefaultResolvConf, port 53). Consul's DNS listens on
// 127.0.0.1:8600.
func WithDNSServer(addr string) SRVOption { return func(r *SRVResolver) { r.server = addr } }

// Clock is a source of time: the Now half of breaker.Clock, so that one
// clock, a test's fake say, serves every package that takes one.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
}

// WithSRVClock sets the clock the resolver's cache expires answers by,
// after their TTLs (default: the system clock).
func WithSRVClock(c Clock) SRVOption { return func(r *SRVResolver) { r.now = c.Now } }

// NewSRVResolver returns a resolver. Queries time out after 2 s each.
func NewSRVResolver(opts ...SRVOption) (*SRVResolver, error) {
	r := &SRVResolver{client: &dns.Client{Timeout: 2 * time.Second}, now: time.Now, cache: map[string]srvEntry{}}
	for _, o := range opts {
		o(r)
	}
	if r.server == "" {
		conf, err := dns.ClientConfigFromFile(DefaultResolvConf)
		if err != nil || len(conf.Servers) == 0 {
			return nil, fmt.Errorf("discovery: no DNS server: %s gives none (%v); use WithDNSServer", DefaultResolvConf, err)
		}
		r.server = net.JoinHostPort(conf.Servers[0], conf.Port)
	}
	return r, nil
}

// Queries returns how many DNS queries the resolver has sent.
func (r *SRVResolver) Queries() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.queries
}

// Lookup returns the targets of an SRV name such as
// _agent-geo._tcp.service.consul, from the cache while the records' TTL
// lasts.
func (r *SRVResolver) Lookup(ctx context.Context, name string) ([]SRVTarget, error) {
	name = dns.Fqdn(name)
	r.mu.Lock()
	if e, ok := r.cache[name]; ok && r.now().Before(e.expires) {
		r.mu.Unlock()
		return e.targets, nil
	}
	r.mu.Unlock()

	in, err := r.query(ctx, name, dns.TypeSRV)
	if err != nil {
		return nil, err
	}
	var targets []SRVTarget
	ttl := uint32(0)
	first := true
	for _, rr := range in.Answer {
		srv, ok := rr.(*dns.SRV)
		if !ok {
			continue
		}
		if first || srv.Hdr.Ttl < ttl {
			ttl, first = srv.Hdr.Ttl, false
		}
		targets = append(targets, SRVTarget{Host: srv.Target, Port: srv.Port, Priority: srv.Priority, Weight: srv.Weight})
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("discovery: srv %s: no SRV records at %s", strings.TrimSuffix(name, "."), r.server)
	}
	for i := range targets {
		t := &targets[i]
		t.Addrs = addrsFrom(in.Extra, t.Host)
		if len(t.Addrs) > 0 {
			continue
		}
		if ip := net.ParseIP(strings.TrimSuffix(t.Host, ".")); ip != nil {
			t.Addrs = []string{ip.String()}
			continue
		}
		a, err := r.query(ctx, t.Host, dns.TypeA)
		if err != nil {
			return nil, err
		}
		t.Addrs = addrsFrom(a.Answer, t.Host)
		for _, rr := range a.Answer {
			ttl = min(ttl, rr.Header().Ttl)
		}
	}
	r.mu.Lock()
	if ttl > 0 {
		r.cache[name] = srvEntry{targets: targets, expires: r.now().Add(time.Duration(ttl) * time.Second)}
	} else {
		delete(r.cache, name)
	}
	r.mu.Unlock()
	return targets, nil
}

func (r *SRVResolver) query(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = true
	r.mu.Lock()
	r.queries++
	r.mu.Unlock()
	in, _, err := r.client.ExchangeContext(ctx, m, r.server)
	if err != nil {
		return nil, fmt.Errorf("discovery: srv %s: ask %s: %w", strings.TrimSuffix(name, "."), r.server, err)
	}
	if in.Rcode != dns.RcodeSuccess {
		return nil, fmt.Errorf("discovery: srv %s: %s answered %s", strings.TrimSuffix(name, "."), r.server, dns.RcodeToString[in.Rcode])
	}
	return in, nil
}

func addrsFrom(rrs []dns.RR, host string) []string {
	var out []string
	for _, rr := range rrs {
		if !strings.EqualFold(rr.Header().Name, host) {
			continue
		}
		switch a := rr.(type) {
		case *dns.A:
			out = append(out, a.A.String())
		case *dns.AAAA:
			out = append(out, a.AAAA.String())
		}
	}
	return out
}

// Resolve returns the addresses (host:port) to try for an SRV name, in the
// order of RFC 2782: by priority, and within a priority in a random order
// weighted by the records' weights, so calls spread across targets.
func (r *SRVResolver) Resolve(ctx context.Context, name string) ([]string, error) {
	targets, err := r.Lookup(ctx, name)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range order(targets) {
		for _, a := range t.Addrs {
			out = append(out, net.JoinHostPort(a, strconv.Itoa(int(t.Port))))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("discovery: srv %s: no address for any target", name)
	}
	return out, nil
}

// order sorts targets by priority and, within a priority, picks them one
// after another at random in proportion to weight (RFC 2782: zero-weight
// targets first, so they get a small chance).
func order(in []SRVTarget) []SRVTarget {
	ts := slices.Clone(in)
	slices.SortStableFunc(ts, func(a, b SRVTarget) int {
		if a.Priority != b.Priority {
			return int(a.Priority) - int(b.Priority)
		}
		return min(int(a.Weight), 1) - min(int(b.Weight), 1) // zero weights first
	})
	out := make([]SRVTarget, 0, len(ts))
	for len(ts) > 0 {
		n := 1
		for n < len(ts) && ts[n].Priority == ts[0].Priority {
			n++
		}
		group := slices.Clone(ts[:n])
		for len(group) > 0 {
			total := 0
			for _, t := range group {
				total += int(t.Weight)
			}
			x := rand.IntN(total + 1)
			i, sum := 0, 0
			for ; i < len(group)-1; i++ {
				sum += int(group[i].Weight)
				if sum >= x {
					break
				}
			}
			out = append(out, group[i])
			group = slices.Delete(group, i, i+1)
		}
		ts = ts[n:]
	}
	return out
}

var errNoResolver = errors.New("an srv endpoint needs an SRVResolver: pass WithSRV to Transport")

// dialSRV dials the targets of an SRV name in order until one answers.
func dialSRV(ctx context.Context, d *net.Dialer, r *SRVResolver, name string) (net.Conn, error) {
	if r == nil {
		return nil, fmt.Errorf("discovery: srv %s: %w", name, errNoResolver)
	}
	addrs, err := r.Resolve(ctx, name)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, a := range addrs {
		c, err := d.DialContext(ctx, "tcp", a)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("discovery: srv %s: every target failed: %w", name, errors.Join(errs...))
}
