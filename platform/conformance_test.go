package platform_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// harnessDir is the W3C Trace Context test harness: FLOTILLA_W3C_HARNESS,
// else the conformance folder beside the repository.
func harnessDir(t *testing.T) string {
	dir := os.Getenv("FLOTILLA_W3C_HARNESS")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "conformance", "w3c-trace-context")
	}
	if _, err := os.Stat(filepath.Join(dir, "test.py")); err != nil {
		t.Skipf("no W3C Trace Context harness at %s (set FLOTILLA_W3C_HARNESS)", dir)
	}
	return dir
}

// The official W3C Trace Context harness, at level 2 and strict level 2,
// against a service whose /test calls each URL it is given with
// platform.Client: every test passes.
func TestTraceContext_W3CHarness(t *testing.T) {
	dir := harnessDir(t)
	python := "/usr/bin/python3"
	if out, err := exec.Command(python, "-c", "import aiohttp").CombinedOutput(); err != nil {
		if os.Getenv("FLOTILLA_REQUIRE_INTEGRATION") != "" {
			t.Fatalf("python3 with aiohttp is needed (apt-get install python3-aiohttp): %v: %s", err, out)
		}
		t.Skipf("python3 with aiohttp is not installed: %s", out)
	}
	port := freePort(t)
	svc := start(t, "tracer", "FLOTILLA_DB="+filepath.Join(tempDir(t), "flotilla.db"), "PORT="+port).at("tcp", "127.0.0.1:"+port)
	svc.healthy(t)
	harnessPort := freePort(t)
	cmd := exec.Command(python, "test.py", "http://127.0.0.1:"+port+"/test")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HARNESS_PORT="+harnessPort, "SPEC_LEVEL=2", "STRICT_LEVEL=2", "HARNESS_TIMEOUT=10")
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("the harness did not finish: %s", out)
	}
	text := string(out)
	t.Log(text)
	require.NoError(t, err, "failing tests:\n%s", failures(text))
	assert.Contains(t, text, "OK")
	ran := strings.Fields(text[strings.LastIndex(text, "Ran ")+4:])[0]
	n, _ := strconv.Atoi(ran)
	assert.GreaterOrEqual(t, n, 40, "the whole suite ran")
}

// failures lists the harness's FAIL and ERROR lines.
func failures(out string) string {
	var b strings.Builder
	for _, line := range strings.Split(out, "\n") {
		if strings.HasSuffix(line, "FAIL") || strings.HasSuffix(line, "ERROR") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}
