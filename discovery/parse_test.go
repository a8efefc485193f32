package discovery_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/discovery"
)

func problems(t *testing.T, body string) []string {
	t.Helper()
	_, err := discovery.Load(writeFile(t, body))
	var ve *discovery.ValidationError
	require.ErrorAs(t, err, &ve, "%v", err)
	var out []string
	for _, p := range ve.Problems {
		out = append(out, fmt.Sprintf("%d: %s", p.Line, p.Msg))
	}
	return out
}

// An unknown key does not hide the other problems; it comes with the key
// it most likely meant.
func TestLoad_EveryProblemAtOnce(t *testing.T) {
	got := problems(t, `[[service]]
name = "geo"
prot = 3035

[[service]]
name = "feeds"
port = 3036

[[service]]
name = "Bad_Name"
port = 3036
`)
	require.Len(t, got, 3, "%q", got)
	assert.Equal(t, `3: unknown key "service.prot": did you mean "port"?`, got[0])
	assert.Contains(t, got[1], `10: service name "Bad_Name" is not a DNS label`)
	assert.Contains(t, got[2], `11: service "Bad_Name": port 3036 is already used by "feeds"`)
}

func TestLoad_SmallerProblems(t *testing.T) {
	// A byte-order mark is fine.
	_, err := discovery.Load(writeFile(t, "\xef\xbb\xbf[[service]]\nname = \"a\"\nport = 4000\n"))
	assert.NoError(t, err)

	// A NUL in a socket path is not.
	got := problems(t, "[[service]]\nname = \"a\"\nsocket = \"/run/a\\u0000.sock\"\n")
	require.Len(t, got, 1)
	assert.Contains(t, got[0], "3: ")
	assert.Contains(t, got[0], "control character")

	// Types in words, not Go's.
	got = problems(t, "[[service]]\nname = \"a\"\nport = \"eighty\"\npublic = \"yes\"\n")
	require.Len(t, got, 2)
	assert.Equal(t, `3: service "a": port must be a whole number, such as 3035, not a string ("eighty")`, got[0])
	assert.Equal(t, `4: service "a": public must be true or false, not a string ("yes")`, got[1])
	for _, p := range got {
		assert.NotContains(t, p, "struct")
	}

	// The inline form has lines too.
	got = problems(t, "service = [\n  { name = \"a\", port = 4000 },\n  { name = \"a\", port = 4001 },\n]\n")
	require.Len(t, got, 1)
	assert.Equal(t, `3: service "a" is listed twice (first at line 2)`, got[0])

	// The same port on two addresses is no conflict; on a wildcard it is.
	_, err = discovery.Load(writeFile(t, "[[service]]\nname = \"a\"\nhost = \"127.0.0.1\"\nport = 4000\n[[service]]\nname = \"b\"\nhost = \"127.0.0.2\"\nport = 4000\n"))
	assert.NoError(t, err)
	got = problems(t, "[[service]]\nname = \"a\"\nport = 4000\n[[service]]\nname = \"b\"\nhost = \"0.0.0.0\"\nport = 4000\n")
	require.Len(t, got, 1)
	assert.Contains(t, got[0], `7: service "b": port 4000 on every address clashes with "a"`)
}

// A map with no service is an error naming the file, and Watch keeps the
// last good map through it, as through a file caught half-written.
func TestLoad_EmptyMap(t *testing.T) {
	for _, body := range []string{"", "\n# nothing yet\n", "[defaults]\nsocket_dir = \"run\"\n"} {
		path := writeFile(t, body)
		_, err := discovery.Load(path)
		require.Error(t, err, "%q", body)
		assert.Contains(t, err.Error(), path)
		assert.Contains(t, err.Error(), "no service")
	}

	path := writeFile(t, "[[service]]\nname = \"a\"\nport = 4000\n")
	reg, err := discovery.Load(path)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reports := make(chan error, 10)
	go reg.Watch(ctx, 5*time.Millisecond, func(err error) { reports <- err })
	require.NoError(t, os.Truncate(path, 0)) // ": > flotilla.toml"
	select {
	case err := <-reports:
		assert.ErrorContains(t, err, "no service")
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not read the emptied file")
	}
	ep, err := reg.Lookup("a")
	require.NoError(t, err)
	assert.Equal(t, "tcp:127.0.0.1:4000", ep.String(), "the last good map is kept")
}

