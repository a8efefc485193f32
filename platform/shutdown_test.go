package platform_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// 20 SIGTERMs, each under keep-alive load from 12 clients sending GETs and
// POSTs: every request whose handler ran (it is in the log) got its answer.
// A request that never ran may fail, as the service is gone.
func TestRun_ShutdownAnswersEveryRequestItRan(t *testing.T) {
	const shutdowns, clients = 20, 16
	unanswered := 0
	padding := strings.Repeat("p", 48<<10)
	for i := range shutdowns {
		dir := tempDir(t)
		db := filepath.Join(dir, "flotilla.db")
		port := freePort(t)
		s := start(t, "keepalive", "FLOTILLA_DB="+db, "PORT="+port).at("tcp", "127.0.0.1:"+port)
		s.healthy(t)

		var answered sync.Map
		var sent atomic.Int64
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
				defer client.CloseIdleConnections()
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					path := fmt.Sprintf("/hello/c%d-%d", c, n)
					method := http.MethodGet
					if n%3 == 0 {
						method = http.MethodPost // 405: logged, answered, never retried by the client
					}
					req, _ := http.NewRequest(method, s.base+path, nil)
					// Large headers take the server a while to read and
					// parse: a longer window for a drain to close the
					// connection under a request it has read.
					req.Header.Set("X-Padding", padding)
					sent.Add(1)
					res, err := client.Do(req)
					if err != nil {
						continue
					}
					res.Body.Close()
					answered.Store(path, res.StatusCode)
				}
			}()
		}
		eventually(t, 20e9, func() bool { return sent.Load() > 300 }, "the load did not start")
		require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
		assert.Equal(t, 0, s.wait(t), "a clean stop: %s", s.stderr)
		close(stop)
		wg.Wait()

		ran := rows(t, openDB(t, db), "path LIKE '/hello/%'")
		t.Logf("shutdown %d: %d sent, %d ran", i, sent.Load(), len(ran))
		for _, r := range ran {
			if _, ok := answered.Load(r.path); !ok {
				unanswered++
				t.Logf("shutdown %d: %s %d ran but got no answer", i, r.path, r.status)
			}
		}
		require.False(t, strings.Contains(s.stderr.String(), `"level":"ERROR"`), s.stderr)
	}
	assert.Zero(t, unanswered, "requests that ran but were not answered, in %d shutdowns", shutdowns)
}

// The shutdown timeout bounds the whole drain, the request log's close
// included: with the log locked by another process for longer than the
// log's own 30 s close timeout, SIGTERM still ends the service at its 1 s
// shutdown timeout, with an error that says records were dropped.
func TestRun_ShutdownTimeoutBoundsTheRequestLog(t *testing.T) {
	dir := tempDir(t)
	db := filepath.Join(dir, "flotilla.db")
	port := freePort(t)
	s := start(t, "locked", "FLOTILLA_DB="+db, "PORT="+port, "FLOTILLA_SHUTDOWN_TIMEOUT=1s").at("tcp", "127.0.0.1:"+port)
	s.healthy(t)
	lock, err := openDB(t, db).Conn(context.Background())
	require.NoError(t, err)
	defer lock.Close()
	_, err = lock.ExecContext(context.Background(), "BEGIN IMMEDIATE")
	require.NoError(t, err)
	code, _ := s.get(t, "/hello/unwritten")
	require.Equal(t, 200, code)

	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("the service is still shutting down, past its shutdown timeout: %s", s.stderr)
	}
	assert.Equal(t, 1, s.cmd.ProcessState.ExitCode())
	assert.Contains(t, s.stderr.String(), "gave up")
	assert.Regexp(t, `\d+ dropped`, s.stderr.String())
}
