package discovery_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/discovery"
)

func TestLoad(t *testing.T) {
	reg, err := discovery.Load("testdata/fleet.toml")
	require.NoError(t, err)
	var got []string
	for _, s := range reg.Services() {
		got = append(got, s.Name+" "+s.Endpoint.String())
	}
	assert.Equal(t, []string{
		"agent-gateway tcp:127.0.0.1:8080",
		"agent-geo unix:/run/flotilla/geo.sock",
		"crypto-feeds unix:/run/flotilla/crypto-feeds.sock",
		"remote-geo srv:_agent-geo._tcp.service.consul",
		"admin tcp:0.0.0.0:9000",
	}, got, "file order, defaults applied")

	geo, ok := reg.Service("agent-geo")
	require.True(t, ok)
	assert.True(t, geo.Public)
	assert.Equal(t, "/health", geo.Health)
	assert.Equal(t, []string{"lookup"}, geo.Tags)
	assert.Equal(t, 11, geo.Line)
	cf, _ := reg.Service("crypto-feeds")
	assert.Equal(t, "/status", cf.Health)
	assert.False(t, cf.Public)

	abs, _ := filepath.Abs("testdata/flotilla.db")
	assert.Equal(t, abs, reg.Defaults().DB, "relative to the registry's folder")

	ep, err := reg.Lookup("agent-gateway")
	require.NoError(t, err)
	assert.Equal(t, "tcp:127.0.0.1:8080", ep.String())
	_, err = reg.Lookup("nope")
	assert.ErrorIs(t, err, discovery.ErrUnknownService)
	assert.Contains(t, err.Error(), "testdata/fleet.toml")
}

func TestLoad_BasePort(t *testing.T) {
	path := writeFile(t, `
[defaults]
base_port = 4000
[[service]]
name = "a"
[[service]]
name = "b"
port = 5000
[[service]]
name = "c"
`)
	reg, err := discovery.Load(path)
	require.NoError(t, err)
	ep, _ := reg.Lookup("a")
	assert.Equal(t, "tcp:127.0.0.1:4000", ep.String())
	ep, _ = reg.Lookup("c")
	assert.Equal(t, "tcp:127.0.0.1:4001", ep.String(), "sequential over the services without a place")

	// Appending keeps every earlier assignment.
	require.NoError(t, os.WriteFile(path, append(mustRead(t, path), []byte("[[service]]\nname = \"d\"\n")...), 0o644))
	require.NoError(t, reg.Reload())
	ep, _ = reg.Lookup("c")
	assert.Equal(t, "tcp:127.0.0.1:4001", ep.String())
	ep, _ = reg.Lookup("d")
	assert.Equal(t, "tcp:127.0.0.1:4002", ep.String())
}

// Every problem of a file is reported at once, each with file and line.
func TestLoad_Validation(t *testing.T) {
	_, err := discovery.Load("testdata/bad.toml")
	var ve *discovery.ValidationError
	require.ErrorAs(t, err, &ve)
	var got []string
	for _, p := range ve.Problems {
		got = append(got, p.String())
	}
	want := []string{
		`testdata/bad.toml:9: service "agent-geo" is listed twice (first at line 5)`,
		`testdata/bad.toml:13: service name "Agent_Geo" is not a DNS label`,
		`testdata/bad.toml:14: service "Agent_Geo": port 70000 is not from 1 to 65535`,
		`testdata/bad.toml:18: service "crypto": port 3001 is already used by "agent-geo"`,
		`testdata/bad.toml:20: service "both": give only one of port, socket and srv`,
		`testdata/bad.toml:27: service "long": socket path`,
		`testdata/bad.toml:31: service "twin": socket /run/flotilla/geo.sock is already used by "agent-geo"`,
	}
	require.Len(t, got, len(want), "%q", got)
	for i := range want {
		assert.Contains(t, got[i], want[i])
	}
	assert.Contains(t, got[5], "OS limit of 107")
	assert.Contains(t, err.Error(), "testdata/bad.toml:9:")
}

func TestLoad_UnknownKeys(t *testing.T) {
	_, err := discovery.Load("testdata/unknown.toml")
	var ve *discovery.ValidationError
	require.ErrorAs(t, err, &ve)
	require.Len(t, ve.Problems, 2)
	assert.Equal(t, 3, ve.Problems[0].Line)
	assert.Contains(t, ve.Problems[0].Msg, `unknown key "defaults.colour"`)
	assert.Equal(t, 7, ve.Problems[1].Line)
	assert.Contains(t, ve.Problems[1].Msg, `unknown key "service.prot"`)
}

func TestLoad_BadInput(t *testing.T) {
	_, err := discovery.Load(filepath.Join(t.TempDir(), "missing.toml"))
	assert.ErrorIs(t, err, os.ErrNotExist)

	_, err = discovery.Load(t.TempDir())
	assert.ErrorContains(t, err, "is a directory")

	path := writeFile(t, "[[service]]\nname = \"a\"\nport = \"eighty\"\n")
	_, err = discovery.Load(path)
	var ve *discovery.ValidationError
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, 3, ve.Problems[0].Line)

	path = writeFile(t, "[[service]\nname = \n")
	_, err = discovery.Load(path)
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, 1, ve.Problems[0].Line)

	path = writeFile(t, "[[service]]\nname = \"lonely\"\n")
	_, err = discovery.Load(path)
	assert.ErrorContains(t, err, ":1: service \"lonely\" has no port, socket or srv")
}

// A bad edit keeps the last good map; Watch picks up a good one.
func TestRegistry_ReloadAndWatch(t *testing.T) {
	path := writeFile(t, "[[service]]\nname = \"a\"\nport = 4000\n")
	reg, err := discovery.Load(path)
	require.NoError(t, err)

	require.NoError(t, os.WriteFile(path, []byte("[[service]]\nname = \"a\"\nport = 0\n"), 0o644))
	require.Error(t, reg.Reload())
	ep, err := reg.Lookup("a")
	require.NoError(t, err)
	assert.Equal(t, "tcp:127.0.0.1:4000", ep.String(), "last good map kept")
	assert.Error(t, reg.LastError())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reports := make(chan error, 10)
	go reg.Watch(ctx, 5*time.Millisecond, func(err error) { reports <- err })
	writeAtomically(t, path, "[[service]]\nname = \"a\"\nport = 4001\n")
	future := time.Now().Add(time.Hour) // a new mtime even on coarse clocks
	require.NoError(t, os.Chtimes(path, future, future))
	select {
	case err := <-reports:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not reload")
	}
	ep, _ = reg.Lookup("a")
	assert.Equal(t, "tcp:127.0.0.1:4001", ep.String())
	assert.NoError(t, reg.LastError())
	assert.False(t, errors.Is(reg.LastError(), os.ErrNotExist))
}

// writeAtomically replaces path with body in one rename, as an editor or a
// deploy tool should.
func writeAtomically(t *testing.T, path, body string) {
	t.Helper()
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(body), 0o644))
	require.NoError(t, os.Rename(tmp, path))
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "flotilla.toml")
	require.NoError(t, os.WriteFile(path, []byte(body), 0o644))
	return path
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}
