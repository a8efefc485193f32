package discovery_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/discovery"
	"github.com/flotilla-go/flotilla/internal/fakeclock"
	"github.com/flotilla-go/flotilla/internal/testport"
	"github.com/flotilla-go/flotilla/internal/testwait"
)

// needTool returns the path of a program an integration test runs. It skips
// the test when the program is missing, unless FLOTILLA_REQUIRE_INTEGRATION
// is set (as .ci/run does), when it fails.
func needTool(t *testing.T, name string) string {
	t.Helper()
	for _, dir := range []string{"", "/usr/sbin/", "/sbin/"} {
		if p, err := exec.LookPath(dir + name); err == nil {
			return p
		}
	}
	if os.Getenv("FLOTILLA_REQUIRE_INTEGRATION") != "" {
		t.Fatalf("%s is not installed and FLOTILLA_REQUIRE_INTEGRATION is set: apt-get install %s", name, map[string]string{"dnsmasq": "dnsmasq-base"}[name]+map[string]string{"nginx": "nginx"}[name])
	}
	t.Skipf("%s is not installed; set FLOTILLA_REQUIRE_INTEGRATION=1 to make this a failure", name)
	return ""
}

func freePort(t testing.TB, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		require.NoError(t, err)
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	return testport.Free(t)
}

// startDNSMasq runs a real DNS server on a free loopback port with the given
// records and returns its address and a counter of the queries it logged.
// It is ready when it answers a name only it has, so that another server
// that took the port first is not mistaken for it; if dnsmasq exits (the
// port was taken), it tries another port. The test's log shows dnsmasq's
// if the test fails.
func startDNSMasq(t *testing.T, records ...string) (string, func(string) int) {
	t.Helper()
	bin := needTool(t, "dnsmasq")
	var mu sync.Mutex
	var log []string
	logged := func() string {
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(log, "\n")
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dnsmasq's log:\n%s", logged())
		}
	})
	queries := func(kind string) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, l := range log {
			if strings.Contains(l, "query["+kind+"]") {
				n++
			}
		}
		return n
	}
	for try := 1; ; try++ {
		port := freePort(t, "udp")
		ready := fmt.Sprintf("ready-%d.test", port)
		args := []string{"--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--no-poll",
			"--bind-interfaces", "--listen-address=127.0.0.1", fmt.Sprintf("--port=%d", port),
			"--pid-file=", "--log-queries", "--log-facility=-", "--host-record=" + ready + ",127.0.0.77"}
		if os.Geteuid() == 0 {
			args = append(args, "--user=root")
		}
		cmd := exec.Command(bin, append(args, records...)...)
		cmd.WaitDelay = 5 * time.Second
		stderr, err := cmd.StderrPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		exited := make(chan struct{})
		go func() {
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				mu.Lock()
				log = append(log, sc.Text())
				mu.Unlock()
			}
			cmd.Wait()
			close(exited)
		}()
		t.Cleanup(func() { cmd.Process.Kill(); <-exited })
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		if answers(addr, ready+".", exited) {
			return addr, queries
		}
		if try == 3 {
			t.Fatalf("dnsmasq did not answer on three ports in turn")
		}
	}
}

