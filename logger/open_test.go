package logger_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/logger"
)

func TestOpen_CreatesFolderAndWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "fleet.db")
	s, err := logger.Open(path)
	require.NoError(t, err)
	defer s.Close()
	assert.Equal(t, path, s.Path())
	fi, err := os.Stat(filepath.Dir(path))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o750), fi.Mode().Perm())

	var mode string
	var version int
	db := rawDB(t, path)
	require.NoError(t, db.QueryRow("PRAGMA journal_mode").Scan(&mode))
	require.NoError(t, db.QueryRow("PRAGMA user_version").Scan(&version))
	assert.Equal(t, "wal", mode)
	assert.Equal(t, logger.SchemaVersion, version)
}

func TestOpen_Directory(t *testing.T) {
	dir := t.TempDir()
	_, err := logger.Open(dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), dir)
	assert.Contains(t, err.Error(), "is a directory")
}

func TestOpen_PathUnderAFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "plain")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o600))
	_, err := logger.Open(filepath.Join(file, "fleet.db"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "create folder")
	assert.True(t, errors.Is(err, syscall.ENOTDIR), "%v", err)
}

func TestOpen_NotSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notes.db")
	data := []byte(strings.Repeat("these are my notes, not a database\n", 200))
	require.NoError(t, os.WriteFile(path, data, 0o600))
	_, err := logger.Open(path)
	require.ErrorIs(t, err, logger.ErrNotDatabase)
	assert.Contains(t, err.Error(), path)
	// The file is left as it was.
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, data, got)
}

func TestOpen_NewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "future.db")
	db := rawDB(t, path)
	_, err := db.Exec("PRAGMA user_version = 99")
	require.NoError(t, err)
	db.Close()
	_, err = logger.Open(path)
	require.ErrorIs(t, err, logger.ErrSchemaTooNew)
	assert.Contains(t, err.Error(), "version 99")
	assert.Contains(t, err.Error(), path)
}

// A file at schema version 1 (the table without the dashboard indexes) is
// migrated in place and keeps its rows.
func TestOpen_MigratesOlderSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	db := rawDB(t, path)
	_, err := db.Exec(`PRAGMA journal_mode=WAL;
	CREATE TABLE requests (
		id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, service TEXT NOT NULL,
		method TEXT NOT NULL, path TEXT NOT NULL, route TEXT NOT NULL,
		status INTEGER NOT NULL, duration_us INTEGER NOT NULL,
		bytes_in INTEGER NOT NULL, bytes_out INTEGER NOT NULL, ip TEXT NOT NULL,
		user_agent TEXT NOT NULL, request_id TEXT NOT NULL, trace_id TEXT NOT NULL,
		error TEXT NOT NULL);
	CREATE INDEX requests_ts ON requests (ts);
	INSERT INTO requests VALUES (NULL, 1, 'old', 'GET', '/', '/', 200, 5, 0, 0, '', '', '', 'abc', '');
	CREATE TABLE notes (body TEXT);
	INSERT INTO notes VALUES ('kept');
	PRAGMA user_version = 1;`)
	require.NoError(t, err)

	s, err := logger.Open(path)
	require.NoError(t, err)
	require.NoError(t, s.Close())

	var version int
	require.NoError(t, db.QueryRow("PRAGMA user_version").Scan(&version))
	assert.Equal(t, logger.SchemaVersion, version)
	assert.Equal(t, 1, count(t, db, "service = 'old'"))
	var note string
	require.NoError(t, db.QueryRow("SELECT body FROM notes").Scan(&note))
	assert.Equal(t, "kept", note)
	var idx int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN ('requests_ts_cover', 'requests_trace')`).Scan(&idx))
	assert.Equal(t, 2, idx)
}

// A folder the service's user cannot write to. Permissions do not bind
// root, so as root the check runs in a child process as user nobody.
func TestOpen_ReadOnlyFolder(t *testing.T) {
	base, err := os.MkdirTemp("", "flotilla-ro-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(base) })
	ro := filepath.Join(base, "ro")
	require.NoError(t, os.Mkdir(ro, 0o755))
	path := filepath.Join(ro, "fleet.db")

	if os.Geteuid() != 0 {
		require.NoError(t, os.Chmod(ro, 0o555))
		_, err := logger.Open(path)
		require.Error(t, err)
		assert.Contains(t, err.Error(), path)
		assert.Contains(t, err.Error(), "writable")
		return
	}
	// Copy the test binary where nobody can run it.
	require.NoError(t, os.Chmod(base, 0o755))
	self, err := os.ReadFile(os.Args[0])
	require.NoError(t, err)
	bin := filepath.Join(base, "logger.test")
	require.NoError(t, os.WriteFile(bin, self, 0o755))

	cmd := childCmd("open", path, "", 0)
	cmd.Path, cmd.Args[0] = bin, bin
	cmd.Dir = base
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) || err != nil {
		t.Fatalf("child as nobody: %v: %s", err, out)
	}
	msg := string(out)
	assert.Contains(t, msg, path)
	assert.Contains(t, msg, "writable")
	assert.NoFileExists(t, path)
}

func TestOpen_EmptyPath(t *testing.T) {
	_, err := logger.Open("")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "empty path")
}
