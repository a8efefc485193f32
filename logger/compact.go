package logger

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strings"
	"time"
)

// Each batch writes the per-service rollups (service_rollups) at every
// level: they have a few keys per service. Of the per-route rollups
// (rollups), which have many, it writes the minutes; their hours and days
// are compacted from the minutes once the hour (or day) is over, by
// CompactRollups, one service-hour per transaction. rollup_marks holds, per
// service, the first hour and the first day not compacted yet. A row that
// arrives for an hour already compacted (long queued, timed before a clock
// step, backfilled) is added to the route's hour and day rows by its own
// batch, so that for every service the route rollups of the hours before
// its mark and of the days before its day mark are always complete. The
// per-route queries read hours and days only below the marks, and minutes
// above them.

// CompactRollups builds, for every service, the hour rollups of the hours
// that are over and the day rollups of the days that are over, from the
// finer ones, one service-hour (or service-day) per transaction, and
// returns how many it built. Every Store runs it in the background every
// minute; it is idempotent, and many processes may run it at once.
func (s *Store) CompactRollups(ctx context.Context) (int, error) {
	rows, err := s.wdb.QueryContext(ctx, `SELECT service FROM rollup_marks`)
	if err != nil {
		return 0, fmt.Errorf("logger: compact rollups of %s: %w", s.path, err)
	}
	var services []string
	for rows.Next() {
		var svc string
		if err := rows.Scan(&svc); err != nil {
			rows.Close()
			return 0, fmt.Errorf("logger: compact rollups of %s: %w", s.path, err)
		}
		services = append(services, svc)
	}
	rows.Close()
	n := 0
	for _, svc := range services {
		for {
			began := time.Now()
			done, err := s.compactStep(ctx, svc, time.Now().Unix())
			if err != nil {
				return n, fmt.Errorf("logger: compact rollups of %s, service %s: %w", s.path, svc, err)
			}
			if !done {
				break
			}
			n++
			if err := pause(ctx, time.Since(began)); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// pause waits for d, giving the write lock to the writers for as long as
// the last step held it.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// compactStep compacts the next hour, or else the next day, of service
// that is over, reporting whether there was one.
func (s *Store) compactStep(ctx context.Context, service string, now int64) (bool, error) {
	tx, err := s.wdb.BeginTx(ctx, nil) // BEGIN IMMEDIATE
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	st := &sqlRollups{ctx: ctx, tx: tx}
	defer st.close()
	m, found, err := st.marks(service)
	if err != nil || !found {
		return false, err
	}
	switch {
	case m.hours+levelHour <= now:
		if err := compactRange(st, service, levelMinute, levelHour, m.hours); err != nil {
			return false, err
		}
		// Skip the hours without traffic up to the next minute that has some.
		next, err := nextRow(st, service, levelMinute, m.hours+levelHour)
		if err != nil {
			return false, err
		}
		m.hours = min(floorTo(next, levelHour), floorTo(now, levelHour))
	case m.days+levelDay <= m.hours:
		if err := compactRange(st, service, levelHour, levelDay, m.days); err != nil {
			return false, err
		}
		next, err := nextRow(st, service, levelHour, m.days+levelDay)
		if err != nil {
			return false, err
		}
		m.days = min(floorTo(next, levelDay), floorTo(m.hours, levelDay))
	default:
		return false, nil
	}
	if err := st.setMarks(service, m); err != nil {
		return false, err
	}
	return true, tx.Commit()
}

// nextRow returns the start of service's first rollup of level at or after
// from, or the largest time when there is none.
func nextRow(st *sqlRollups, service string, level, from int64) (int64, error) {
	var next sql.NullInt64
	err := st.tx.QueryRowContext(st.ctx, `SELECT min(ts) FROM rollups WHERE level = ? AND service = ? AND ts >= ?`,
		level, service, from).Scan(&next)
	if err != nil || !next.Valid {
		return math.MaxInt64, err
	}
	return next.Int64, nil
}

// compactRange writes the route rollups of level to at start as the sum of
// service's route rollups of level from within it.
func compactRange(st *sqlRollups, service string, from, to, start int64) error {
	rows, err := st.tx.QueryContext(st.ctx, `SELECT method, route, status, count, failed, bytes_in, bytes_out, duration_us, max_us, hist
		FROM rollups WHERE level = ? AND service = ? AND ts >= ? AND ts < ?`, from, service, start, start+to)
	if err != nil {
		return err
	}
	sums := map[rollupKey]*rollupVal{}
	var raw []byte
	for rows.Next() {
		k := rollupKey{level: to, ts: start, service: service}
		var v rollupVal
		if err := rows.Scan(&k.method, &k.route, &k.status, &v.count, &v.failed, &v.bytesIn, &v.bytesOut, &v.durUS, &v.maxUS, &raw); err != nil {
			rows.Close()
			return err
		}
		if err := v.decode(raw); err != nil {
			rows.Close()
			return fmt.Errorf("%s rollup at or after %s: %w: rebuild them with `flotilla rollups rebuild`",
				levelName(from), time.Unix(start, 0).UTC().Format(time.DateTime), err)
		}
		if acc := sums[k]; acc != nil {
			acc.merge(&v)
		} else {
			sums[k] = &v
		}
	}
	if err := rows.Close(); err != nil {
		return err
	}
	for k, v := range sums {
		if err := st.save(&k, v); err != nil {
			return err
		}
	}
	return nil
}

// piece is one level's rollups over [from, to) that a window reads.
type piece struct{ level, from, to int64 }

// plan returns the rollups that make up the window from a (a whole minute)
// on: day rollups where whole days are compacted (below the day mark dw),
// hour rollups where whole hours are (below the hour mark hw), minute
// rollups for the rest. coarsest bounds the level, for charts whose steps
// are finer than a day.
func plan(a, coarsest, hw, dw int64) []piece {
	const open = math.MaxInt64
	h0, d0 := ceilTo(a, levelHour), ceilTo(a, levelDay)
	if coarsest < levelHour || h0 >= hw {
		return []piece{{levelMinute, a, open}}
	}
	out := []piece{{levelMinute, a, h0}, {levelMinute, hw, open}}
	if coarsest >= levelDay && d0 < dw {
		return append(out, piece{levelHour, h0, d0}, piece{levelDay, d0, dw}, piece{levelHour, dw, hw})
	}
	return append(out, piece{levelHour, h0, hw})
}

// planQuery returns the query of the rows plan names, in table, for the
// services (all when none).
func planQuery(table string, pieces []piece, services []string) (string, []any) {
	filter, fargs := serviceFilter(services)
	var (
		parts []string
		args  []any
	)
	for _, p := range pieces {
		if p.from >= p.to {
			continue
		}
		parts = append(parts, rollupSelect+fromRollups(table, services)+` WHERE level = ? AND ts >= ? AND ts < ?`+filter)
		args = append(append(args, p.level, p.from, p.to), fargs...)
	}
	return strings.Join(parts, " UNION ALL "), args
}

// marks returns the hour and day marks of table that hold for every one of
// the services (all when none): the smallest. The service rollups are
// written whole at every level: their marks are the end of time.
func (r *Reader) marks(ctx context.Context, table string, services []string) (hw, dw int64, err error) {
	if table == rollupTables[1] {
		return math.MaxInt64, math.MaxInt64, nil
	}
	filter, args := serviceFilter(services)
	var h, d sql.NullInt64
	err = r.db.QueryRowContext(ctx, `SELECT min(hours), min(days) FROM rollup_marks WHERE 1`+filter, args...).Scan(&h, &d)
	if err != nil {
		return 0, 0, r.explainRollups(ctx, err)
	}
	if !h.Valid { // no rollups at all
		return 0, 0, nil
	}
	return h.Int64, d.Int64, nil
}