// answers polls the DNS server at addr every 5 ms, for up to 10 s or until
// exited is closed, and reports whether it answered name with 127.0.0.77.
func answers(addr, name string, exited <-chan struct{}) bool {
	deadline := time.After(10 * time.Second)
	for {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		if in, _, err := (&dns.Client{Timeout: 100 * time.Millisecond}).Exchange(m, addr); err == nil {
			for _, rr := range in.Answer {
				if a, ok := rr.(*dns.A); ok && a.A.String() == "127.0.0.77" {
					return true
				}
			}
		}
		select {
		case <-exited:
			return false
		case <-deadline:
			return false
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func TestSRV_AgainstDNSMasq(t *testing.T) {
	const name = "_agent-geo._tcp.service.consul"
	var ports [3]int
	var lns [3]net.Listener
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		lns[i] = ln
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		serveOn(t, ln, fmt.Sprintf("geo%d", i+1))
	}
	server, queries := startDNSMasq(t,
		fmt.Sprintf("--srv-host=%s,geo1.node.consul,%d,1,10", name, ports[0]),
		fmt.Sprintf("--srv-host=%s,geo2.node.consul,%d,1,30", name, ports[1]),
		fmt.Sprintf("--srv-host=%s,geo3.node.consul,%d,2,10", name, ports[2]),
		"--host-record=geo1.node.consul,127.0.0.1",
		"--host-record=geo2.node.consul,127.0.0.1",
		"--host-record=geo3.node.consul,127.0.0.1",
		"--local-ttl=30")

	clk := fakeclock.New(time.Now())
	r, err := discovery.NewSRVResolver(discovery.WithDNSServer(server), discovery.WithSRVClock(clk))
	require.NoError(t, err)
	ctx := context.Background()
	targets, err := r.Lookup(ctx, name)
	require.NoError(t, err)
	require.Len(t, targets, 3)
	sent := r.Queries()
	for _, tg := range targets {
		assert.Equal(t, []string{"127.0.0.1"}, tg.Addrs, tg.Host)
	}

	// Priority 1 targets come first; between them, weight 30 leads about
	// three times as often as weight 10.
	lead := map[int]int{}
	for range 2000 {
		addrs, err := r.Resolve(ctx, name)
		require.NoError(t, err)
		require.Len(t, addrs, 3)
		assert.Equal(t, fmt.Sprintf("127.0.0.1:%d", ports[2]), addrs[2], "the priority 2 target is last")
		_, p, _ := net.SplitHostPort(addrs[0])
		var port int
		fmt.Sscan(p, &port)
		lead[port]++
	}
	share := float64(lead[ports[1]]) / 2000
	assert.InDelta(t, 0.75, share, 0.1, "weight 30 of 40 leads %.2f of the time", share)

	// Cached for the TTL: 2,000 resolves sent nothing more, and the DNS
	// server saw one SRV query.
	assert.Equal(t, sent, r.Queries())
	logged := func(n int) {
		// dnsmasq's log arrives through a pipe.
		testwait.Until(t, 10*time.Second, func() bool { return queries("SRV") >= n }, fmt.Sprintf("%d SRV queries in dnsmasq's log", n))
		assert.Equal(t, n, queries("SRV"))
	}
	logged(1)
	clk.Advance(31 * time.Second)
	_, err = r.Lookup(ctx, name)
	require.NoError(t, err)
	assert.Greater(t, r.Queries(), sent, "asked again after the TTL")
	logged(2)

	// End to end: a registry entry names the SRV record; calls reach a
	// target. With the preferred targets gone, the backup answers.
	path := writeFile(t, "[[service]]\nname = \"remote-geo\"\nsrv = \""+name+"\"\n")
	reg, err := discovery.Load(path)
	require.NoError(t, err)
	c := &http.Client{Transport: reg.Transport(nil, discovery.WithSRV(r))}
	assert.Contains(t, body(t, c, "http://remote-geo/geo/1.1.1.1"), "/geo/1.1.1.1")
	lns[0].Close()
	lns[1].Close()
	c.CloseIdleConnections()
	assert.Contains(t, body(t, c, "http://remote-geo/x"), "geo3 /x")

	_, err = r.Lookup(ctx, "_nothing._tcp.service.consul")
	assert.Error(t, err)
}

func TestSRV_WithoutResolver(t *testing.T) {
	reg, err := discovery.Load(writeFile(t, "[[service]]\nname = \"remote\"\nsrv = \"_x._tcp.example\"\n"))
	require.NoError(t, err)
	c := &http.Client{Transport: reg.Transport(nil)}
	_, err = c.Get("http://remote/")
	assert.ErrorContains(t, err, "needs an SRVResolver")
}
