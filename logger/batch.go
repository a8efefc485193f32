package logger

/*
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// The SQLite C API, linked from the amalgamation that go-sqlite3 builds into
// every binary that imports it. Only what the batch writer needs.
typedef struct sqlite3 sqlite3;
typedef struct sqlite3_stmt sqlite3_stmt;
extern int sqlite3_open_v2(const char*, sqlite3**, int, const char*);
extern int sqlite3_close_v2(sqlite3*);
extern int sqlite3_busy_timeout(sqlite3*, int);
extern int sqlite3_exec(sqlite3*, const char*, void*, void*, char**);
extern int sqlite3_prepare_v2(sqlite3*, const char*, int, sqlite3_stmt**, const char**);
extern int sqlite3_bind_int64(sqlite3_stmt*, int, long long);
extern int sqlite3_bind_text(sqlite3_stmt*, int, const char*, int, void(*)(void*));
extern int sqlite3_step(sqlite3_stmt*);
extern int sqlite3_reset(sqlite3_stmt*);
extern int sqlite3_finalize(sqlite3_stmt*);
extern int sqlite3_extended_errcode(sqlite3*);
extern const char *sqlite3_errmsg(sqlite3*);
extern int sqlite3_get_autocommit(sqlite3*);

#define FL_OPEN_READWRITE 0x00000002
#define FL_OPEN_NOMUTEX   0x00008000
#define FL_DONE 101

extern int sqlite3_busy_handler(sqlite3*, int(*)(void*, int), void*);
extern int sqlite3_sleep(int);

// fl_busy is the writer's busy handler: SQLite's own schedule of waits up to
// the busy timeout, ended early once stop is set (when Close gives up).
typedef struct {
	int timeout_ms;
	int stop;
} fl_busy_state;

static int fl_busy(void *p, int count) {
	static const int delays[] = {1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100};
	static const int totals[] = {0, 1, 3, 8, 18, 33, 53, 78, 103, 128, 178, 228};
	fl_busy_state *s = p;
	if (__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) return 0;
	int n = sizeof(delays) / sizeof(delays[0]);
	int delay = count < n ? delays[count] : delays[n - 1];
	int prior = count < n ? totals[count] : totals[n - 1] + delays[n - 1] * (count - (n - 1));
	if (prior + delay > s->timeout_ms) {
		delay = s->timeout_ms - prior;
		if (delay <= 0) return 0;
	}
	sqlite3_sleep(delay);
	return !__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE);
}

static void fl_stop(fl_busy_state *s) { __atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE); }

static int fl_open(const char *path, fl_busy_state *busy, sqlite3 **db) {
	int rc = sqlite3_open_v2(path, db, FL_OPEN_READWRITE | FL_OPEN_NOMUTEX, 0);
	if (rc == 0) rc = sqlite3_busy_handler(*db, fl_busy, busy);
	return rc;
}

static int fl_exec(sqlite3 *db, const char *sql) {
	return sqlite3_exec(db, sql, 0, 0, 0);
}

// fl_insert binds and steps one row per 14 slots of meta. Integer columns
// hold their value; text columns hold offset<<32 | length into buf. The text
// is bound SQLITE_STATIC: buf outlives the call.
static int fl_insert(sqlite3 *db, sqlite3_stmt *st, const char *buf, const int64_t *meta, int rows, int ncol, uint32_t textmask) {
	for (int r = 0; r < rows; r++) {
		const int64_t *m = meta + (int64_t)r * ncol;
		for (int c = 0; c < ncol; c++) {
			int rc;
			if (textmask & (1u << c)) {
				rc = sqlite3_bind_text(st, c + 1, buf + (m[c] >> 32), (int)(m[c] & 0xffffffff), 0);
			} else {
				rc = sqlite3_bind_int64(st, c + 1, m[c]);
			}
			if (rc != 0) {
				sqlite3_reset(st);
				return rc;
			}
		}
		int rc = sqlite3_step(st);
		if (rc != FL_DONE) {
			sqlite3_reset(st);
			return sqlite3_extended_errcode(db);
		}
		sqlite3_reset(st);
	}
	return 0;
}

#define FL_ROW 100
extern long long sqlite3_column_int64(sqlite3_stmt*, int);
extern const unsigned char *sqlite3_column_text(sqlite3_stmt*, int);
extern int sqlite3_column_bytes(sqlite3_stmt*, int);

// fl_bind_key binds a rollup's key: k holds level, ts and status; the texts
// are service, method and route. Bound SQLITE_STATIC: the caller steps and
// resets the statement before it returns.
static int fl_bind_key(sqlite3_stmt *st, const int64_t *k, const char *svc, int svcn, const char *m, int mn, const char *r, int rn) {
	int rc;
	if ((rc = sqlite3_bind_int64(st, 1, k[0])) != 0) return rc;
	if ((rc = sqlite3_bind_int64(st, 2, k[1])) != 0) return rc;
	if ((rc = sqlite3_bind_text(st, 3, svc, svcn, 0)) != 0) return rc;
	if ((rc = sqlite3_bind_text(st, 4, m, mn, 0)) != 0) return rc;
	if ((rc = sqlite3_bind_text(st, 5, r, rn, 0)) != 0) return rc;
	return sqlite3_bind_int64(st, 6, k[2]);
}

// fl_rollup_load reads the row of a key into v (six integers) and its
// histogram into hist (at most cap bytes; *histn is its length, or -1 when
// it does not fit). It returns 0 with *found set, or an error code.
static int fl_rollup_load(sqlite3 *db, sqlite3_stmt *st, const int64_t *k, const char *svc, int svcn, const char *m, int mn, const char *r, int rn,
		int64_t *v, char *hist, int cap, int *histn, int *found) {
	int rc = fl_bind_key(st, k, svc, svcn, m, mn, r, rn);
	if (rc != 0) { sqlite3_reset(st); return rc; }
	rc = sqlite3_step(st);
	*found = 0;
	if (rc == FL_ROW) {
		*found = 1;
		for (int i = 0; i < 6; i++) v[i] = sqlite3_column_int64(st, i);
		const unsigned char *h = sqlite3_column_text(st, 6);
		int n = sqlite3_column_bytes(st, 6);
		if (h == 0 || n > cap) {
			*histn = -1;
		} else {
			memcpy(hist, h, n);
			*histn = n;
		}
		rc = FL_DONE;
	}
	sqlite3_reset(st);
	return rc == FL_DONE ? 0 : sqlite3_extended_errcode(db);
}

// fl_marks_load reads a service's compaction marks into m (hours, days).
static int fl_marks_load(sqlite3 *db, sqlite3_stmt *st, const char *svc, int svcn, int64_t *m, int *found) {
	int rc = sqlite3_bind_text(st, 1, svc, svcn, 0);
	if (rc != 0) { sqlite3_reset(st); return rc; }
	rc = sqlite3_step(st);
	*found = 0;
	if (rc == FL_ROW) {
		*found = 1;
		m[0] = sqlite3_column_int64(st, 0);
		m[1] = sqlite3_column_int64(st, 1);
		rc = FL_DONE;
	}
	sqlite3_reset(st);
	return rc == FL_DONE ? 0 : sqlite3_extended_errcode(db);
}

// fl_marks_save stores a service's compaction marks.
static int fl_marks_save(sqlite3 *db, sqlite3_stmt *st, const char *svc, int svcn, int64_t hours, int64_t days) {
	int rc = sqlite3_bind_text(st, 1, svc, svcn, 0);
	if (rc == 0) rc = sqlite3_bind_int64(st, 2, hours);
	if (rc == 0) rc = sqlite3_bind_int64(st, 3, days);
	if (rc != 0) { sqlite3_reset(st); return rc; }
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == FL_DONE ? 0 : sqlite3_extended_errcode(db);
}

// fl_rollup_save stores a key's row: v holds its six integers.
static int fl_rollup_save(sqlite3 *db, sqlite3_stmt *st, const int64_t *k, const char *svc, int svcn, const char *m, int mn, const char *r, int rn,
		const int64_t *v, const char *hist, int histn) {
	int rc = fl_bind_key(st, k, svc, svcn, m, mn, r, rn);
	for (int i = 0; rc == 0 && i < 6; i++) rc = sqlite3_bind_int64(st, 7 + i, v[i]);
	if (rc == 0) rc = sqlite3_bind_text(st, 13, hist, histn, 0);
	if (rc != 0) { sqlite3_reset(st); return rc; }
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == FL_DONE ? 0 : sqlite3_extended_errcode(db);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"strconv"
	"time"
	"unsafe"

	"github.com/mattn/go-sqlite3"
)

// textColumns has bit i set when column i of columns is TEXT.
const textColumns = 1<<1 | 1<<2 | 1<<3 | 1<<4 | 1<<9 | 1<<10 | 1<<11 | 1<<12 | 1<<13

// batchConn is the writer's own SQLite connection. It inserts a whole batch
// with one cgo call: the rows are packed into one byte buffer and one slice
// of integers, which costs a fraction of binding fourteen values per row
// through database/sql. It is used by the writer goroutine only.
type batchConn struct {
	db   *C.sqlite3
	busy *C.fl_busy_state // C memory: SQLite keeps a pointer to it
	id   fileID           // the file it has open
	stmt *C.sqlite3_stmt
	buf  []byte
	meta []int64

	loadSt, saveSt [2]*C.sqlite3_stmt // rollup rows, by rollupKey.table
	marksLoad      *C.sqlite3_stmt
	marksSave      *C.sqlite3_stmt
	agg            rollupAgg
	hbuf           []byte // a stored histogram, read
	jbuf           []byte // a histogram to store
	damaged        int    // rollup rows found damaged by the last insert, left as they were
}

// sqliteErr returns the error for result code rc as a go-sqlite3 Error, so
// callers test it the same way as errors from database/sql.
func (b *batchConn) err(op string, rc C.int) error {
	if rc == 0 {
		return nil
	}
	se := sqlite3.Error{Code: sqlite3.ErrNo(rc & 0xff), ExtendedCode: sqlite3.ErrNoExtended(rc)}
	msg := ""
	if b.db != nil {
		msg = C.GoString(C.sqlite3_errmsg(b.db))
	}
	return fmt.Errorf("%s: %w (%s)", op, se, msg)
}

func openBatchConn(path string, o *options) (*batchConn, error) {
	b := &batchConn{busy: (*C.fl_busy_state)(C.calloc(1, C.sizeof_fl_busy_state))}
	b.busy.timeout_ms = C.int(o.busyTimeout.Milliseconds())
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	if rc := C.fl_open(cpath, b.busy, &b.db); rc != 0 {
		err := b.err("open", rc)
		b.close()
		return nil, err
	}
	b.id, _ = statID(path)
	if err := b.exec("PRAGMA synchronous=NORMAL; PRAGMA journal_size_limit=" + strconv.FormatInt(o.journalSizeLimit, 10)); err != nil {
		b.close()
		return nil, err
	}
	for _, p := range []struct {
		sql  string
		stmt **C.sqlite3_stmt
	}{{insertSQL(1), &b.stmt},
		{rollupLoadSQL(rollupTables[0]), &b.loadSt[0]}, {rollupSaveSQL(rollupTables[0]), &b.saveSt[0]},
		{rollupLoadSQL(rollupTables[1]), &b.loadSt[1]}, {rollupSaveSQL(rollupTables[1]), &b.saveSt[1]},
		{marksLoadSQL, &b.marksLoad}, {marksSaveSQL, &b.marksSave}} {
		q := C.CString(p.sql)
		rc := C.sqlite3_prepare_v2(b.db, q, -1, p.stmt, nil)
		C.free(unsafe.Pointer(q))
		if rc != 0 {
			err := b.err("prepare", rc)
			b.close()
			return nil, err
		}
	}
	b.hbuf = make([]byte, maxHistJSON)
	return b, nil
}

// maxHistJSON bounds a stored histogram's length: more than any histogram
// of durations up to a year, bucket by bucket, takes.
const maxHistJSON = 128 << 10

// emptyText is bound for an empty string: SQLite reads a nil pointer as NULL.
var emptyText = C.CString("")

func cText(s string) (*C.char, C.int) {
	if len(s) == 0 {
		return emptyText, 0
	}
	return (*C.char)(unsafe.Pointer(unsafe.StringData(s))), C.int(len(s))
}

func keyArgs(k *rollupKey) ([3]C.int64_t, *C.char, C.int, *C.char, C.int, *C.char, C.int) {
	svc, svcn := cText(k.service)
	m, mn := cText(k.method)
	r, rn := cText(k.route)
	return [3]C.int64_t{C.int64_t(k.level), C.int64_t(k.ts), C.int64_t(k.status)}, svc, svcn, m, mn, r, rn
}

// load implements rollupTx on the writer's connection, inside its batch's
// transaction.
func (b *batchConn) load(k *rollupKey, v *rollupVal) (bool, error) {
	key, svc, svcn, m, mn, r, rn := keyArgs(k)
	var vals [6]C.int64_t
	var histn, found C.int
	rc := C.fl_rollup_load(b.db, b.loadSt[k.table], &key[0], svc, svcn, m, mn, r, rn, &vals[0],
		(*C.char)(unsafe.Pointer(&b.hbuf[0])), C.int(len(b.hbuf)), &histn, &found)
	if err := b.err("load rollup", rc); err != nil || found == 0 {
		return false, err
	}
	v.count, v.failed, v.bytesIn, v.bytesOut, v.durUS, v.maxUS = int64(vals[0]), int64(vals[1]), int64(vals[2]), int64(vals[3]), int64(vals[4]), int64(vals[5])
	if histn < 0 {
		return true, fmt.Errorf("%w: histogram longer than %d bytes", ErrRollupsDamaged, len(b.hbuf))
	}
	return true, v.decode(b.hbuf[:histn])
}

// marks implements rollupTx on the writer's connection.
func (b *batchConn) marks(service string) (marks, bool, error) {
	svc, svcn := cText(service)
	var m [2]C.int64_t
	var found C.int
	if err := b.err("load marks", C.fl_marks_load(b.db, b.marksLoad, svc, svcn, &m[0], &found)); err != nil {
		return marks{}, false, err
	}
	return marks{hours: int64(m[0]), days: int64(m[1])}, found != 0, nil
}

// setMarks implements rollupTx on the writer's connection.
func (b *batchConn) setMarks(service string, m marks) error {
	svc, svcn := cText(service)
	return b.err("save marks", C.fl_marks_save(b.db, b.marksSave, svc, svcn, C.int64_t(m.hours), C.int64_t(m.days)))
}

// save implements rollupTx on the writer's connection.
func (b *batchConn) save(k *rollupKey, v *rollupVal) error {
	key, svc, svcn, m, mn, r, rn := keyArgs(k)
	vals := [6]C.int64_t{C.int64_t(v.count), C.int64_t(v.failed), C.int64_t(v.bytesIn), C.int64_t(v.bytesOut), C.int64_t(v.durUS), C.int64_t(v.maxUS)}
	b.jbuf = v.hist.appendJSON(b.jbuf[:0])
	return b.err("save rollup", C.fl_rollup_save(b.db, b.saveSt[k.table], &key[0], svc, svcn, m, mn, r, rn, &vals[0],
		(*C.char)(unsafe.Pointer(&b.jbuf[0])), C.int(len(b.jbuf))))
}

func (b *batchConn) exec(sql string) error {
	q := C.CString(sql)
	defer C.free(unsafe.Pointer(q))
	return b.err(sql, C.fl_exec(b.db, q))
}

// insert writes recs in one BEGIN IMMEDIATE transaction.
func (b *batchConn) insert(recs []Record) (err error) {
	if len(recs) == 0 {
		return nil
	}
	b.pack(recs)
	if err := b.exec("BEGIN IMMEDIATE"); err != nil {
		return err
	}
	defer func() {
		if err != nil && C.sqlite3_get_autocommit(b.db) == 0 {
			err = errors.Join(err, b.exec("ROLLBACK"))
		}
	}()
	rc := C.fl_insert(b.db, b.stmt, (*C.char)(unsafe.Pointer(&b.buf[0])),
		(*C.int64_t)(unsafe.Pointer(&b.meta[0])), C.int(len(recs)), numColumns, textColumns)
	if err := b.err("insert", rc); err != nil {
		return err
	}
	b.agg.reset()
	b.agg.addRecords(recs, time.Now())
	if b.damaged, err = applyRollups(b, &b.agg); err != nil {
		return err
	}
	return b.exec("COMMIT")
}

// pack lays recs out in b.buf and b.meta for fl_insert.
func (b *batchConn) pack(recs []Record) {
	b.buf = append(b.buf[:0], 0) // never empty, so &buf[0] is valid
	b.meta = b.meta[:0]
	for i := range recs {
		r := &recs[i]
		b.meta = append(b.meta, r.Time.UnixMicro())
		b.text(r.Service)
		b.text(r.Method)
		b.text(r.Path)
		b.text(r.Route)
		b.meta = append(b.meta, int64(r.Status), r.Duration.Microseconds(), r.BytesIn, r.BytesOut)
		b.text(r.IP)
		b.text(r.UserAgent)
		b.text(r.RequestID)
		b.text(r.TraceID)
		b.text(r.Error)
	}
}

func (b *batchConn) text(s string) {
	b.meta = append(b.meta, int64(len(b.buf))<<32|int64(len(s)))
	b.buf = append(b.buf, s...)
}

// stop makes every later wait for the write lock give up at once; the
// writer then finds that Close gave up. Safe to call from any goroutine,
// once, before close.
func (b *batchConn) stop() { C.fl_stop(b.busy) }

func (b *batchConn) close() error {
	defer func() {
		if b.busy != nil {
			C.free(unsafe.Pointer(b.busy))
			b.busy = nil
		}
	}()
	for _, st := range []**C.sqlite3_stmt{&b.stmt, &b.loadSt[0], &b.saveSt[0], &b.loadSt[1], &b.saveSt[1], &b.marksLoad, &b.marksSave} {
		if *st != nil {
			C.sqlite3_finalize(*st)
			*st = nil
		}
	}
	if b.db != nil {
		rc := C.sqlite3_close_v2(b.db)
		b.db = nil
		if rc != 0 {
			return fmt.Errorf("close: sqlite error %d", int(rc))
		}
	}
	return nil
}
