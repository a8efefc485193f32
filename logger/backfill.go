package logger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// A file written before the rollups existed, or whose rollups are rebuilt,
// has raw rows that no rollup counts yet. The rollup_backfill row names
// them: the rows with next_id <= id <= end_id that started at or after
// since (Unix seconds). Rows committed after it was written were rolled up
// by their own batch. Every Store with a writer rolls the named rows up in
// the background, in transactions of a few thousand rows, each ending by
// moving next_id on, so that many processes share the work without
// counting a row twice, and none holds the write lock for long.

// backfillTarget is how long one backfill transaction aims to hold the
// write lock; the number of rows per transaction adapts to it, starting
// small and at most doubling from one to the next.
const backfillTarget = 30 * time.Millisecond

// nextChunk returns the rows of the next backfill step after one of n rows
// that took took.
func nextChunk(n int, took time.Duration) int {
	if took <= 0 {
		return min(2*n, 65536)
	}
	return int(min(max(float64(n)*float64(backfillTarget)/float64(took), 256), float64(2*n), 65536))
}

// Backfill rolls up the raw rows that no rollup counts yet (see
// RebuildRollups), in transactions that each hold the write lock for about
// 30 ms, until none is left or ctx ends. It returns how many rows it
// rolled up. Every Store runs it in the background after Open and after
// RebuildRollups; calling it waits for the work instead.
func (s *Store) Backfill(ctx context.Context) (int64, error) {
	var total int64
	damaged := 0
	defer func() {
		if damaged > 0 {
			s.log.Warn("request log: damaged rollup rows left as they are; rebuild them with flotilla rollups rebuild",
				"path", s.path, "rows", damaged)
		}
	}()
	n := 256
	for {
		began := time.Now()
		done, rows, d, err := s.backfillStep(ctx, n)
		total += rows
		damaged += d
		if err != nil {
			return total, fmt.Errorf("logger: backfill rollups of %s: %w", s.path, err)
		}
		if done {
			return total, nil
		}
		took := time.Since(began)
		n = nextChunk(n, took)
		// Give the lock to the writers for as long as the step held it.
		t := time.NewTimer(took)
		select {
		case <-ctx.Done():
			t.Stop()
			return total, ctx.Err()
		case <-t.C:
		}
	}
}

// backfillPending reports whether raw rows wait to be rolled up, without
// taking the write lock.
func backfillPending(ctx context.Context, db *sql.DB) (pending int64, since time.Time, err error) {
	var next, end, sinceSec int64
	err = db.QueryRowContext(ctx, `SELECT next_id, end_id, since FROM rollup_backfill WHERE id = 1`).Scan(&next, &end, &sinceSec)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, err
	}
	return max(end-next+1, 0), time.Unix(sinceSec, 0), nil
}

// backfillStep rolls up at most n of the pending rows in one transaction,
// and says how many damaged rollup rows it left as they were.
func (s *Store) backfillStep(ctx context.Context, n int) (done bool, rows int64, damaged int, err error) {
	tx, err := s.wdb.BeginTx(ctx, nil) // BEGIN IMMEDIATE
	if err != nil {
		return false, 0, 0, err
	}
	defer tx.Rollback()
	var next, end, since int64
	err = tx.QueryRowContext(ctx, `SELECT next_id, end_id, since FROM rollup_backfill WHERE id = 1`).Scan(&next, &end, &since)
	if errors.Is(err, sql.ErrNoRows) {
		return true, 0, 0, nil
	}
	if err != nil {
		return false, 0, 0, err
	}
	hi := min(next+int64(n)-1, end)
	var agg rollupAgg
	if next <= hi {
		rs, err := tx.QueryContext(ctx, `SELECT ts, service, method, route, status, duration_us, bytes_in, bytes_out, error <> ''
			FROM requests WHERE id BETWEEN ? AND ? AND ts >= ?`, next, hi, since*1_000_000)
		if err != nil {
			return false, 0, 0, err
		}
		nowSec := time.Now().Unix()
		for rs.Next() {
			var (
				ts, dur, in, out   int64
				svc, method, route string
				status             int
				failed             bool
			)
			if err := rs.Scan(&ts, &svc, &method, &route, &status, &dur, &in, &out, &failed); err != nil {
				rs.Close()
				return false, 0, 0, err
			}
			agg.add(ts, svc, method, route, status, dur, in, out, failed, nowSec)
			rows++
		}
		if err := rs.Close(); err != nil {
			return false, 0, 0, err
		}
		st := &sqlRollups{ctx: ctx, tx: tx}
		defer st.close()
		if damaged, err = applyRollups(st, &agg); err != nil {
			return false, 0, 0, err
		}
	}
	if hi >= end {
		_, err = tx.ExecContext(ctx, `DELETE FROM rollup_backfill WHERE id = 1`)
	} else {
		_, err = tx.ExecContext(ctx, `UPDATE rollup_backfill SET next_id = ? WHERE id = 1`, hi+1)
	}
	if err != nil {
		return false, 0, 0, err
	}
	return hi >= end, rows, damaged, tx.Commit()
}

