package logger

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/mattn/go-sqlite3"
	"golang.org/x/sys/unix"
)

// ErrSchemaTooNew is returned by Open for a file written by a newer version
// of this package. Upgrade the service, or point it at another file.
var ErrSchemaTooNew = errors.New("schema is newer than this version of flotilla")

// ErrNotDatabase is returned by Open when the file exists but is not a SQLite
// database.
var ErrNotDatabase = errors.New("file is not a SQLite database")

// connector opens go-sqlite3 connections with a fixed DSN, so each Store
// sets its own per-connection pragmas without a global driver registration.
type connector struct {
	drv *sqlite3.SQLiteDriver
	dsn string
}

func (c *connector) Connect(context.Context) (driver.Conn, error) { return c.drv.Open(c.dsn) }
func (c *connector) Driver() driver.Driver                        { return c.drv }

// newDB returns a pool over path. The busy timeout is the first thing
// go-sqlite3 sets on a new connection, before any statement runs.
func newDB(path string, o *options, readOnly bool) *sql.DB {
	q := url.Values{}
	q.Set("_busy_timeout", strconv.FormatInt(o.busyTimeout.Milliseconds(), 10))
	q.Set("_txlock", "immediate")
	if readOnly {
		q.Set("_query_only", "1")
	}
	u := url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}
	limit := o.journalSizeLimit
	drv := &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		_, err := c.Exec("PRAGMA synchronous=NORMAL; PRAGMA journal_size_limit="+strconv.FormatInt(limit, 10), nil)
		return err
	}}
	return sql.OpenDB(&connector{drv: drv, dsn: u.String()})
}

// retryable reports whether err is lock contention that goes away by waiting:
// SQLITE_BUSY (including BUSY_RECOVERY and BUSY_SNAPSHOT), SQLITE_LOCKED and
// SQLITE_PROTOCOL, which WAL mode returns under heavy contention.
func retryable(err error) bool {
	var se sqlite3.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code {
	case sqlite3.ErrBusy, sqlite3.ErrLocked, sqlite3.ErrProtocol:
		return true
	}
	return false
}

// explain turns a SQLite error at open into one that says what to do.
func explain(path string, err error) error {
	var se sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code {
		case sqlite3.ErrNotADB:
			return fmt.Errorf("logger: open %s: %w: move it away or choose another path (%v)", path, ErrNotDatabase, err)
		case sqlite3.ErrCantOpen:
			return fmt.Errorf("logger: open %s: %w: check that its folder exists and is writable by this user", path, err)
		case sqlite3.ErrReadonly, sqlite3.ErrPerm, sqlite3.ErrAuth:
			return fmt.Errorf("logger: open %s: %w: the file or its folder is read-only; make both writable by this user", path, err)
		case sqlite3.ErrFull:
			return fmt.Errorf("logger: open %s: %w: free disk space", path, err)
		}
	}
	return fmt.Errorf("logger: open %s: %w", path, err)
}

// prepareFile checks path and creates its folder.
func prepareFile(path string) (string, error) {
	if path == "" {
		return "", errors.New("logger: open: empty path: give the path of the shared log file, such as /var/lib/flotilla/flotilla.db")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("logger: open %s: %w", path, err)
	}
	if fi, err := os.Stat(abs); err == nil && fi.IsDir() {
		return "", fmt.Errorf("logger: open %s: is a directory: give the path of a file inside it, such as %s", path, filepath.Join(path, "flotilla.db"))
	}
	dir := filepath.Dir(abs)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("logger: open %s: create folder: %w", path, err)
	}
	// SQLite says "no such file or directory" for a folder it may not
	// write; say what is wrong instead.
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		return "", fmt.Errorf("logger: open %s: folder %s exists, but this user (uid %d) cannot create files in it (%w): make it writable for the service's user, with chown or chmod", path, dir, os.Geteuid(), err)
	}
	return abs, nil
}