// 10,000 services parse in linear time (the figure is in
// BenchmarkLoad_10000).
func TestLoad_ManyServices(t *testing.T) {
	path := writeFile(t, bigMap(10000, false))
	reg, err := discovery.Load(path)
	require.NoError(t, err)
	assert.Len(t, reg.Services(), 10000)
	s, _ := reg.Service("svc-9999")
	assert.Equal(t, 4*9999+1, s.Line)

	_, err = discovery.Load(writeFile(t, bigMap(10000, true)))
	var ve *discovery.ValidationError
	require.ErrorAs(t, err, &ve)
	assert.Len(t, ve.Problems, 9999, "every duplicate port")
}

func bigMap(n int, samePort bool) string {
	var b strings.Builder
	for i := range n {
		port := 10000 + i
		if samePort {
			port = 10000
		}
		fmt.Fprintf(&b, "[[service]]\nname = \"svc-%d\"\nport = %d\n\n", i, port)
	}
	return b.String()
}

func BenchmarkLoad_10000(b *testing.B) {
	for _, dup := range []bool{false, true} {
		b.Run(map[bool]string{false: "distinct", true: "duplicate-ports"}[dup], func(b *testing.B) {
			dir := b.TempDir()
			path := dir + "/flotilla.toml"
			require.NoError(b, os.WriteFile(path, []byte(bigMap(10000, dup)), 0o644))
			for b.Loop() {
				discovery.Load(path)
			}
		})
	}
}

