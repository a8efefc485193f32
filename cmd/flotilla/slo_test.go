package main

import (
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/logger"
)

// sloFleet writes a port map with objectives and a log in which agent-geo
// fails 2% of its requests over the last hour and agent-feeds none.
func sloFleet(t *testing.T) (registry, db string) {
	dir := t.TempDir()
	registry, db = filepath.Join(dir, "flotilla.toml"), filepath.Join(dir, "flotilla.db")
	require.NoError(t, os.WriteFile(registry, []byte(`[defaults]
db = "flotilla.db"

[[service]]
name = "agent-geo"
port = 4001
slo = { availability = "99.9%", latency = "300ms" }

[[service]]
name = "agent-feeds"
port = 4002
slo = { availability = "99%", window = "7d" }

[[service]]
name = "no-slo"
port = 4003
`), 0o600))
	s, err := logger.Open(db)
	require.NoError(t, err)
	now := time.Now()
	for i := range 3000 {
		st := 200
		if i%50 == 0 {
			st = 502
		}
		at := now.Add(-time.Duration(i) * time.Hour / 3000)
		s.Log(logger.Record{Time: at, Service: "agent-geo", Status: st, Duration: 20 * time.Millisecond})
		s.Log(logger.Record{Time: at, Service: "agent-feeds", Status: 200, Duration: time.Millisecond})
	}
	require.NoError(t, s.Close())
	return registry, db
}

func TestSLO_TableAndExitCode(t *testing.T) {
	registry, _ := sloFleet(t)
	out, errOut, code := cli("--registry", registry, "slo")
	assert.Equal(t, exitFinding, code, "an objective alerts: %s", errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 4, out)
	assert.Regexp(t, `^SERVICE\s+OBJECTIVE\s+WINDOW\s+GOOD/TOTAL\s+BUDGET\s+BURN 5M`, lines[0])
	assert.Regexp(t, `^agent-feeds\s+availability 99%\s+7d\s+3000/3000\s+100\.0%\s+0\.0\s+0\.0\s+0\.0\s+0\.0\s+-$`, lines[1])
	assert.Regexp(t, `^agent-geo\s+availability 99\.9%\s+30d\s+2940/3000\s+-1900\.0%\s+[0-9.]+\s+[0-9.]+\s+[0-9.]+\s+20\.0\s+fast burn$`, lines[2])
	assert.Regexp(t, `^agent-geo\s+latency 300ms at 99%\s+30d\s+3000/3000\s+100\.0%`, lines[3])

	out, _, code = cli("--registry", registry, "slo", "--json", "agent-feeds")
	assert.Equal(t, exitOK, code)
	var row sloRow
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(out)), &row))
	assert.Equal(t, sloRow{Service: "agent-feeds", Objective: "availability 99%", Window: "7d", Target: 0.99, Good: 3000, Total: 3000, Remaining: 1}, row)

	_, errOut, code = cli("--registry", registry, "slo", "nobody")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, `no service "nobody"`)
}

// Damaged rollups make slo fail with the way out; rollups rebuild fixes
// them.
func TestRollupsRebuild(t *testing.T) {
	registry, db := sloFleet(t)
	s, err := logger.Open(db)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	raw, err := sql.Open("sqlite3", "file:"+db+"?_busy_timeout=5000")
	require.NoError(t, err)
	_, err = raw.Exec(`UPDATE service_rollups SET hist = 'nonsense'`)
	require.NoError(t, err)
	require.NoError(t, raw.Close())

	_, errOut, code := cli("--registry", registry, "slo", "agent-feeds")
	assert.Equal(t, exitFinding, code)
	assert.Contains(t, errOut, "rollups are damaged")
	assert.Contains(t, errOut, "flotilla rollups rebuild")

	out, errOut, code := cli("--registry", registry, "rollups", "rebuild")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "rolled up 6000 raw rows again")
	out, _, code = cli("--registry", registry, "rollups", "status")
	assert.Equal(t, exitOK, code)
	assert.Equal(t, "rollups up to date\n", out)
	out, errOut, code = cli("--registry", registry, "slo", "--json", "agent-feeds")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, `"good":3000,"total":3000`)

	_, errOut, code = cli("--db", filepath.Join(t.TempDir(), "none.db"), "--registry", registry, "rollups", "rebuild")
	assert.Equal(t, exitFinding, code)
	assert.Contains(t, errOut, "no request log")
}
