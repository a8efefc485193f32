package main

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-go/flotilla/discovery"
	"github.com/flotilla-go/flotilla/logger"
)

// fleetFile writes rows requests spread evenly over the last 24 hours from
// 45 services of 8 routes each, each service through its own Store as in a
// fleet: 90% 200, 5% 404, 3% 500, 2% 429, latencies log-normal around
// 8 ms. It then compacts the rollups, as the services do every minute.
func fleetFile(b *testing.B, dir string, rows int) string {
	b.Helper()
	path := filepath.Join(dir, fmt.Sprintf("fleet-%d.db", rows))
	if keep := os.Getenv("FLOTILLA_BENCH_FILES"); keep != "" { // reuse the files of an earlier run
		path = filepath.Join(keep, fmt.Sprintf("fleet-%d.db", rows))
		if _, err := os.Stat(path); err == nil {
			return path
		}
	}
	now := time.Now()
	span := 24 * time.Hour
	var statuses [100]int
	for i := range statuses {
		statuses[i] = map[bool]int{true: 200}[i < 90] + map[bool]int{true: 404}[i >= 90 && i < 95] +
			map[bool]int{true: 500}[i >= 95 && i < 98] + map[bool]int{true: 429}[i >= 98]
	}
	const services = 45
	var wg sync.WaitGroup
	errs := make(chan error, services)
	for svc := range services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := logger.Open(path, logger.WithRetention(0))
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			rng := rand.New(rand.NewPCG(7, uint64(svc)))
			name := fmt.Sprintf("svc-%02d", svc)
			for i := svc; i < rows; i += services {
				route := (i / services) % 8
				s.Log(logger.Record{
					Time: now.Add(-span + time.Duration(i)*(span/time.Duration(rows))), Service: name,
					Method: "GET", Path: fmt.Sprintf("/r%d/%d", route, i), Route: fmt.Sprintf("/r%d/:id", route),
					Status:   statuses[rng.IntN(100)],
					Duration: time.Duration(math.Exp(9+0.8*rng.NormFloat64())) * time.Microsecond,
					IP:       "192.0.2.1", UserAgent: "bench", RequestID: fmt.Sprintf("r%d", i),
				})
				if (i/services)%65_536 == 65_535 { // within the queue, so that nothing is dropped
					if err := s.Flush(context.Background()); err != nil {
						errs <- err
						return
					}
				}
			}
			if err := s.Close(); err != nil {
				errs <- err
			} else if st := s.Stats(); st.Dropped > 0 {
				errs <- fmt.Errorf("%s dropped %d rows", name, st.Dropped)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	s, err := logger.Open(path, logger.WithRetention(0))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if _, err := s.CompactRollups(context.Background()); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkPages measures the server time of the pages on files of 1 and
// 10 million rows over the same 24 hours, in one run: the 24-hour overview
// and service page, and the 30-day overview. They read the rollups, so the
// two files should cost about the same. It also reports how far the
// rollups' percentiles are from the exact ones of the raw rows, and the
// file's size per million rows, raw rows and rollups apart.
func BenchmarkPages(b *testing.B) {
	dir := b.TempDir()
	for _, rows := range []int{1_000_000, 10_000_000} {
		path := fleetFile(b, dir, rows)
		reg := filepath.Join(dir, "flotilla.toml")
		var m string
		for i := range 45 {
			m += fmt.Sprintf("[[service]]\nname = \"svc-%02d\"\nport = %d\nslo = { availability = \"99.9%%\", latency = \"100ms\" }\n", i, 1+i)
		}
		if err := os.WriteFile(reg, []byte(m), 0o600); err != nil {
			b.Fatal(err)
		}
		r, err := discovery.Load(reg)
		if err != nil {
			b.Fatal(err)
		}
		app, mon, closeFn := newApp(r, path)
		mon.Poll(context.Background()) // the objectives, as the monitor keeps them
		for _, page := range []struct{ name, url string }{
			{"overview-24h", "/?window=24h"},
			{"service-24h", "/service/svc-07?window=24h"},
			{"overview-30d", "/?window=30d"},
		} {
			b.Run(fmt.Sprintf("rows=%dM/%s", rows/1_000_000, page.name), func(b *testing.B) {
				for range b.N {
					w := httptest.NewRecorder()
					app.ServeHTTP(w, httptest.NewRequest(http.MethodGet, page.url, nil))
					if w.Code != http.StatusOK {
						b.Fatal(w.Code, w.Body.String())
					}
				}
			})
		}
		b.Run(fmt.Sprintf("rows=%dM/slos", rows/1_000_000), func(b *testing.B) {
			lr, err := logger.OpenReader(path)
			if err != nil {
				b.Fatal(err)
			}
			defer lr.Close()
			d := &dashboard{reg: r}
			for range b.N {
				if _, err := lr.SLOs(context.Background(), d.objectives()); err != nil {
					b.Fatal(err)
				}
			}
		})
		closeFn()
		if rows == 1_000_000 {
			b.Run("rows=1M/accuracy", func(b *testing.B) { accuracy(b, path) })
		}
		b.Run(fmt.Sprintf("rows=%dM/size", rows/1_000_000), func(b *testing.B) { sizes(b, path, rows) })
	}
}

// accuracy reports the largest relative error of the rollups' p50, p95 and
// p99 of each service over the file against the exact ones.
func accuracy(b *testing.B, path string) {
	lr, err := logger.OpenReader(path)
	if err != nil {
		b.Fatal(err)
	}
	defer lr.Close()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	// The summary's window holds every row, as the exact query does, however
	// long ago the file was written (FLOTILLA_BENCH_FILES).
	var first int64
	if err := db.QueryRow(`SELECT min(ts) FROM requests`).Scan(&first); err != nil {
		b.Fatal(err)
	}
	sums, err := lr.Summary(context.Background(), time.UnixMicro(first).Add(-time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	worst := 0.0
	for range b.N {
		for _, s := range sums {
			for _, q := range []struct {
				p   int
				got time.Duration
			}{{50, s.P50}, {95, s.P95}, {99, s.P99}} {
				var exact float64
				err := db.QueryRow(`WITH d AS (SELECT duration_us, row_number() OVER (ORDER BY duration_us) AS rn, count(*) OVER () AS n
					FROM requests WHERE service = ? AND status <> 101) SELECT duration_us FROM d WHERE rn = (n * ? + 99) / 100`, s.Service, q.p).Scan(&exact)
				if err != nil {
					b.Fatal(err)
				}
				worst = max(worst, math.Abs(float64(q.got.Microseconds())-exact)/exact)
			}
		}
	}
	b.ReportMetric(100*worst, "max-err-%")
}

// sizes reports the file's bytes per million rows: raw rows and their
// indexes, and rollups, measured by vacuuming a copy without the rollups.
func sizes(b *testing.B, path string, rows int) {
	for range b.N {
		db, err := sql.Open("sqlite3", "file:"+path)
		if err != nil {
			b.Fatal(err)
		}
		full := filepath.Join(b.TempDir(), "full.db")
		raw := filepath.Join(b.TempDir(), "raw.db")
		if _, err := db.Exec(`VACUUM INTO ?`, full); err != nil {
			b.Fatal(err)
		}
		db.Close()
		cp, err := sql.Open("sqlite3", "file:"+full)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := cp.Exec(`DROP TABLE rollups; DROP TABLE service_rollups`); err != nil {
			b.Fatal(err)
		}
		if _, err := cp.Exec(`VACUUM INTO ?`, raw); err != nil {
			b.Fatal(err)
		}
		cp.Close()
		f, _ := os.Stat(full)
		r, _ := os.Stat(raw)
		perM := float64(rows) / 1e6
		b.ReportMetric(float64(r.Size())/perM/1e6, "raw-MB/Mrows")
		b.ReportMetric(float64(f.Size()-r.Size())/perM/1e6, "rollup-MB/Mrows")
		b.ReportMetric(float64(f.Size()-r.Size())/1e6, "rollup-MB")
	}
}
