package logger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"
)

// ErrNoLog is returned by OpenReader when there is no file at the path yet:
// no service has logged a request there.
var ErrNoLog = errors.New("no request log")

// ErrNotFound is returned by FindTrace for an id that matches no row.
var ErrNotFound = errors.New("not found")

// Reader queries the shared request log without ever writing it: it opens
// the file read-only and starts no writer, so dashboards and tools can read
// a fleet's log beside the services that write it, and cannot change it. A
// Store answers the same queries through the same code. A Reader is safe
// for concurrent use.
type Reader struct {
	path string
	db   *sql.DB
}

// OpenReader opens the request log at path for reading. It never creates the
// file: a missing one is ErrNoLog (also fs.ErrNotExist), a file that is not
// SQLite is ErrNotDatabase, one without the requests table is an error that
// says so, and one from a newer version is ErrSchemaTooNew.
func OpenReader(path string) (*Reader, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("logger: open %s: %w", path, err)
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("logger: %w at %s (%w): no service has logged there yet, or the path is wrong", ErrNoLog, abs, fs.ErrNotExist)
	case err != nil:
		return nil, fmt.Errorf("logger: open %s: %w", abs, err)
	case fi.IsDir():
		return nil, fmt.Errorf("logger: open %s: is a directory: give the path of the log file inside it, such as %s", abs, filepath.Join(abs, "flotilla.db"))
	}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Set("_query_only", "1")
	q.Set("_busy_timeout", strconv.FormatInt(DefaultBusyTimeout.Milliseconds(), 10))
	u := url.URL{Scheme: "file", Path: abs, RawQuery: q.Encode()}
	db := sql.OpenDB(&connector{drv: &sqlite3.SQLiteDriver{}, dsn: u.String()})
	db.SetMaxOpenConns(4)
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		db.Close()
		return nil, explain(abs, err)
	}
	switch {
	case v > SchemaVersion:
		db.Close()
		return nil, fmt.Errorf("logger: open %s: %w: file has version %d, this code knows up to %d: upgrade flotilla", abs, ErrSchemaTooNew, v, SchemaVersion)
	case v == 0:
		db.Close()
		return nil, fmt.Errorf("logger: open %s: not a flotilla request log (no requests table): check the path", abs)
	}
	return &Reader{path: abs, db: db}, nil
}

// Path returns the file's absolute path.
func (r *Reader) Path() string { return r.path }

// Close closes the Reader's connections.
func (r *Reader) Close() error { return r.db.Close() }

// Query selects rows of the requests table for Reader.Requests. Its zero
// value selects every row. The filters that the covering index holds (time,
// service, status, duration) are checked before a row is read.
type Query struct {
	// Since and Until bound the rows' start times: Since <= Time < Until.
	// A zero bound is open.
	Since, Until time.Time
	// Services keeps only rows of these services; empty keeps all.
	Services []string
	// MinStatus and MaxStatus keep rows with MinStatus <= Status <=
	// MaxStatus; zero is open. 500 and 599 keep the 5xx.
	MinStatus, MaxStatus int
	// Route keeps only rows of this route template, such as "/geo/:ip".
	Route string
	// Slower keeps only requests that took longer than this.
	Slower time.Duration
	// Failed keeps only requests whose handler returned an error (Error
	// is set), whatever their status.
	Failed bool
	// TraceID keeps only rows of this trace.
	TraceID string
	// RequestID keeps only rows of this X-Request-ID.
	RequestID string
	// UpToID keeps only rows whose ID is at most this, when not zero.
	UpToID int64
	// Limit bounds the number of rows (default 1000).
	Limit int
	// Newest, when more rows match than Limit, keeps the newest ones
	// instead of the oldest. Rows are returned oldest first either way.
	Newest bool
}

// DefaultQueryLimit is the number of rows Requests returns when Query.Limit
// is zero.
const DefaultQueryLimit = 1000

// Requests returns the rows q selects, each with its ID, oldest first by
// Time.
func (r *Reader) Requests(ctx context.Context, q Query) ([]Record, error) {
	return r.query(ctx, q, 0, false)
}

// After returns the rows q selects whose ID is greater than id, in ID order:
// the order in which their batches committed. A follower that passes the
// greatest ID it has seen (starting from LastID, or 0) sees every later row
// exactly once, however the batches of many writers interleave: IDs are
// given under the write lock, so a row never commits after one with a
// greater ID. It reads the table by its primary key and needs no index.
func (r *Reader) After(ctx context.Context, id int64, q Query) ([]Record, error) {
	return r.query(ctx, q, id, true)
}

