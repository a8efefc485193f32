package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/internal/testport"
	"github.com/flotilla-go/flotilla/internal/testwait"
	"github.com/flotilla-go/flotilla/logger"
)

// BenchmarkPs45 times flotilla ps over 45 services, all up, each its own
// process, half on unix sockets and half on ports.
func BenchmarkPs45(b *testing.B) {
	dir := b.TempDir()
	registry := filepath.Join(dir, "flotilla.toml")
	var m strings.Builder
	m.WriteString("[defaults]\ndb = \"flotilla.db\"\n")
	for i := range 45 {
		if i%2 == 0 {
			fmt.Fprintf(&m, "\n[[service]]\nname = \"svc-%02d\"\nsocket = \"run/svc-%02d.sock\"\n", i, i)
		} else {
			fmt.Fprintf(&m, "\n[[service]]\nname = \"svc-%02d\"\nport = %d\n", i, testport.Free(b))
		}
	}
	require.NoError(b, os.WriteFile(registry, []byte(m.String()), 0o600))
	var cmds []*exec.Cmd
	for i := range 45 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("FLOTILLA_TEST_SERVICE=svc-%02d", i), "FLOTILLA_REGISTRY="+registry)
		require.NoError(b, cmd.Start())
		cmds = append(cmds, cmd)
	}
	defer func() {
		for _, c := range cmds {
			c.Process.Signal(syscall.SIGTERM)
			c.Wait()
		}
	}()
	var out string
	testwait.Until(b, 30*time.Second, func() bool {
		out, _, _ = cli("--registry", registry, "ps")
		return strings.Count(out, " pass ") == 45
	}, "all 45 to pass", func() string { return out })
	b.ResetTimer()
	for range b.N {
		out, _, code := cli("--registry", registry, "ps")
		if code != 0 || strings.Count(out, " pass ") != 45 {
			b.Fatalf("exit %d:\n%s", code, out)
		}
	}
}

// BenchmarkLogsFirstLine times logs --since 10m on a file of 10 million
// rows spread over the last 10 hours (about 166,000 in the last 10
// minutes), from the start of the command to its first line.
func BenchmarkLogsFirstLine(b *testing.B) {
	db := filepath.Join(b.TempDir(), "flotilla.db")
	bigLog(b, db, 10_000_000, 10*time.Hour)
	b.ResetTimer()
	var firsts []time.Duration
	for range b.N {
		w := &firstWrite{}
		began := time.Now()
		code := run(context.Background(), []string{"--db", db, "logs", "--since", "10m"}, nil, w, os.Stderr)
		if code != 0 || w.lines() != 100 {
			b.Fatalf("exit %d, %d lines", code, w.lines())
		}
		firsts = append(firsts, w.at.Sub(began))
	}
	slices.Sort(firsts)
	b.ReportMetric(float64(firsts[len(firsts)/2].Microseconds())/1000, "first-line-ms")
}

// bigLog fills a log file with n rows over the window before now, as 45
// services, straight in SQL.
func bigLog(b *testing.B, path string, n int, window time.Duration) {
	b.Helper()
	s, err := logger.Open(path)
	require.NoError(b, err)
	require.NoError(b, s.Close())
	db, err := sql.Open("sqlite3", path)
	require.NoError(b, err)
	defer db.Close()
	end := time.Now().UnixMicro()
	step := window.Microseconds() / int64(n)
	_, err = db.Exec(`WITH RECURSIVE i(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM i WHERE x + 1 < ?)
		INSERT INTO requests (ts, service, method, path, route, status, duration_us, bytes_in, bytes_out, ip, user_agent, request_id, trace_id, error)
		SELECT ? - (? - x) * ?, 'svc-' || (x % 45), 'GET', '/items/' || x, '/items/:id', CASE WHEN x % 50 = 0 THEN 500 ELSE 200 END,
		       x % 5000, 0, 512, '127.0.0.1', 'bench', lower(hex(randomblob(16))), lower(hex(randomblob(16))), ''
		FROM i`, n, end, n, step)
	require.NoError(b, err)
}

// firstWrite records when its first byte came.
type firstWrite struct {
	at  time.Time
	buf bytes.Buffer
}

func (w *firstWrite) Write(p []byte) (int, error) {
	if w.at.IsZero() {
		w.at = time.Now()
	}
	return w.buf.Write(p)
}

func (w *firstWrite) lines() int { return strings.Count(w.buf.String(), "\n") }

// BenchmarkFollow measures logs -f as its own process: the time from a
// batch's commit (Flush returns) to its line on the follower's output,
// median and worst of 50 commits; and the CPU the follower uses while
// nothing is written, over 10 s.
func BenchmarkFollow(b *testing.B) {
	db := filepath.Join(b.TempDir(), "flotilla.db")
	s, err := logger.Open(db)
	require.NoError(b, err)
	defer s.Close()
	for range b.N {
		cmd := exec.Command(os.Args[0], "--db", db, "logs", "-f", "-n", "0")
		cmd.Env = append(os.Environ(), "FLOTILLA_TEST_CLI=1")
		out, err := cmd.StdoutPipe()
		require.NoError(b, err)
		require.NoError(b, cmd.Start())
		lines := make(chan string, 100)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Until the follower shows a marker, it has not started following:
		// log one until it does.
		for shown := false; !shown; {
			s.Log(logger.Record{Service: "bench", Method: "MARK", Path: "/", Status: 200})
			require.NoError(b, s.Flush(context.Background()))
			select {
			case <-lines:
				shown = true
			case <-time.After(100 * time.Millisecond):
			}
		}
		for drained := false; !drained; { // more markers may follow the first
			select {
			case <-lines:
			case <-time.After(200 * time.Millisecond):
				drained = true
			}
		}
		var lat []time.Duration
		for i := range 50 {
			id := "follow-" + strconv.Itoa(i)
			s.Log(logger.Record{Service: "bench", Method: "GET", Path: "/", Status: 200, RequestID: id})
			require.NoError(b, s.Flush(context.Background()))
			committed := time.Now()
			for line := range lines {
				if strings.Contains(line, "GET") {
					break
				}
			}
			lat = append(lat, time.Since(committed))
			time.Sleep(time.Duration(i%7) * 17 * time.Millisecond) // commits at varied phases of the poll
		}
		slices.Sort(lat)
		before := cpuTicks(b, cmd.Process.Pid)
		time.Sleep(10 * time.Second)
		idle := cpuTicks(b, cmd.Process.Pid) - before
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "commit-to-line-p50-ms")
		b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "commit-to-line-max-ms")
		b.ReportMetric(float64(idle)/float64(clockTicks)/10*100, "idle-cpu-%")
	}
}

// cpuTicks is the user and system time of pid, in clock ticks.
func cpuTicks(b *testing.B, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(b, err)
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}