// Valid but likely wrong: each warning at its line, and the map still loads.
func TestLoad_Warnings(t *testing.T) {
	dir := t.TempDir()
	locked := filepath.Join(dir, "locked")
	require.NoError(t, os.Mkdir(locked, 0o500))
	path := filepath.Join(dir, "flotilla.toml")
	require.NoError(t, os.WriteFile(path, []byte(`[[service]]
name = "web"
port = 80
public = true
health = ""

[[service]]
name = "ok"
port = 80
host = "10.0.0.2"

[[service]]
name = "missing"
socket = "`+dir+`/nope/missing.sock"

[[service]]
name = "ro"
socket = "`+locked+`/ro.sock"
`), 0o600))
	reg, err := discovery.Load(path)
	require.NoError(t, err)
	var got []string
	for _, w := range reg.Warnings() {
		got = append(got, fmt.Sprintf("%d %s", w.Line, w.Msg))
	}
	require.Len(t, got, 3+boolInt(os.Geteuid() != 0), "%q", got)
	assert.Contains(t, got[0], `3 service "web": port 80 is below 1024`)
	assert.Contains(t, got[1], `5 public service "web" has no health path`)
	assert.Contains(t, got[2], "14 service \"missing\": socket folder "+dir+"/nope does not exist")
	if os.Geteuid() != 0 { // root writes anywhere
		assert.Contains(t, got[3], "18 service \"ro\": socket folder "+locked+" is not writable")
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// The front door's settings are checked like the rest, each problem at its
// line with the form it takes.
func TestLoad_FrontDoorProblems(t *testing.T) {
	dir := t.TempDir()
	notCert := filepath.Join(dir, "not.pem")
	require.NoError(t, os.WriteFile(notCert, []byte("hello"), 0o600))
	got := problems(t, `[nginx]
tls_cert = "`+notCert+`"
tls_key = "`+filepath.Join(dir, "missing.key")+`"
root = "nobody"

[[service]]
name = "a"
port = 4001
hosts = ["Bad Host"]
paths = ["api/"]
rate = "fast"
body_limit = "lots"

[[service]]
name = "b"
port = 4002
burst = 5

[[service]]
name = "c"
port = 4003
hosts = ["geo.example.com"]

[[service]]
name = "d"
port = 4004
hosts = ["geo.example.com"]
`)
	want := []string{
		`2: [nginx] tls_cert ` + notCert + `: not a PEM certificate (-----BEGIN CERTIFICATE-----)`,
		`3: [nginx] tls_key ` + filepath.Join(dir, "missing.key") + `: stat ` + filepath.Join(dir, "missing.key") + `: no such file or directory`,
		`4: [nginx] root "nobody" is not a service of the port map`,
		`9: service "a": hosts entry "Bad Host" is not a host name: give lowercase names such as geo.example.com (or *.example.com)`,
		`10: service "a": paths entry "api/" must be a path prefix starting with /, such as "/api/"`,
		`11: service "a": rate "fast": give requests per second or minute per client address, such as "10r/s" or "600r/m"`,
		`12: service "a": body_limit "lots": give a size such as "4M", "512k" or "1G"`,
		`17: service "b": burst without rate: add rate = "10r/s" or remove burst`,
		`27: service "d": host geo.example.com path / is already routed to "c": give one of them other hosts or paths`,
	}
	assert.Equal(t, want, got)
}

// The supervisor's settings are checked at their lines too.
func TestLoad_SupervisionProblems(t *testing.T) {
	got := problems(t, `[[service]]
name = "a"
port = 4001
memory_max = "lots"
cpu_weight = 0
tasks_max = 0
restart = "sometimes"
user = "Root User"
env = { "1BAD" = "x" }
`)
	assert.Equal(t, []string{
		`4: service "a": memory_max "lots": give a size such as "256M" or "1G" (K, M, G, T), or "infinity"`,
		`5: service "a": cpu_weight 0: give a weight from 1 to 10000 (100 is systemd's default)`,
		`6: service "a": tasks_max 0: give a number of tasks from 1`,
		`7: service "a": restart "sometimes": give "on-failure" or "always"`,
		`8: service "a": user "Root User" is not a user name such as "flotilla"`,
		`9: service "a": env "1BAD" is not a variable name: letters, digits and _, not starting with a digit`,
	}, got)
}

// An slo reads as fractions and durations, with the documented defaults.
func TestLoad_SLO(t *testing.T) {
	reg, err := discovery.Load(writeFile(t, `[[service]]
name = "a"
port = 4001
slo = { availability = "99.9%", latency = "300ms", latency_target = "99.5%", window = "4w" }

[[service]]
name = "b"
port = 4002
slo = { latency = "1s", errors = ["5xx", "429"] }

[[service]]
name = "c"
port = 4003
[service.slo]
availability = "99%"
`))
	require.NoError(t, err)
	a, _ := reg.Service("a")
	require.NotNil(t, a.SLO)
	assert.Equal(t, discovery.SLO{Availability: 0.999, Latency: 300 * time.Millisecond, LatencyTarget: 0.995, Window: 28 * 24 * time.Hour}, *a.SLO)
	b, _ := reg.Service("b")
	assert.Equal(t, discovery.SLO{Latency: time.Second, LatencyTarget: 0.99, Window: 30 * 24 * time.Hour, Errors: [][2]int{{500, 599}, {429, 429}}}, *b.SLO)
	c, _ := reg.Service("c")
	require.NotNil(t, c.SLO)
	assert.Equal(t, 0.99, c.SLO.Availability)
}

// Impossible objectives are errors at their line.
func TestLoad_SLOProblems(t *testing.T) {
	got := problems(t, `[[service]]
name = "a"
port = 4001
slo = { availability = "100%" }
[[service]]
name = "b"
port = 4002
slo = { availability = "0%", latency = "-5ms" }
[[service]]
name = "c"
port = 4003
slo = { availabilty = "99%" }
[[service]]
name = "d"
port = 4004
slo = { latency_target = "99%", window = "1d", errors = ["oops"] }
[[service]]
name = "e"
port = 4005
slo = "99.9%"
[[service]]
name = "f"
port = 4006
slo = { window = "2h", latency = "1s" }
`)
	assert.Equal(t, []string{
		`4: service "a": slo availability "100%": give a percentage above 0% and below 100%, such as "99.9%" (100% leaves no error budget)`,
		`8: service "b": slo availability "0%": give a percentage above 0% and below 100%, such as "99.9%" (100% leaves no error budget)`,
		`8: service "b": slo latency "-5ms": give a positive duration, such as "300ms"`,
		`12: unknown key "slo.availabilty": did you mean "availability"?`,
		`16: service "d": slo latency_target without latency: add latency = "300ms"`,
		`16: service "d": slo errors entry "oops": give a status such as "429" or a class such as "5xx"`,
		`20: service "e": slo must be a table, such as slo = { availability = "99.9%", latency = "300ms" }, not a string ("99.9%")`,
		`24: service "f": slo window "2h": give at least 6h (the slow-burn alert's window) and at most 400d (the rollups' retention)`,
	}, got)
}