func (r *Reader) query(ctx context.Context, q Query, afterID int64, byID bool) ([]Record, error) {
	var (
		where []string
		args  []any
	)
	add := func(cond string, a ...any) { where = append(where, cond); args = append(args, a...) }
	if !q.Since.IsZero() {
		add("ts >= ?", q.Since.UnixMicro())
	}
	if !q.Until.IsZero() {
		add("ts < ?", q.Until.UnixMicro())
	}
	if len(q.Services) > 0 {
		add("service IN (?"+strings.Repeat(",?", len(q.Services)-1)+")", anys(q.Services)...)
	}
	if q.MinStatus > 0 {
		add("status >= ?", q.MinStatus)
	}
	if q.MaxStatus > 0 {
		add("status <= ?", q.MaxStatus)
	}
	if q.Slower > 0 {
		add("duration_us > ?", q.Slower.Microseconds())
	}
	if q.Route != "" {
		add("route = ?", q.Route)
	}
	if q.Failed {
		add("error <> ''")
	}
	if q.TraceID != "" {
		add("trace_id = ? AND trace_id <> ''", q.TraceID)
	}
	if q.RequestID != "" {
		add("request_id = ?", q.RequestID)
	}
	if byID {
		add("id > ?", afterID)
	}
	if q.UpToID > 0 {
		add("id <= ?", q.UpToID)
	}
	order := "ts"
	if byID {
		order = "id"
	}
	if q.Newest {
		order += " DESC"
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultQueryLimit
	}
	stmt := "SELECT id, " + columns + " FROM requests"
	if len(where) > 0 {
		stmt += " WHERE " + strings.Join(where, " AND ")
	}
	stmt += " ORDER BY " + order + " LIMIT " + strconv.Itoa(limit)
	out, err := r.scan(ctx, stmt, args...)
	if err != nil {
		return nil, fmt.Errorf("logger: requests: %w", err)
	}
	if q.Newest {
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return out, nil
}

// LastID returns the greatest row ID in the file, 0 when it is empty. A
// follower starts after it.
func (r *Reader) LastID(ctx context.Context) (int64, error) {
	var id sql.NullInt64
	if err := r.db.QueryRowContext(ctx, "SELECT max(id) FROM requests").Scan(&id); err != nil {
		return 0, fmt.Errorf("logger: last id: %w", err)
	}
	return id.Int64, nil
}

// FindTrace resolves what a person pastes into a trace id: a whole trace id,
// a request id (X-Request-ID), or a prefix of either that only one of them
// begins with. Trace ids are found through their index; request ids, which
// have none, are searched among the rows since the given time. An id that
// matches nothing is ErrNotFound; a prefix that matches several is an error
// that shows two of them. A request without a trace id resolves to its
// request id prefixed with "request:", which ByTrace also accepts.
func (r *Reader) FindTrace(ctx context.Context, id string, since time.Time) (string, error) {
	id = strings.TrimSpace(id)
	if id == "" {
		return "", fmt.Errorf("logger: find trace: empty id")
	}
	found := func(stmt string, args ...any) ([]string, error) {
		rows, err := r.db.QueryContext(ctx, stmt, args...)
		if err != nil {
			return nil, fmt.Errorf("logger: find trace: %w", err)
		}
		defer rows.Close()
		var ids []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				return nil, fmt.Errorf("logger: find trace: %w", err)
			}
			ids = append(ids, s)
		}
		return ids, rows.Err()
	}
	one := func(ids []string, what string) (string, error) {
		if len(ids) > 1 {
			return "", fmt.Errorf("logger: %q is the start of more than one %s (%s, %s, ...): give more of it", id, what, ids[0], ids[1])
		}
		return ids[0], nil
	}
	lower := strings.ToLower(id)
	ids, err := found(`SELECT DISTINCT trace_id FROM requests WHERE trace_id <> '' AND trace_id >= ? AND trace_id < ? LIMIT 2`,
		lower, lower+"\U0010ffff")
	if err != nil {
		return "", err
	}
	if len(ids) > 0 {
		return one(ids, "trace id")
	}
	ids, err = found(`SELECT DISTINCT CASE trace_id WHEN '' THEN 'request:' || request_id ELSE trace_id END
		FROM requests WHERE ts >= ? AND request_id >= ? AND request_id < ? LIMIT 2`,
		since.UnixMicro(), id, id+"\U0010ffff")
	if err != nil {
		return "", err
	}
	if len(ids) == 0 {
		return "", fmt.Errorf("logger: %w: no trace id begins with %q, and no request id since %s", ErrNotFound, id, since.Format(time.DateTime))
	}
	return one(ids, "request id")
}

// ByTrace returns the requests of one trace, oldest first, at most
// MaxTraceRows of them: the whole path of a request through the fleet. An id
// of the form "request:<X-Request-ID>" (as FindTrace returns for an
// untraced request) returns the rows of that request id instead.
func (r *Reader) ByTrace(ctx context.Context, traceID string) ([]Record, error) {
	if traceID == "" {
		return nil, nil
	}
	stmt := `SELECT id, ` + columns + ` FROM requests WHERE trace_id = ? AND trace_id <> '' ORDER BY ts, id LIMIT ?`
	if rid, ok := strings.CutPrefix(traceID, "request:"); ok {
		stmt, traceID = `SELECT id, `+columns+` FROM requests WHERE request_id = ? ORDER BY ts, id LIMIT ?`, rid
	}
	out, err := r.scan(ctx, stmt, traceID, MaxTraceRows)
	if err != nil {
		return nil, fmt.Errorf("logger: by trace: %w", err)
	}
	return out, nil
}

func (r *Reader) scan(ctx context.Context, stmt string, args ...any) ([]Record, error) {
	rows, err := r.db.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		var (
			rec     Record
			ts, dur int64
		)
		if err := rows.Scan(&rec.ID, &ts, &rec.Service, &rec.Method, &rec.Path, &rec.Route, &rec.Status, &dur,
			&rec.BytesIn, &rec.BytesOut, &rec.IP, &rec.UserAgent, &rec.RequestID, &rec.TraceID, &rec.Error); err != nil {
			return nil, err
		}
		rec.Time = time.UnixMicro(ts)
		rec.Duration = time.Duration(dur) * time.Microsecond
		out = append(out, rec)
	}
	return out, rows.Err()
}

func anys(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
