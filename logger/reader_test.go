package logger_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/logger"
)

func openReader(t *testing.T, path string) *logger.Reader {
	t.Helper()
	r, err := logger.OpenReader(path)
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	return r
}

func TestOpenReader_BadFiles(t *testing.T) {
	dir := t.TempDir()
	_, err := logger.OpenReader(filepath.Join(dir, "none.db"))
	assert.ErrorIs(t, err, logger.ErrNoLog)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.Contains(t, err.Error(), filepath.Join(dir, "none.db"))
	_, err = os.Stat(filepath.Join(dir, "none.db"))
	assert.ErrorIs(t, err, fs.ErrNotExist, "OpenReader never creates the file")

	_, err = logger.OpenReader(dir)
	assert.ErrorContains(t, err, "is a directory")

	junk := filepath.Join(dir, "junk.db")
	require.NoError(t, os.WriteFile(junk, []byte("not sqlite at all, but long enough to have a header ......................................................"), 0o600))
	_, err = logger.OpenReader(junk)
	assert.ErrorIs(t, err, logger.ErrNotDatabase)

	other := filepath.Join(dir, "other.db")
	db, err := sql.Open("sqlite3", other)
	require.NoError(t, err)
	_, err = db.Exec("CREATE TABLE t (x)")
	require.NoError(t, err)
	db.Close()
	_, err = logger.OpenReader(other)
	assert.ErrorContains(t, err, "not a flotilla request log")
}

// A Reader never changes the file, even while no writer has it open.
func TestReader_NeverWrites(t *testing.T) {
	s, path := openStore(t)
	for i := range 10 {
		s.Log(testRecord("a", i))
	}
	require.NoError(t, s.Close())
	sum := func() [32]byte {
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		return sha256.Sum256(data)
	}
	before := sum()
	r := openReader(t, path)
	got, err := r.Requests(context.Background(), logger.Query{})
	require.NoError(t, err)
	assert.Len(t, got, 10)
	_, err = r.Summary(context.Background(), time.Time{})
	require.NoError(t, err)
	require.NoError(t, r.Close())
	assert.Equal(t, before, sum())
}

func TestReader_Requests(t *testing.T) {
	s, path := openStore(t)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	for i := range 100 {
		r := testRecord("a", i)
		if i%2 == 1 {
			r.Service, r.RequestID = "b", "b-"+strconv.Itoa(i)
		}
		r.Time = base.Add(time.Duration(i) * time.Second)
		if i%10 == 0 {
			r.Route = "/other"
		}
		s.Log(r)
	}
	require.NoError(t, s.Flush(context.Background()))
	r := openReader(t, path)
	ctx := context.Background()
	ids := func(q logger.Query) []string {
		t.Helper()
		got, err := r.Requests(ctx, q)
		require.NoError(t, err)
		var out []string
		for _, rec := range got {
			require.NotZero(t, rec.ID)
			out = append(out, rec.RequestID)
		}
		return out
	}
	assert.Len(t, ids(logger.Query{}), 100)
	assert.Equal(t, []string{"a-0", "b-1", "a-2"}, ids(logger.Query{Limit: 3}), "oldest first")
	assert.Equal(t, []string{"a-98", "b-99"}, ids(logger.Query{Limit: 2, Newest: true}), "the newest, still oldest first")
	assert.Equal(t, []string{"b-95", "b-97", "b-99"}, ids(logger.Query{Services: []string{"b"}, Since: base.Add(95 * time.Second)}))
	// Status is 200 + i%5*100: 500 for i%5 == 3.
	assert.Equal(t, []string{"b-3", "a-8", "b-13"}, ids(logger.Query{MinStatus: 500, MaxStatus: 599, Limit: 3}))
	assert.Equal(t, []string{"a-0", "a-10", "a-20"}, ids(logger.Query{Route: "/other", Limit: 3}))
	// Duration is i µs.
	assert.Equal(t, []string{"b-97", "a-98", "b-99"}, ids(logger.Query{Slower: 96 * time.Microsecond}))
	assert.Equal(t, []string{"a-4", "b-5"}, ids(logger.Query{Since: base.Add(4 * time.Second), Until: base.Add(6 * time.Second)}))
	assert.Empty(t, ids(logger.Query{Services: []string{"c"}}))

	last, err := r.LastID(ctx)
	require.NoError(t, err)
	got, err := r.After(ctx, last-2, logger.Query{})
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, last, got[1].ID)
}

