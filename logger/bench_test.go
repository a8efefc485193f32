package logger_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/logger"
)

// logPaced logs n records into s as fast as the writer takes them: when the
// queue is half full it waits for a flush instead of dropping.
func logPaced(s *logger.Store, service string, n int) error {
	return logPacedWith(s, n, func(i int) logger.Record { return testRecord(service, i) })
}

// logPacedWith is logPaced with the records that record makes.
func logPacedWith(s *logger.Store, n int, record func(i int) logger.Record) error {
	half := logger.DefaultQueueSize / 2
	for i := range n {
		s.Log(record(i))
		if i%1024 == 1023 && s.Stats().Queued > half {
			if err := s.Flush(context.Background()); err != nil {
				return err
			}
		}
	}
	return s.Flush(context.Background())
}

// BenchmarkWrite compares Store.Log, batched, with the naive logger's one
// autocommit INSERT per request, in one run. rows/s is the figure to read.
func BenchmarkWrite(b *testing.B) {
	b.Run("store", func(b *testing.B) {
		s, _ := openStore(b)
		b.ResetTimer()
		require.NoError(b, logPaced(s, "svc", b.N))
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		require.Zero(b, s.Stats().Dropped)
	})
	// As the platform logs them: every row has a trace id that begins with
	// the time, so the trace index grows at its end.
	b.Run("store-traced", func(b *testing.B) {
		s, _ := openStore(b)
		b.ResetTimer()
		require.NoError(b, logPacedWith(s, b.N, func(i int) logger.Record { return tracedRecord("svc", i) }))
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		require.Zero(b, s.Stats().Dropped)
	})
	// Trace ids from another tracer, random: each row goes to a random
	// place in the trace index, and a batch dirties a page per row.
	b.Run("store-traced-random", func(b *testing.B) {
		s, _ := openStore(b)
		b.ResetTimer()
		require.NoError(b, logPacedWith(s, b.N, func(i int) logger.Record {
			r := testRecord("svc", i)
			r.TraceID = fmt.Sprintf("%016x%016x", rand.Uint64(), rand.Uint64())
			return r
		}))
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		require.Zero(b, s.Stats().Dropped)
	})
	for _, sync := range []string{"NORMAL", "FULL"} {
		b.Run("naive-autocommit-sync="+sync, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "naive.db")
			s, err := logger.Open(path) // same schema and indexes
			require.NoError(b, err)
			require.NoError(b, s.Close())
			db := naiveDB(b, path, sync)
			b.ResetTimer()
			for i := range b.N {
				if err := naiveInsert(db, testRecord("svc", i)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

func naiveDB(tb testing.TB, path, sync string) *sql.DB {
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000&_journal_mode=WAL&_sync="+sync)
	require.NoError(tb, err)
	db.SetMaxOpenConns(1)
	tb.Cleanup(func() { db.Close() })
	return db
}

func naiveInsert(db *sql.DB, r logger.Record) error {
	_, err := db.Exec(`INSERT INTO requests (ts, service, method, path, route, status, duration_us, bytes_in, bytes_out, ip, user_agent, request_id, trace_id, error)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.Time.UnixMicro(), r.Service, r.Method, r.Path, r.Route, r.Status, r.Duration.Microseconds(),
		r.BytesIn, r.BytesOut, r.IP, r.UserAgent, r.RequestID, r.TraceID, r.Error)
	return err
}

// BenchmarkFleetWrite runs 45 processes writing into one file at once, each
// logging its rows: 20,000 each through Store.Log, without trace ids and
// with them as the platform makes them, and 2,000 each the naive way with
// autocommit INSERTs and a busy timeout (which is slow enough that more
// would only make the run longer). Each iteration is one whole run; rows/s
// is the aggregate from the release of the processes until the last one
// exits; lock-errors counts "database is locked" errors that reached the
// caller. Run it with -benchtime=1x.
func BenchmarkFleetWrite(b *testing.B) {
	const procs = 45
	for _, run := range []struct {
		mode string
		per  int
	}{{"store", 20_000}, {"store-traced", 20_000}, {"naive", 2_000}} {
		mode, per := run.mode, run.per
		b.Run(mode, func(b *testing.B) {
			var rows, lockErrors int
			var elapsed time.Duration
			for range b.N {
				r, l, d := fleetWrite(b, mode, procs, per)
				rows += r
				lockErrors += l
				elapsed += d
			}
			b.ReportMetric(float64(rows)/elapsed.Seconds(), "rows/s")
			b.ReportMetric(float64(lockErrors)/float64(b.N), "lock-errors")
		})
	}
}

func fleetWrite(b *testing.B, mode string, procs, per int) (rows, lockErrors int, elapsed time.Duration) {
	path := filepath.Join(b.TempDir(), "fleet.db")
	s, err := logger.Open(path)
	require.NoError(b, err)
	require.NoError(b, s.Close())

	r, w, err := os.Pipe()
	require.NoError(b, err)
	cmds := make([]*exec.Cmd, procs)
	outs := make([]*bufio.Reader, procs)
	for i := range procs {
		cmd := childCmd("bench-"+mode, path, fmt.Sprintf("svc-%02d", i), per)
		cmd.ExtraFiles = []*os.File{r}
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		require.NoError(b, err)
		require.NoError(b, cmd.Start())
		outs[i] = bufio.NewReader(out)
		line, err := outs[i].ReadString('\n')
		require.NoError(b, err)
		require.Equal(b, "ready\n", line)
		cmds[i] = cmd
	}
	r.Close()
	start := time.Now()
	w.Close() // release
	for i, cmd := range cmds {
		rest, _ := io.ReadAll(outs[i])
		require.NoError(b, cmd.Wait())
		n, err := strconv.Atoi(strings.TrimSpace(string(rest)))
		require.NoError(b, err, "child output %q", rest)
		lockErrors += n
	}
	elapsed = time.Since(start)
	rows = count(b, rawDB(b, path), "")
	if mode != "naive" {
		require.Equal(b, procs*per, rows)
	}
	return rows, lockErrors, elapsed
}

// benchChild is the child side of BenchmarkFleetWrite. It prints "ready",
// waits for the release, writes n rows, and prints how many lock errors it
// saw.
func benchChild(mode, path, service string, n int) int {
	var s *logger.Store
	var db *sql.DB
	var err error
	if mode != "bench-naive" {
		s, err = logger.Open(path)
	} else {
		db, err = sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
		if err == nil {
			db.SetMaxOpenConns(1)
			err = db.Ping()
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.NewFile(3, "release"))
	lockErrors := 0
	if s != nil {
		record := func(i int) logger.Record { return testRecord(service, i) }
		if mode == "bench-store-traced" {
			record = func(i int) logger.Record { return tracedRecord(service, i) }
		}
		if err := logPacedWith(s, n, record); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := s.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	} else {
		for i := range n {
			if err := naiveInsert(db, testRecord(service, i)); err != nil {
				lockErrors++
			}
		}
		db.Close()
	}
	fmt.Println(lockErrors)
	return 0
}

// BenchmarkMiddleware serves a hello-world echo route with and without the
// logging middleware in one run; the difference is the middleware's cost
// per request, including the enqueue into a real Store (whose writer runs
// on the other core, as it would in a service).
func BenchmarkMiddleware(b *testing.B) {
	hello := func(c echo.Context) error { return c.String(http.StatusOK, "hello") }
	run := func(b *testing.B, e *echo.Echo, s *logger.Store) {
		req := httptest.NewRequest(http.MethodGet, "/hello/world?x=1", nil)
		req.Header.Set("User-Agent", "bench")
		rec := httptest.NewRecorder()
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			rec.Body.Reset()
			e.ServeHTTP(rec, req)
			if s != nil && i%4096 == 4095 {
				b.StopTimer()
				require.NoError(b, s.Flush(context.Background()))
				b.StartTimer()
			}
		}
		b.StopTimer()
		if s != nil {
			require.NoError(b, s.Flush(context.Background()))
			require.Zero(b, s.Stats().Dropped)
		}
	}
	b.Run("bare", func(b *testing.B) {
		e := echo.New()
		e.GET("/hello/:name", hello)
		run(b, e, nil)
	})
	b.Run("logged-discard", func(b *testing.B) {
		e := echo.New()
		e.Use(logger.Middleware(discard{}, "bench"))
		e.GET("/hello/:name", hello)
		run(b, e, nil)
	})
	b.Run("logged", func(b *testing.B) {
		s, _ := openStore(b, logger.WithLogger(nil))
		e := echo.New()
		e.Use(logger.Middleware(s, "bench"))
		e.GET("/hello/:name", hello)
		run(b, e, s)
	})
}

// discard is a Sink that drops records: the middleware's own cost.
type discard struct{}

func (discard) Log(logger.Record) {}

// BenchmarkQueries measures the dashboard queries on a file of 1,000,000
// rows spread over ten hours from 45 services: Summary of the last hour
// (about 100,000 rows, read from the rollups) and ByTrace of one trace
// among them. Each service's rows are logged in their own batches, as a
// fleet's processes do.
func BenchmarkQueries(b *testing.B) {
	const rows = 1_000_000
	s, _ := openStore(b, logger.WithRetention(0))
	now := time.Now()
	span := 10 * time.Hour
	for svc := range 45 {
		for i := svc; i < rows; i += 45 {
			r := testRecord(fmt.Sprintf("svc-%02d", svc), i)
			r.Time = now.Add(-span + time.Duration(i)*(span/rows))
			if i%1000 == 0 {
				r.TraceID = fmt.Sprintf("%032x", i)
			}
			s.Log(r)
			if i/45%50_000 == 49_999 {
				require.NoError(b, s.Flush(context.Background()))
			}
		}
		require.NoError(b, s.Flush(context.Background()))
	}
	ctx := context.Background()
	b.Run("summary-last-hour", func(b *testing.B) {
		for range b.N {
			sum, err := s.Summary(ctx, now.Add(-time.Hour))
			if err != nil || len(sum) != 45 {
				b.Fatal(err, len(sum))
			}
		}
	})
	b.Run("by-trace", func(b *testing.B) {
		id := fmt.Sprintf("%032x", 500_000)
		for range b.N {
			got, err := s.ByTrace(ctx, id)
			if err != nil || len(got) != 1 {
				b.Fatal(err, len(got))
			}
		}
	})
}
