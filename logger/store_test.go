package logger_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/internal/testwait"
	"github.com/flotilla-go/flotilla/logger"
)

func openStore(t testing.TB, opts ...logger.Option) (*logger.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fleet.db")
	s, err := logger.Open(path, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s, path
}

func TestStore_CloseFlushesEverything(t *testing.T) {
	s, path := openStore(t)
	const n = 100_000
	for i := range n {
		s.Log(testRecord("svc", i))
	}
	require.NoError(t, s.Close())
	st := s.Stats()
	assert.Equal(t, uint64(n), st.Written)
	assert.Zero(t, st.Dropped)
	assert.Zero(t, st.Queued)
	assert.Equal(t, n, count(t, rawDB(t, path), ""))
}

func TestStore_CloseIsIdempotent(t *testing.T) {
	s, _ := openStore(t)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close())
}

func TestStore_LogAfterCloseIsDropped(t *testing.T) {
	s, path := openStore(t)
	require.NoError(t, s.Close())
	s.Log(testRecord("late", 0))
	assert.Equal(t, uint64(1), s.Stats().Dropped)
	assert.ErrorIs(t, s.Flush(context.Background()), logger.ErrClosed)
	assert.Equal(t, 0, count(t, rawDB(t, path), ""))
}

// Flush returns only when everything logged before it is in the file, even
// with a flush interval far longer than the test.
func TestStore_Flush(t *testing.T) {
	s, path := openStore(t, logger.WithFlushInterval(time.Hour))
	db := rawDB(t, path)
	for round := 1; round <= 3; round++ {
		for i := range 10 {
			s.Log(testRecord("svc", round*100+i))
		}
		require.NoError(t, s.Flush(context.Background()))
		assert.Equal(t, round*10, count(t, db, ""))
	}
	assert.Equal(t, uint64(30), s.Stats().Written)
}

func TestStore_FlushHonoursContext(t *testing.T) {
	s, path := openStore(t)
	// Another process holds the write lock: nothing can be committed.
	lock := rawDB(t, path)
	conn, err := lock.Conn(context.Background())
	require.NoError(t, err)
	_, err = conn.ExecContext(context.Background(), "BEGIN IMMEDIATE")
	require.NoError(t, err)

	s.Log(testRecord("svc", 1))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, s.Flush(ctx), context.DeadlineExceeded)

	_, err = conn.ExecContext(context.Background(), "COMMIT")
	require.NoError(t, err)
	conn.Close()
	require.NoError(t, s.Flush(context.Background()))
	assert.Equal(t, uint64(1), s.Stats().Written)
}

// While another process holds the lock, records keep queueing up to the
// bound; past it they are dropped and counted, and Log never blocks. When
// the lock is released every queued record is written.
func TestStore_FullQueueDropsAndCounts(t *testing.T) {
	s, path := openStore(t, logger.WithQueueSize(3000), logger.WithBusyTimeout(20*time.Millisecond))
	lock := rawDB(t, path)
	conn, err := lock.Conn(context.Background())
	require.NoError(t, err)
	_, err = conn.ExecContext(context.Background(), "BEGIN IMMEDIATE")
	require.NoError(t, err)

	for i := range 5000 {
		s.Log(testRecord("svc", i))
	}
	st := s.Stats()
	assert.Equal(t, uint64(2000), st.Dropped)
	assert.Equal(t, 3000, st.Queued)
	waitFor(t, 10*time.Second, "a retried batch", func() bool { return s.Stats().Retried > 0 })
	assert.ErrorContains(t, s.Stats().LastError, "locked")

	_, err = conn.ExecContext(context.Background(), "COMMIT")
	require.NoError(t, err)
	conn.Close()
	require.NoError(t, s.Flush(context.Background()))
	assert.Equal(t, 3000, count(t, lock, ""))
	assert.Equal(t, uint64(3000), s.Stats().Written)
}

// Close gives up after its timeout when the file stays locked, and says how
// many records were lost instead of hanging.
func TestStore_CloseGivesUpOnLockedFile(t *testing.T) {
	s, path := openStore(t, logger.WithCloseTimeout(200*time.Millisecond), logger.WithBusyTimeout(10*time.Millisecond))
	lock := rawDB(t, path)
	conn, err := lock.Conn(context.Background())
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(context.Background(), "BEGIN IMMEDIATE")
	require.NoError(t, err)
	for i := range 10 {
		s.Log(testRecord("svc", i))
	}
	err = s.Close()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "gave up")
	assert.Equal(t, uint64(10), s.Stats().Dropped)
}

