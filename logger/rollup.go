package logger

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Rollup levels: the width of a rollup bucket, in seconds.
const (
	levelMinute = 60
	levelHour   = 3600
	levelDay    = 86400
)

var levels = [...]int64{levelMinute, levelHour, levelDay}

// Retention of the rollup levels. Day rows are kept for the Store's rollup
// retention (DefaultRollupRetention); minute and hour rows for at most
// these, as only the edges of a window and the finer charts need them, and
// never before they are compacted into the next level.
const (
	// MinuteRollupRetention is how long per-minute rollups are kept: the
	// charts of the last hours, per minute, and the burn rates.
	MinuteRollupRetention = 48 * time.Hour
	// HourRollupRetention is how long per-hour rollups are kept.
	HourRollupRetention = 35 * 24 * time.Hour
)

// ErrRollupsDamaged is returned by the rollup queries for a rollup row that
// does not add up (a histogram that is not valid, or whose total is not the
// row's count). The rows are never used as they are: rebuild them from the
// raw rows with Store.RebuildRollups or `flotilla rollups rebuild`.
var ErrRollupsDamaged = errors.New("rollups are damaged")

// rollupKey names one rollup row.
type rollupKey struct {
	table                  int // 0: rollups, 1: service_rollups
	level, ts              int64
	service, method, route string
	status                 int
}

// rollupVal is what a rollup row adds up.
type rollupVal struct {
	count, failed, bytesIn, bytesOut, durUS, maxUS int64
	hist                                           hist
}

func (v *rollupVal) merge(o *rollupVal) {
	v.count += o.count
	v.failed += o.failed
	v.bytesIn += o.bytesIn
	v.bytesOut += o.bytesOut
	v.durUS += o.durUS
	v.maxUS = max(v.maxUS, o.maxUS)
	v.hist.merge(o.hist)
}

// decode reads a stored histogram into v (reusing its space) and checks
// that the row adds up: anything else is ErrRollupsDamaged.
func (v *rollupVal) decode(raw []byte) error {
	var err error
	if v.hist, err = parseHist(v.hist, raw); err != nil {
		return fmt.Errorf("%w: %w", ErrRollupsDamaged, err)
	}
	return v.check()
}

// check reports whether the row adds up: its histogram counts each of its
// requests once.
func (v *rollupVal) check() error {
	if n := v.hist.total(); n != v.count {
		return fmt.Errorf("%w: histogram holds %d requests, count says %d", ErrRollupsDamaged, n, v.count)
	}
	return nil
}

// rollupAgg sums a batch of rows per minute and key in memory, so that the
// batch costs a few upserts per key instead of work per row.
type rollupAgg struct {
	minutes map[rollupKey]*rollupVal
}

// rollupMethod keeps the standard methods in the rollup keys as they are;
// any other is "_OTHER", so that no client can grow the keys' number.
func rollupMethod(m string) string {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH":
		return m
	}
	return "_OTHER"
}

// add counts one row that started at tsUS (Unix microseconds). Its minute is
// the one it was logged in, but never later than nowSec: a clock stepped
// back after a row was timed puts the row in the current minute, never in a
// minute still to come.
func (a *rollupAgg) add(tsUS int64, service, method, route string, status int, durUS, bytesIn, bytesOut int64, failed bool, nowSec int64) {
	if a.minutes == nil {
		a.minutes = make(map[rollupKey]*rollupVal)
	}
	sec := tsUS / 1_000_000
	if tsUS < 0 && tsUS%1_000_000 != 0 {
		sec--
	}
	sec = min(sec, nowSec)
	k := rollupKey{level: levelMinute, ts: floorTo(sec, levelMinute), service: service,
		method: rollupMethod(method), route: route, status: status}
	v := a.minutes[k]
	if v == nil {
		v = &rollupVal{}
		a.minutes[k] = v
	}
	durUS = max(durUS, 0)
	v.count++
	if failed {
		v.failed++
	}
	v.bytesIn += max(bytesIn, 0)
	v.bytesOut += max(bytesOut, 0)
	v.durUS += durUS
	v.maxUS = max(v.maxUS, durUS)
	v.hist.add(histBucket(durUS), 1)
}

// addRecords counts a batch of normalized records.
func (a *rollupAgg) addRecords(recs []Record, now time.Time) {
	nowSec := now.Unix()
	for i := range recs {
		r := &recs[i]
		a.add(r.Time.UnixMicro(), r.Service, r.Method, r.Route, r.Status, r.Duration.Microseconds(),
			r.BytesIn, r.BytesOut, r.Error != "", nowSec)
	}
}

// marks are how far a service's rollups are compacted: its hour rollups
// are complete for every hour before hours, its day rollups for every day
// before days. Minute rollups are always complete: each batch writes them.
type marks struct{ hours, days int64 }