// A follower that asks for the rows after the last id it saw sees every row
// of 10 writer processes exactly once, while their batches interleave.
func TestReader_FollowSeesEveryRowOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleet.db")
	s, err := logger.Open(path)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	r := openReader(t, path)
	const procs, perProc = 10, 500
	done := make(chan error, procs)
	for p := range procs {
		cmd := childCmd("write", path, "svc-"+strconv.Itoa(p), perProc)
		out, err := os.CreateTemp(t.TempDir(), "child")
		require.NoError(t, err)
		cmd.Stderr = out
		require.NoError(t, cmd.Start())
		go func() {
			err := cmd.Wait()
			if err != nil {
				data, _ := os.ReadFile(out.Name())
				err = fmt.Errorf("%w: %s", err, data)
			}
			done <- err
		}()
	}
	seen := map[string]int{}
	var last int64
	batches, running := 0, procs
	deadline := time.Now().Add(time.Minute)
	for len(seen) < procs*perProc || running > 0 {
		select {
		case err := <-done:
			require.NoError(t, err)
			running--
		default:
		}
		got, err := r.After(context.Background(), last, logger.Query{Limit: 300})
		require.NoError(t, err)
		for _, rec := range got {
			require.Greater(t, rec.ID, last)
			last = rec.ID
			seen[rec.RequestID]++
		}
		if len(got) > 0 {
			batches++
		}
		require.True(t, time.Now().Before(deadline), "saw %d of %d rows", len(seen), procs*perProc)
	}
	assert.Len(t, seen, procs*perProc)
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s seen %d times", id, n)
		}
	}
	assert.Greater(t, batches, 1, "the follower read while the writers wrote")
}

func TestReader_FindTrace(t *testing.T) {
	s, path := openStore(t)
	for i, tr := range []string{"4bf92f3577b34da6a3ce929d0e0e4736", "4bf92f3577b34da6a3ce929d0e0e4737", "00f067aa0ba902b7aaaaaaaaaaaaaaaa"} {
		rec := testRecord("a", i)
		rec.TraceID = tr
		s.Log(rec)
	}
	s.Log(testRecord("untraced", 7)) // request id untraced-7
	require.NoError(t, s.Flush(context.Background()))
	r := openReader(t, path)
	ctx := context.Background()
	since := time.Now().Add(-time.Hour)

	got, err := r.FindTrace(ctx, "00F067", since)
	require.NoError(t, err, "a unique prefix, in any case")
	assert.Equal(t, "00f067aa0ba902b7aaaaaaaaaaaaaaaa", got)
	got, err = r.FindTrace(ctx, "4bf92f3577b34da6a3ce929d0e0e4737", since)
	require.NoError(t, err)
	assert.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4737", got)
	_, err = r.FindTrace(ctx, "4bf92f", since)
	assert.ErrorContains(t, err, "more than one trace id")

	got, err = r.FindTrace(ctx, "a-1", since)
	require.NoError(t, err, "a request id")
	assert.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4737", got)
	got, err = r.FindTrace(ctx, "untraced-", since)
	require.NoError(t, err)
	assert.Equal(t, "request:untraced-7", got)
	rows, err := r.ByTrace(ctx, got)
	require.NoError(t, err)
	require.Len(t, rows, 1)
	assert.Equal(t, "untraced", rows[0].Service)

	_, err = r.FindTrace(ctx, "nothing", since)
	assert.True(t, errors.Is(err, logger.ErrNotFound), "%v", err)
	assert.ErrorContains(t, err, `"nothing"`)
}
