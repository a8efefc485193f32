package logger_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/logger"
)

func TestStore_Prune(t *testing.T) {
	s, path := openStore(t, logger.WithRetention(0))
	now := time.Now()
	const old, fresh = 12_345, 100
	for i := range old {
		s.Log(logger.Record{Time: now.Add(-48*time.Hour + time.Duration(i)*time.Millisecond), Service: "svc"})
	}
	for range fresh {
		s.Log(logger.Record{Time: now, Service: "svc"})
	}
	require.NoError(t, s.Flush(context.Background()))

	n, err := s.Prune(context.Background(), now.Add(-24*time.Hour))
	require.NoError(t, err)
	assert.Equal(t, int64(old), n)
	assert.Equal(t, fresh, count(t, rawDB(t, path), ""))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = s.Prune(ctx, now)
	assert.ErrorIs(t, err, context.Canceled)
}

func TestStore_AutomaticPrune(t *testing.T) {
	s, path := openStore(t, logger.WithRetention(time.Hour), logger.WithPruneInterval(10*time.Millisecond))
	now := time.Now()
	s.Log(logger.Record{Time: now.Add(-2 * time.Hour), Service: "old"})
	s.Log(logger.Record{Time: now, Service: "new"})
	require.NoError(t, s.Flush(context.Background()))
	db := rawDB(t, path)
	waitFor(t, 10*time.Second, "the old row to be pruned", func() bool { return count(t, db, "service = 'old'") == 0 })
	assert.Equal(t, 1, count(t, db, "service = 'new'"))
}

func TestStore_CheckpointTruncatesWAL(t *testing.T) {
	s, path := openStore(t, logger.WithCheckpointInterval(0))
	for i := range 20_000 {
		s.Log(testRecord("svc", i))
	}
	require.NoError(t, s.Flush(context.Background()))
	fi, err := os.Stat(path + "-wal")
	require.NoError(t, err)
	require.Positive(t, fi.Size())

	done, err := s.Checkpoint(context.Background())
	require.NoError(t, err)
	assert.True(t, done)
	fi, err = os.Stat(path + "-wal")
	require.NoError(t, err)
	assert.Zero(t, fi.Size(), "TRUNCATE leaves an empty WAL")
	assert.Equal(t, 20_000, count(t, rawDB(t, path), ""))
}
