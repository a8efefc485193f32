package logger_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/internal/testwait"
	"github.com/flotilla-go/flotilla/internal/traceid"
	"github.com/flotilla-go/flotilla/logger"
)

// The test binary re-executes itself as the writer processes of the
// multi-process tests; LOGGER_TEST_CHILD names the part it plays.
func TestMain(m *testing.M) {
	if mode := os.Getenv("LOGGER_TEST_CHILD"); mode != "" {
		os.Exit(child(mode))
	}
	os.Exit(m.Run())
}

func child(mode string) int {
	path := os.Getenv("LOGGER_TEST_DB")
	service := os.Getenv("LOGGER_TEST_SERVICE")
	n, _ := strconv.Atoi(os.Getenv("LOGGER_TEST_N"))
	switch mode {
	case "bench-store", "bench-store-traced", "bench-naive":
		return benchChild(mode, path, service, n)
	case "storm":
		// Say ready, then block until the parent releases every child
		// at once by closing the pipe on fd 3.
		fmt.Println("ready")
		release := os.NewFile(3, "release")
		io.Copy(io.Discard, release)
		s, err := logger.Open(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "open:", err)
			return 1
		}
		for i := range n {
			s.Log(testRecord(service, i))
		}
		if err := s.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "close:", err)
			return 1
		}
		if st := s.Stats(); st.Dropped != 0 || st.Written != uint64(n) {
			fmt.Fprintf(os.Stderr, "stats: %+v\n", st)
			return 1
		}
		return 0
	case "stream":
		// Log forever; after each Flush, report how many records are
		// committed. The parent kills this process with SIGKILL.
		s, err := logger.Open(path, logger.WithFlushInterval(5*time.Millisecond))
		if err != nil {
			fmt.Fprintln(os.Stderr, "open:", err)
			return 1
		}
		for i := 0; ; i++ {
			s.Log(testRecord(service, i))
			if i%500 == 499 {
				if err := s.Flush(context.Background()); err != nil {
					fmt.Fprintln(os.Stderr, "flush:", err)
					return 1
				}
				fmt.Printf("flushed %d\n", i+1)
			}
		}
	case "write":
		// Log n records, committing a batch every few records so that
		// the batches of many such writers interleave.
		s, err := logger.Open(path, logger.WithFlushInterval(time.Millisecond))
		if err != nil {
			fmt.Fprintln(os.Stderr, "open:", err)
			return 1
		}
		for i := range n {
			s.Log(tracedRecord(service, i))
			if i%37 == 36 {
				if err := s.Flush(context.Background()); err != nil {
					fmt.Fprintln(os.Stderr, "flush:", err)
					return 1
				}
			}
		}
		if err := s.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "close:", err)
			return 1
		}
		return 0
	case "open":
		// Report the error of Open, for permission tests run as nobody.
		s, err := logger.Open(path)
		if err != nil {
			fmt.Println(err)
			return 0
		}
		s.Close()
		fmt.Println("opened")
		return 0
	}
	fmt.Fprintln(os.Stderr, "unknown child mode", mode)
	return 2
}

// routes are the route templates of testRecord.
var routes = []string{"/items/:id", "/items", "/users/:id", "/users", "/orders/:id", "/orders", "/search", "/"}

// testRecord is record i of service; its RequestID is "<service>-<i>".
func testRecord(service string, i int) logger.Record {
	return logger.Record{
		Time:      time.Now(),
		Service:   service,
		Method:    "GET",
		Path:      "/items/" + strconv.Itoa(i),
		Route:     routes[i%len(routes)], // a service of 8 routes
		Status:    200 + i%5*100,
		Duration:  time.Duration(i%1000) * time.Microsecond,
		BytesOut:  int64(i),
		IP:        "127.0.0.1",
		UserAgent: "test",
		RequestID: service + "-" + strconv.Itoa(i),
	}
}

// tracedRecord is testRecord with a trace id as the platform makes them,
// beginning with the time.
func tracedRecord(service string, i int) logger.Record {
	r := testRecord(service, i)
	r.TraceID = traceid.New(r.Time).String()
	return r
}

// childCmd returns a command that runs this test binary as a child.
func childCmd(mode, path, service string, n int) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		"LOGGER_TEST_CHILD="+mode,
		"LOGGER_TEST_DB="+path,
		"LOGGER_TEST_SERVICE="+service,
		"LOGGER_TEST_N="+strconv.Itoa(n))
	return cmd
}

// storm starts procs writer processes, waits until each is ready, releases
// them all at the same instant, and requires that every one exits 0.
func storm(t testing.TB, path, prefix string, procs, perProc int) {
	t.Helper()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer w.Close()
	cmds := make([]*exec.Cmd, procs)
	errs := make([]*bytes.Buffer, procs)
	for i := range procs {
		cmd := childCmd("storm", path, fmt.Sprintf("%s-%02d", prefix, i), perProc)
		cmd.ExtraFiles = []*os.File{r}
		errs[i] = new(bytes.Buffer)
		cmd.Stderr = errs[i]
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		line, err := bufio.NewReader(out).ReadString('\n')
		require.NoError(t, err, "child %d did not start: %s", i, errs[i])
		require.Equal(t, "ready\n", line)
		cmds[i] = cmd
	}
	r.Close()
	w.Close() // every child reads EOF now: the storm begins
	failed := 0
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			failed++
			t.Errorf("process %d: %v: %s", i, err, errs[i])
		}
	}
	require.Zero(t, failed, "processes that did not exit 0")
}

// rawDB opens path with plain database/sql, outside any Store.
func rawDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=10000")
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

func count(t testing.TB, db *sql.DB, where string, args ...any) int {
	t.Helper()
	var n int
	q := "SELECT count(*) FROM requests"
	if where != "" {
		q += " WHERE " + where
	}
	require.NoError(t, db.QueryRow(q, args...).Scan(&n))
	return n
}

func integrityOK(t testing.TB, db *sql.DB) {
	t.Helper()
	var res string
	require.NoError(t, db.QueryRow("PRAGMA integrity_check").Scan(&res))
	require.Equal(t, "ok", res)
}

// waitFor is testwait.Until.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testwait.Until(t, d, cond, what)
}