// setup switches the file to WAL and migrates the schema, retrying lock
// contention with backoff for at most o.openTimeout. Every attempt takes a
// fresh connection, so a failed open leaves nothing half set.
func setup(db *sql.DB, path string, o *options) error {
	ctx, cancel := context.WithTimeout(context.Background(), o.openTimeout)
	defer cancel()
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 5 * time.Millisecond
	b.MaxInterval = 500 * time.Millisecond
	b.MaxElapsedTime = o.openTimeout
	var last error
	attempts := 0
	op := func() error {
		attempts++
		err := setupOnce(ctx, db)
		if err == nil {
			return nil
		}
		last = err
		if retryable(err) {
			return err
		}
		return backoff.Permanent(err)
	}
	err := backoff.Retry(op, backoff.WithContext(b, ctx))
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrSchemaTooNew) {
		return fmt.Errorf("logger: open %s: %w", path, err)
	}
	if retryable(last) {
		return fmt.Errorf("logger: open %s: still locked after %d attempts in %v (raise WithOpenTimeout): %w", path, attempts, o.openTimeout, last)
	}
	return explain(path, last)
}

func setupOnce(ctx context.Context, db *sql.DB) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var mode string
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if mode != "wal" {
		// Fails at once with SQLITE_BUSY while other processes open the
		// file, whatever the busy timeout: the caller retries.
		if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode=WAL").Scan(&mode); err != nil {
			return err
		}
		if mode != "wal" {
			return fmt.Errorf("cannot switch to WAL mode (journal_mode is %q): the file system must support shared memory; use a local disk", mode)
		}
	}
	if err := migrate(ctx, conn); err != nil {
		return err
	}
	return repairRollups(ctx, conn)
}

// repairRollups recreates the rollup tables and views when someone dropped
// them. Missing rollups are rebuilt from every raw row, never read as an
// empty history.
func repairRollups(ctx context.Context, conn *sql.Conn) error {
	const count = `SELECT count(*), count(*) FILTER (WHERE name <> 'rollup_backfill') FROM sqlite_master
		WHERE type = 'table' AND name IN ('rollups', 'service_rollups', 'rollup_backfill')`
	var n, rollups int
	if err := conn.QueryRowContext(ctx, count).Scan(&n, &rollups); err != nil || n == 3 {
		return err
	}
	tx, err := conn.BeginTx(ctx, nil) // BEGIN IMMEDIATE
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := tx.QueryRowContext(ctx, count).Scan(&n, &rollups); err != nil || n == 3 {
		return err // another process repaired them
	}
	repair := rollupSchema + rollupViews
	if rollups < 2 { // start again from the raw rows
		repair = `DROP TABLE IF EXISTS rollups; DROP TABLE IF EXISTS service_rollups;` + repair + rollupBackfillAll
	}
	if _, err := tx.ExecContext(ctx, repair); err != nil {
		return fmt.Errorf("recreate the rollups: %w", err)
	}
	return tx.Commit()
}

func migrate(ctx context.Context, conn *sql.Conn) error {
	var v int
	if err := conn.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	if v == SchemaVersion {
		return nil
	}
	if v > SchemaVersion {
		return fmt.Errorf("%w: file has version %d, this code knows up to %d: upgrade flotilla or use another file", ErrSchemaTooNew, v, SchemaVersion)
	}
	tx, err := conn.BeginTx(ctx, nil) // BEGIN IMMEDIATE: one migrator at a time
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// Read again inside the lock: another process may have migrated.
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	if v > SchemaVersion {
		return fmt.Errorf("%w: file has version %d, this code knows up to %d: upgrade flotilla or use another file", ErrSchemaTooNew, v, SchemaVersion)
	}
	for ; v < SchemaVersion; v++ {
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migrate to schema version %d: %w", v+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, "PRAGMA user_version="+strconv.Itoa(SchemaVersion)); err != nil {
		return err
	}
	return tx.Commit()
}
