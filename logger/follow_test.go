package logger_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/logger"
)

// logged returns the numbers of the records in the file at path.
func logged(t *testing.T, path string) map[int]bool {
	t.Helper()
	db := rawDB(t, path)
	rs, err := db.Query("SELECT path FROM requests")
	require.NoError(t, err)
	defer rs.Close()
	out := map[int]bool{}
	for rs.Next() {
		var p string
		require.NoError(t, rs.Scan(&p))
		n, err := strconv.Atoi(strings.TrimPrefix(p, "/items/"))
		require.NoError(t, err)
		out[n] = true
	}
	require.NoError(t, rs.Err())
	return out
}

// The log file is removed, or moved away, under a Store that is writing:
// the Store notices before its next batch and reopens the path, so the
// file there holds every record logged after the change but at most the
// one batch that was in flight, and Stats says what happened.
func TestStore_FollowsItsPath(t *testing.T) {
	for _, change := range []string{"rm", "mv", "replace"} {
		t.Run(change, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "flotilla.db")
			s, err := logger.Open(path)
			require.NoError(t, err)
			defer s.Close()

			var next atomic.Int64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { // the load, as fast as the writer takes it: a full queue would drop records for another reason
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					n := int(next.Add(1))
					s.Log(testRecord("svc", n))
					if n%100 == 0 && s.Stats().Queued > 20_000 {
						s.Flush(context.Background())
					}
				}
			}()
			waitFor(t, 10e9, "rows written before the change", func() bool { return s.Stats().Written > 5000 })
			switch change {
			case "rm":
				for _, suffix := range []string{"", "-wal", "-shm"} {
					if err := os.Remove(path + suffix); suffix == "" || !os.IsNotExist(err) {
						require.NoError(t, err) // the WAL's files come and go with checkpoints
					}
				}
			case "mv", "replace":
				for _, suffix := range []string{"", "-wal", "-shm"} {
					if err := os.Rename(path+suffix, filepath.Join(dir, "moved.db"+suffix)); suffix == "" || !os.IsNotExist(err) {
						require.NoError(t, err)
					}
				}
			}
			if change == "replace" { // a service started now makes a new file at the path
				other, err := logger.Open(path)
				require.NoError(t, err)
				require.NoError(t, other.Close())
			}
			cut := int(next.Load())
			waitFor(t, 10e9, "the reopen", func() bool { return !s.Stats().ReopenedAt.IsZero() })
			before := s.Stats().Written
			waitFor(t, 10e9, "rows written after the change", func() bool { return s.Stats().Written > before+5000 })
			close(stop)
			wg.Wait()
			require.NoError(t, s.Flush(context.Background()))
			last := int(next.Load())
			st := s.Stats()
			// A writer that looks between the mv and the new file sees a
			// removal, and makes the new file itself.
			want := map[string]string{"rm": "was removed", "mv": "moved away", "replace": "(was replaced|moved away)"}[change]
			assert.Regexp(t, want, st.Reopened)
			require.NoError(t, s.Close())

			got := logged(t, path)
			missing := 0
			for n := cut + 1; n <= last; n++ {
				if !got[n] {
					missing++
				}
			}
			// Records a full queue dropped are counted apart (the load
			// keeps the queue short, so there are rarely any).
			assert.LessOrEqual(t, missing, 1024+int(st.Dropped), "records logged after the change but not in the file at the path (dropped by a full queue: %d)", st.Dropped)
			assert.Greater(t, len(got), 5000)
			if change != "rm" {
				moved := logged(t, filepath.Join(dir, "moved.db"))
				assert.True(t, moved[1], "the moved file keeps the rows from before")
			}
		})
	}
}
