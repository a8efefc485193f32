package logger_test

import (
	"bufio"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/logger"
)

const (
	stormProcs   = 45
	stormRecords = 2000
)

// A fleet restarted all at once: 45 processes open a fresh file at the same
// instant, each logs 2,000 records and closes. None may fail, none may lose
// a row.
func TestRestartStorm_FreshFile(t *testing.T) {
	for round := range 5 {
		path := filepath.Join(t.TempDir(), "fleet.db")
		storm(t, path, "svc", stormProcs, stormRecords)
		db := rawDB(t, path)
		require.Equal(t, stormProcs*stormRecords, count(t, db, ""), "round %d", round)
		integrityOK(t, db)
	}
}

// The same storm against a file already in WAL mode whose WAL is held open
// by another connection.
func TestRestartStorm_ExistingWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleet.db")
	s, err := logger.Open(path)
	require.NoError(t, err)
	for i := range 500 {
		s.Log(testRecord("before", i))
	}
	require.NoError(t, s.Close())

	db := rawDB(t, path)
	_, err = db.Exec("INSERT INTO requests (ts, service, method, path, route, status, duration_us, bytes_in, bytes_out, ip, user_agent, request_id, trace_id, error) VALUES (1, 'held', '', '', '', 0, 0, 0, 0, '', '', '', '', '')")
	require.NoError(t, err)
	require.FileExists(t, path+"-wal")

	storm(t, path, "svc", stormProcs, stormRecords)
	assert.Equal(t, stormProcs*stormRecords, count(t, db, "service LIKE 'svc-%'"))
	assert.Equal(t, 500, count(t, db, "service = 'before'"))
	assert.Equal(t, 1, count(t, db, "service = 'held'"))
	integrityOK(t, db)
}

// The same storm against a file whose writer was killed with SIGKILL in the
// middle of its batches, leaving a hot WAL that the first opener recovers.
func TestRestartStorm_AfterKilledWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleet.db")
	flushed := killMidStream(t, path)

	storm(t, path, "svc", stormProcs, stormRecords)
	db := rawDB(t, path)
	integrityOK(t, db)
	assert.Equal(t, stormProcs*stormRecords, count(t, db, "service LIKE 'svc-%'"))
	assert.GreaterOrEqual(t, count(t, db, "service = 'victim'"), flushed)
}

// A writer killed with SIGKILL mid-stream loses nothing it reported flushed,
// and the file passes integrity_check.
func TestCrash_KilledWriterKeepsFlushedBatches(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crash.db")
	flushed := killMidStream(t, path)

	db := rawDB(t, path)
	integrityOK(t, db)
	// Every record up to the last reported flush is there, exactly once.
	var got, distinct int
	require.NoError(t, db.QueryRow(
		`SELECT count(*), count(DISTINCT request_id) FROM requests
		 WHERE service = 'victim' AND CAST(substr(request_id, 8) AS INTEGER) < ?`, flushed).Scan(&got, &distinct))
	assert.Equal(t, flushed, got)
	assert.Equal(t, flushed, distinct)

	// The file is usable by a new store afterwards.
	s, err := logger.Open(path)
	require.NoError(t, err)
	s.Log(testRecord("after", 0))
	require.NoError(t, s.Close())
	assert.Equal(t, 1, count(t, db, "service = 'after'"))
}

// killMidStream starts a process that logs as fast as it can into path,
// waits until it has reported several flushes, kills it with SIGKILL while it
// is still writing, and returns the last count it reported committed.
func killMidStream(t *testing.T, path string) int {
	t.Helper()
	cmd := childCmd("stream", path, "victim", 0)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	lines := bufio.NewScanner(out)
	flushed := 0
	deadline := time.Now().Add(60 * time.Second)
	for flushed < 20000 && lines.Scan() {
		require.True(t, time.Now().Before(deadline), "writer too slow")
		var n int
		_, err := fmt.Sscanf(lines.Text(), "flushed %d", &n)
		require.NoError(t, err, lines.Text())
		flushed = n
	}
	require.GreaterOrEqual(t, flushed, 20000, "writer stopped early: %s", stderr.String())
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	err = cmd.Wait()
	require.Error(t, err)
	// Reports that were in the pipe when the process died count too.
	for lines.Scan() {
		var n int
		if _, err := fmt.Sscanf(lines.Text(), "flushed %d", &n); err == nil {
			flushed = n
		}
	}
	require.FileExists(t, path+"-wal", "a killed writer leaves its WAL behind")
	return flushed
}
