package logger

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// withoutRollupTasks keeps a Store from backfilling and compacting in the
// background, for tests that do it step by step.
func withoutRollupTasks(o *options) { o.noRollupTasks = true }

// One backfill step rolls up at most the rows it is given, and says where
// the next one starts: no transaction grows with the file.
func TestBackfillStep_IsBounded(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "f.db"), withoutRollupTasks)
	require.NoError(t, err)
	defer s.Close()
	ctx := context.Background()
	_, err = s.wdb.ExecContext(ctx, `WITH RECURSIVE i(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM i WHERE n < 2500)
		INSERT INTO requests (`+columns+`) SELECT unixepoch() * 1000000, 'raw', 'GET', '/', '/', 200, n, 0, 0, '', '', '', '', '' FROM i`)
	require.NoError(t, err)
	_, err = s.wdb.ExecContext(ctx, rollupBackfillAll)
	require.NoError(t, err)

	for i, want := range []int64{1000, 1000, 500} {
		done, rows, _, err := s.backfillStep(ctx, 1000)
		require.NoError(t, err)
		assert.Equal(t, want, rows, "step %d", i)
		assert.Equal(t, i == 2, done, "step %d", i)
	}
	var n int64
	require.NoError(t, s.wdb.QueryRowContext(ctx, `SELECT sum(count) FROM rollups WHERE level = 60`).Scan(&n))
	assert.Equal(t, int64(2500), n)
	left, _, err := s.reader.Backfilling(ctx)
	require.NoError(t, err)
	assert.Zero(t, left)
}

// BenchmarkBackfill rolls up a file of 1,000,000 raw rows written before
// the rollups, as Backfill does, and reports the longest a step held the
// write lock.
func BenchmarkBackfill(b *testing.B) {
	for range b.N {
		s, err := Open(filepath.Join(b.TempDir(), "old.db"), WithRetention(0), withoutRollupTasks)
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		_, err = s.wdb.ExecContext(ctx, `WITH RECURSIVE i(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM i WHERE n < 1000000)
			INSERT INTO requests (`+columns+`) SELECT (unixepoch() - n / 10) * 1000000, 'svc-' || (n % 45), 'GET', '/x',
			'/r' || (n % 8), CASE WHEN n % 20 = 0 THEN 500 ELSE 200 END, n % 50000, 0, 100, '', '', '', '', '' FROM i`)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.wdb.ExecContext(ctx, rollupBackfillAll); err != nil {
			b.Fatal(err)
		}
		var took []time.Duration
		steps, n := 0, 256
		began := time.Now()
		for {
			t0 := time.Now()
			done, _, _, err := s.backfillStep(ctx, n)
			if err != nil {
				b.Fatal(err)
			}
			d := time.Since(t0)
			took = append(took, d)
			steps++
			if done {
				break
			}
			n = nextChunk(n, d)
		}
		slices.Sort(took)
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		b.ReportMetric(ms(took[len(took)-1]), "longest-step-ms")
		b.ReportMetric(ms(took[len(took)*99/100]), "p99-step-ms")
		b.ReportMetric(ms(took[len(took)/2]), "median-step-ms")
		b.ReportMetric(float64(steps), "steps")
		b.ReportMetric(1e6/time.Since(began).Seconds(), "rows/s")
		s.Close()
	}
}

func TestNextChunkAimsAtTheTarget(t *testing.T) {
	assert.Equal(t, 512, nextChunk(256, time.Millisecond), "a fast step at most doubles the next")
	assert.Equal(t, 1000, nextChunk(2000, 2*backfillTarget), "a slow step halves the next")
	assert.Equal(t, 256, nextChunk(300, 10*backfillTarget), "never below 256 rows")
	assert.Equal(t, 65536, nextChunk(60000, 0), "never above 65,536 rows")
}