// rows returns the batch's sums. Per service (service_rollups, a few keys
// per service): each minute's, hour's and day's, so that the fleet views
// read whole hours and days up to now. Per route (rollups): each minute's,
// and, for a minute in an hour (or a day) the service's route rollups are
// already compacted past, the hour's (and day's) it adds to, so that a late
// row (long queued, or timed before a clock step, or backfilled) is counted
// at every level.
func (a *rollupAgg) rows(marksOf func(service string) marks) map[rollupKey]*rollupVal {
	out := make(map[rollupKey]*rollupVal, len(a.minutes)*2)
	for k, v := range a.minutes {
		m := marksOf(k.service)
		for i := range 2 * len(levels) {
			l := levels[i%len(levels)]
			c := k
			c.level, c.ts = l, floorTo(k.ts, l)
			if i >= len(levels) {
				c.table, c.method, c.route = 1, "", ""
			} else if (l == levelHour && c.ts >= m.hours) || (l == levelDay && c.ts >= m.days) {
				continue // compaction will count it
			}
			if acc := out[c]; acc != nil {
				acc.merge(v)
			} else {
				cp := *v
				cp.hist = append(hist(nil), v.hist...)
				out[c] = &cp
			}
		}
	}
	return out
}

func (a *rollupAgg) reset() { clear(a.minutes) }

// firstMinute returns the earliest minute of service in the batch.
func (a *rollupAgg) firstMinute(service string) int64 {
	first := int64(math.MaxInt64)
	for k := range a.minutes {
		if k.service == service {
			first = min(first, k.ts)
		}
	}
	return first
}

// services returns the services of the batch.
func (a *rollupAgg) services() []string {
	seen := map[string]bool{}
	var out []string
	for k := range a.minutes {
		if !seen[k.service] {
			seen[k.service] = true
			out = append(out, k.service)
		}
	}
	return out
}

// rollupTx reads and writes rollup rows inside a write transaction.
type rollupTx interface {
	// marks returns how far service's rollups are compacted, reporting
	// whether it has marks yet.
	marks(service string) (marks, bool, error)
	// setMarks stores them.
	setMarks(service string, m marks) error
	// load fills v with the stored row of k, reporting whether there is
	// one. A row that cannot be read or does not add up is
	// ErrRollupsDamaged.
	load(k *rollupKey, v *rollupVal) (bool, error)
	// save stores v as the row of k.
	save(k *rollupKey, v *rollupVal) error
}

// applyRollups adds the batch's sums to the stored rows. A service seen for
// the first time gets marks at its first minute: nothing before it needs
// compacting. A stored row that is damaged is left as it is, for the
// queries to refuse and a rebuild to replace, and counted in the returned
// number.
func applyRollups(tx rollupTx, a *rollupAgg) (damaged int, err error) {
	byService := map[string]marks{}
	for _, svc := range a.services() {
		m, found, err := tx.marks(svc)
		if err != nil {
			return 0, err
		}
		if !found {
			first := a.firstMinute(svc)
			m = marks{hours: floorTo(first, levelHour), days: floorTo(first, levelDay)}
			if err := tx.setMarks(svc, m); err != nil {
				return 0, err
			}
		}
		byService[svc] = m
	}
	var cur rollupVal
	for k, v := range a.rows(func(s string) marks { return byService[s] }) {
		cur.count, cur.failed, cur.bytesIn, cur.bytesOut, cur.durUS, cur.maxUS = 0, 0, 0, 0, 0, 0
		cur.hist = cur.hist[:0]
		_, err := tx.load(&k, &cur)
		if errors.Is(err, ErrRollupsDamaged) {
			damaged++
			continue
		}
		if err != nil {
			return damaged, err
		}
		cur.merge(v) // into the stored row, or into nothing
		if err := tx.save(&k, &cur); err != nil {
			return damaged, err
		}
	}
	return damaged, nil
}

// floorTo rounds sec down to a multiple of step.
func floorTo(sec, step int64) int64 {
	r := sec % step
	if r < 0 {
		r += step
	}
	return sec - r
}

// ceilTo rounds sec up to a multiple of step.
func ceilTo(sec, step int64) int64 {
	f := floorTo(sec, step)
	if f == sec {
		return sec
	}
	return f + step
}

// rollupLoadSQL and rollupSaveSQL read and write one row of a rollup
// table.
func rollupLoadSQL(table string) string {
	return `SELECT count, failed, bytes_in, bytes_out, duration_us, max_us, hist FROM ` + table + `
		WHERE level = ? AND ts = ? AND service = ? AND method = ? AND route = ? AND status = ?`
}

const (
	marksLoadSQL = `SELECT hours, days FROM rollup_marks WHERE service = ?`
	marksSaveSQL = `INSERT OR REPLACE INTO rollup_marks (service, hours, days) VALUES (?, ?, ?)`
)

func rollupSaveSQL(table string) string {
	return `INSERT OR REPLACE INTO ` + table + ` (level, ts, service, method, route, status,
		count, failed, bytes_in, bytes_out, duration_us, max_us, hist) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
}
