package platform_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/platform"
)

// The port map and the log file are found as the README's table says:
// options, then the environment, then the port map's defaults.
func TestPortMapAndLogPath(t *testing.T) {
	for _, v := range []string{"FLOTILLA_REGISTRY", "FLOTILLA_DB", "FLOTILLA_LISTEN", "PORT"} {
		t.Setenv(v, "")
	}
	t.Chdir(t.TempDir()) // no flotilla.toml here
	_, err := platform.PortMap()
	assert.ErrorContains(t, err, "no port map")

	dir := t.TempDir()
	withDB := filepath.Join(dir, "with-db.toml")
	require.NoError(t, os.WriteFile(withDB, []byte("[defaults]\ndb = \"logs/fleet.db\"\n[[service]]\nname = \"a\"\nport = 4000\n"), 0o644))
	plain := filepath.Join(dir, "plain.toml")
	require.NoError(t, os.WriteFile(plain, []byte("[[service]]\nname = \"a\"\nport = 4000\n"), 0o644))

	reg, err := platform.PortMap(platform.WithRegistry(withDB))
	require.NoError(t, err)
	assert.Equal(t, withDB, reg.Path())

	got, err := platform.LogPath(platform.WithRegistry(withDB))
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "logs", "fleet.db"), got, "the port map's [defaults] db")
	got, err = platform.LogPath(platform.WithRegistry(plain))
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "flotilla.db"), got, "beside the port map")

	t.Setenv("FLOTILLA_DB", "/srv/env.db")
	got, err = platform.LogPath(platform.WithRegistry(withDB))
	require.NoError(t, err)
	assert.Equal(t, "/srv/env.db", got, "the environment over the port map")
	got, err = platform.LogPath(platform.WithRegistry(withDB), platform.WithDB("/srv/opt.db"))
	require.NoError(t, err)
	assert.Equal(t, "/srv/opt.db", got, "an option over the environment")

	t.Setenv("FLOTILLA_REGISTRY", plain)
	reg, err = platform.PortMap()
	require.NoError(t, err)
	assert.Equal(t, plain, reg.Path())
}