// RebuildRollups replaces the rollups that the raw rows can rebuild, for
// rollups found damaged (ErrRollupsDamaged) or doubted: those of every day
// (UTC) from the first raw row's on, or from the next day's when older
// rollups show that retention deleted part of that first day's raw rows.
// Older rollups, whose raw rows are gone, are kept. In one transaction it deletes them and
// schedules the raw rows for the backfill, which every running Store then
// does in the background, in short transactions; the request path never
// waits for it. Until it is done, the rebuilt days count less than they
// should: Reader.Backfilling says how many rows are left.
//
// It returns how many raw rows it scheduled. From a shell: flotilla rollups
// rebuild.
func (s *Store) RebuildRollups(ctx context.Context) (int64, error) {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("logger: rebuild rollups of %s: %w", s.path, err)
	}
	defer tx.Rollback()
	var minTS, minID, maxID sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT min(ts), min(id), max(id) FROM requests`).Scan(&minTS, &minID, &maxID); err != nil {
		return 0, fmt.Errorf("logger: rebuild rollups of %s: %w", s.path, err)
	}
	if !minTS.Valid {
		return 0, tx.Commit() // no raw rows: nothing can be rebuilt
	}
	// The raw rows hold the whole history from their first day on, unless
	// rollups older than that day show that retention deleted earlier raw
	// rows: then the first day is partial, and its rollups are kept.
	from := floorTo(floorTo(minTS.Int64, 1_000_000)/1_000_000, levelDay)
	var oldest sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT min(ts) FROM service_rollups WHERE level = 86400`).Scan(&oldest); err != nil {
		return 0, fmt.Errorf("logger: rebuild rollups of %s: %w", s.path, err)
	}
	if oldest.Valid && oldest.Int64 < from {
		from += levelDay
	}
	stmts := []struct {
		q    string
		args []any
	}{
		{`DELETE FROM rollups WHERE ts >= ?`, []any{from}},
		{`DELETE FROM service_rollups WHERE ts >= ?`, []any{from}},
		{`UPDATE rollup_marks SET hours = min(hours, ?), days = min(days, ?)`, []any{from, from}},
		{`INSERT OR REPLACE INTO rollup_backfill (id, next_id, end_id, since) VALUES (1, ?, ?, ?)`, []any{minID.Int64, maxID.Int64, from}},
	}
	for _, st := range stmts {
		if _, err := tx.ExecContext(ctx, st.q, st.args...); err != nil {
			return 0, fmt.Errorf("logger: rebuild rollups of %s: %w", s.path, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("logger: rebuild rollups of %s: %w", s.path, err)
	}
	s.wakeBackfill()
	return maxID.Int64 - minID.Int64 + 1, nil
}

// Backfilling returns how many raw rows still wait to be rolled up (after a
// migration from a file without rollups, or RebuildRollups), and from when:
// until it is zero, rollup queries over windows after that time count less
// than the raw rows hold.
func (r *Reader) Backfilling(ctx context.Context) (rows int64, since time.Time, err error) {
	rows, since, err = backfillPending(ctx, r.db)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("logger: backfill state: %w", r.explainRollups(ctx, err))
	}
	return rows, since, nil
}

// runBackfill does the pending backfill at start, whenever RebuildRollups
// asks, and every minute (another process may have asked), and compacts the
// rollups every minute, until the Store closes.
func (s *Store) runBackfill() {
	defer close(s.backfillEnd)
	if s.opts.noRollupTasks {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		if n, _, err := backfillPending(ctx, s.wdb); err == nil && n > 0 {
			if _, err := s.Backfill(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("request log: rollup backfill failed; retrying in a minute", "path", s.path, "err", err)
			}
		}
		if _, err := s.CompactRollups(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("request log: rollup compaction failed; retrying in a minute", "path", s.path, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-s.backfillWake:
		case <-tick.C:
		}
	}
}

func (s *Store) wakeBackfill() {
	select {
	case s.backfillWake <- struct{}{}:
	default:
	}
}

// sqlRollups is rollupTx inside a database/sql transaction.
type sqlRollups struct {
	ctx            context.Context
	tx             *sql.Tx
	loadSt, saveSt [2]*sql.Stmt // by rollupKey.table
	raw            []byte
}

func (t *sqlRollups) prepare() error {
	if t.loadSt[0] != nil {
		return nil
	}
	for i, table := range rollupTables {
		var err error
		if t.loadSt[i], err = t.tx.PrepareContext(t.ctx, rollupLoadSQL(table)); err != nil {
			return err
		}
		if t.saveSt[i], err = t.tx.PrepareContext(t.ctx, rollupSaveSQL(table)); err != nil {
			return err
		}
	}
	return nil
}

func (t *sqlRollups) close() {
	for _, st := range append(t.loadSt[:], t.saveSt[:]...) {
		if st != nil {
			st.Close()
		}
	}
}

func (t *sqlRollups) load(k *rollupKey, v *rollupVal) (bool, error) {
	if err := t.prepare(); err != nil {
		return false, err
	}
	err := t.loadSt[k.table].QueryRowContext(t.ctx, k.level, k.ts, k.service, k.method, k.route, k.status).
		Scan(&v.count, &v.failed, &v.bytesIn, &v.bytesOut, &v.durUS, &v.maxUS, &t.raw)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, v.decode(t.raw)
}

func (t *sqlRollups) marks(service string) (marks, bool, error) {
	var m marks
	err := t.tx.QueryRowContext(t.ctx, marksLoadSQL, service).Scan(&m.hours, &m.days)
	if errors.Is(err, sql.ErrNoRows) {
		return m, false, nil
	}
	return m, err == nil, err
}

func (t *sqlRollups) setMarks(service string, m marks) error {
	_, err := t.tx.ExecContext(t.ctx, marksSaveSQL, service, m.hours, m.days)
	return err
}

func (t *sqlRollups) save(k *rollupKey, v *rollupVal) error {
	if err := t.prepare(); err != nil {
		return err
	}
	_, err := t.saveSt[k.table].ExecContext(t.ctx, k.level, k.ts, k.service, k.method, k.route, k.status,
		v.count, v.failed, v.bytesIn, v.bytesOut, v.durUS, v.maxUS, string(v.hist.appendJSON(nil)))
	return err
}
