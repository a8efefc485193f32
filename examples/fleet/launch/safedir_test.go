package launch

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A folder another user prepared in a shared /tmp is refused, and a
// symlink where the port map goes is never followed.
func TestSafeDir(t *testing.T) {
	base := t.TempDir()
	fresh := filepath.Join(base, "fresh")
	require.NoError(t, safeDir(fresh))
	fi, err := os.Stat(fresh)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm())

	open := filepath.Join(base, "open")
	require.NoError(t, os.Mkdir(open, 0o700))
	require.NoError(t, os.Chmod(open, 0o777))
	assert.ErrorContains(t, safeDir(open), "writable by others")

	link := filepath.Join(base, "link")
	require.NoError(t, os.Symlink(fresh, link))
	assert.ErrorContains(t, safeDir(link), "not a folder")

	if os.Geteuid() == 0 {
		theirs := filepath.Join(base, "theirs")
		require.NoError(t, os.Mkdir(theirs, 0o700))
		require.NoError(t, os.Chown(theirs, 65534, 65534))
		assert.ErrorContains(t, safeDir(theirs), "another user")
	}

	victim := filepath.Join(base, "victim")
	require.NoError(t, os.WriteFile(victim, []byte("precious"), 0o600))
	trap := filepath.Join(fresh, "flotilla.toml")
	require.NoError(t, os.Symlink(victim, trap))
	assert.Error(t, writeFile(trap, []byte("[[service]]"), 0o600))
	b, _ := os.ReadFile(victim)
	assert.Equal(t, "precious", string(b), "the symlink's target is untouched")
}