func TestStore_ConcurrentLog(t *testing.T) {
	s, path := openStore(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5000 {
				s.Log(testRecord("g"+string(rune('a'+g)), i))
				if i%1000 == 0 {
					_ = s.Stats()
				}
			}
		}()
	}
	wg.Wait()
	require.NoError(t, s.Close())
	assert.Equal(t, 40_000, count(t, rawDB(t, path), ""))
}

// Values of every shape are stored without error and read back as valid,
// bounded text; SQL in a field is data, never a statement.
func TestStore_OddValues(t *testing.T) {
	s, path := openStore(t)
	long := strings.Repeat("é", 5000) // 10 KB of two-byte characters
	recs := []logger.Record{
		{},
		{Service: "svc", Method: "", Path: "", Status: 0},
		{Service: "svc", Method: "BREW", Path: "/" + long, Status: 999, Duration: -time.Second},
		{Service: "svc", Method: "GET", Path: "/bad\xff\xfe", UserAgent: "'); DROP TABLE requests; --", Status: -1},
		{Service: "svc", Method: strings.Repeat("M", 300), UserAgent: long, Error: long, Status: 1 << 40},
		{Service: "svc", Method: "GET", Path: "/a\x00b\r\nINFO forged\x1b[31m\x7f", UserAgent: "ua\nx", Status: 200},
	}
	for _, r := range recs {
		s.Log(r)
	}
	require.NoError(t, s.Close())
	assert.Equal(t, uint64(len(recs)), s.Stats().Written)

	db := rawDB(t, path)
	require.Equal(t, len(recs), count(t, db, ""))
	rows, err := db.Query("SELECT method, path, user_agent, error, status, ts FROM requests ORDER BY id")
	require.NoError(t, err)
	defer rows.Close()
	var got []struct {
		method, path, ua, errText string
		status, ts                int64
	}
	for rows.Next() {
		var g struct {
			method, path, ua, errText string
			status, ts                int64
		}
		require.NoError(t, rows.Scan(&g.method, &g.path, &g.ua, &g.errText, &g.status, &g.ts))
		for _, v := range []string{g.method, g.path, g.ua, g.errText} {
			assert.True(t, utf8.ValidString(v), "stored text is valid UTF-8: %q", v)
		}
		assert.LessOrEqual(t, len(g.path), logger.MaxPathLen)
		assert.LessOrEqual(t, len(g.ua), logger.MaxUserAgentLen)
		assert.LessOrEqual(t, len(g.errText), logger.MaxErrorLen)
		assert.LessOrEqual(t, len(g.method), logger.MaxFieldLen)
		assert.NotZero(t, g.ts, "a zero Time is stored as the write time")
		got = append(got, g)
	}
	require.NoError(t, rows.Err())
	require.Len(t, got, len(recs))
	assert.Equal(t, "/bad\uFFFD", got[3].path)
	assert.Equal(t, "'); DROP TABLE requests; --", got[3].ua)
	assert.Equal(t, int64(-1), got[3].status)
	assert.Equal(t, int64(1<<40), got[4].status)
	assert.True(t, strings.HasPrefix(got[2].path, "/éé"))
	assert.Equal(t, "/a%00b%0D%0AINFO forged%1B[31m%7F", got[5].path, "control characters are stored escaped")
	assert.Equal(t, "ua%0Ax", got[5].ua)
}

// Shutdown gives up when its context ends, even with a longer close
// timeout, and nothing but its error speaks of the loss: no warning says
// the queue was full when it was not.
func TestStore_ShutdownGivesUpAtContextEnd(t *testing.T) {
	var out testwait.Buffer
	s, path := openStore(t, logger.WithBusyTimeout(10*time.Millisecond),
		logger.WithLogger(slog.New(slog.NewTextHandler(&out, nil))))
	lock := rawDB(t, path)
	conn, err := lock.Conn(context.Background())
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(context.Background(), "BEGIN IMMEDIATE")
	require.NoError(t, err)
	for i := range 10 {
		s.Log(testRecord("svc", i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = s.Shutdown(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "gave up")
	assert.Contains(t, err.Error(), "10 dropped")
	assert.Equal(t, uint64(10), s.Stats().Dropped)
	assert.NotContains(t, out.String(), "queue full")
	assert.ErrorIs(t, s.Close(), err, "Close returns Shutdown's result")
}
