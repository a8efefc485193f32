package logger

import (
	"context"
	"fmt"
	"time"
)

// PruneChunk is the most rows Prune deletes in one transaction, so another
// process never waits long for the write lock.
const PruneChunk = 5000

// Prune deletes the rows older than before, in transactions of at most
// PruneChunk rows, and returns how many it deleted. It stops early with
// ctx's error.
func (s *Store) Prune(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		n, err := s.pruneChunk(ctx, before.UnixMicro())
		total += n
		if err != nil {
			return total, fmt.Errorf("logger: prune %s: %w", s.path, err)
		}
		if n < PruneChunk {
			return total, nil
		}
	}
}

func (s *Store) pruneChunk(ctx context.Context, before int64) (int64, error) {
	tx, err := s.wdb.BeginTx(ctx, nil) // BEGIN IMMEDIATE
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx,
		`DELETE FROM requests WHERE id IN (SELECT id FROM requests WHERE ts < ? ORDER BY ts LIMIT ?)`,
		before, PruneChunk)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	return n, tx.Commit()
}

// PruneRollups deletes the rollups past their retention at now (see
// WithRollupRetention), in transactions of at most PruneChunk rows, and
// returns how many it deleted.
func (s *Store) PruneRollups(ctx context.Context, now time.Time) (int64, error) {
	ret := s.opts.rollupRetention
	if ret <= 0 {
		return 0, nil
	}
	var total int64
	for _, l := range levels {
		keep := ret
		switch l {
		case levelMinute:
			keep = min(keep, MinuteRollupRetention)
		case levelHour:
			keep = min(keep, HourRollupRetention)
		}
		before := now.Add(-keep).Unix()
		// Route minutes and hours go only once compacted into the next
		// level; service rollups are written whole at every level.
		compacted := map[int64]string{levelMinute: "hours", levelHour: "days", levelDay: "ts + 1"}[l]
		for i, table := range rollupTables {
			if i == 1 {
				compacted = "ts + 1"
			}
			for {
				res, err := s.wdb.ExecContext(ctx, `DELETE FROM `+table+` WHERE (level, ts, service, method, route, status) IN
					(SELECT level, ts, service, method, route, status FROM `+table+` t WHERE level = ? AND ts < ?
					AND ts < coalesce((SELECT `+compacted+` FROM rollup_marks m WHERE m.service = t.service), 0) LIMIT ?)`,
					l, before, PruneChunk)
				if err != nil {
					return total, fmt.Errorf("logger: prune rollups of %s: %w", s.path, err)
				}
				n, _ := res.RowsAffected()
				total += n
				if n < PruneChunk {
					break
				}
			}
		}
	}
	return total, nil
}

// Checkpoint copies the WAL into the database file and truncates the WAL
// (PRAGMA wal_checkpoint(TRUNCATE)). It reports whether the checkpoint
// completed: it does not when another connection is still reading an old
// snapshot, and a later checkpoint finishes the job.
func (s *Store) Checkpoint(ctx context.Context) (bool, error) {
	var busy, logFrames, done int
	err := s.wdb.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &done)
	if err != nil {
		if retryable(err) {
			return false, nil
		}
		return false, fmt.Errorf("logger: checkpoint %s: %w", s.path, err)
	}
	return busy == 0, nil
}

// runMaintenance prunes old rows and checkpoints the WAL on their intervals
// until the Store closes.
func (s *Store) runMaintenance() {
	defer close(s.maintEnd)
	prune := s.opts.retention > 0 || s.opts.rollupRetention > 0
	check := s.opts.checkpointInterval > 0
	if !prune && !check {
		<-s.closing
		return
	}
	// The first prune runs soon after start, at a random moment so that a
	// fleet started at once does not prune at once.
	nextPrune := time.Now().Add(jitter(min(time.Minute, s.opts.pruneInterval)))
	nextCheck := time.Now().Add(jitter(s.opts.checkpointInterval))
	for {
		next := nextCheck
		if !check || (prune && nextPrune.Before(next)) {
			next = nextPrune
		}
		t := time.NewTimer(time.Until(next))
		select {
		case <-s.closing:
			t.Stop()
			return
		case <-t.C:
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-s.closing:
				cancel()
			case <-ctx.Done():
			}
		}()
		now := time.Now()
		if prune && !now.Before(nextPrune) {
			if s.opts.retention > 0 {
				if _, err := s.Prune(ctx, now.Add(-s.opts.retention)); err != nil && ctx.Err() == nil {
					s.setErr(err)
					s.log.Warn("request log prune failed", "path", s.path, "err", err)
				}
			}
			if _, err := s.PruneRollups(ctx, now); err != nil && ctx.Err() == nil {
				s.log.Warn("request log prune failed", "path", s.path, "err", err)
			}
			nextPrune = now.Add(jitter(s.opts.pruneInterval))
		}
		if check && !now.Before(nextCheck) {
			if _, err := s.Checkpoint(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("request log checkpoint failed", "path", s.path, "err", err)
			}
			nextCheck = now.Add(jitter(s.opts.checkpointInterval))
		}
		cancel()
	}
}
