package platform_test

import (
	"debug/buildinfo"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/platform"
)

// deps returns the module paths a built binary contains.
func deps(t *testing.T, bin string) []string {
	t.Helper()
	info, err := buildinfo.ReadFile(bin)
	require.NoError(t, err)
	var out []string
	for _, d := range info.Deps {
		out = append(out, d.Path)
	}
	return out
}

// A service built with -tags flotilla_lean has neither the OTLP exporters
// (nor the gRPC they bring) nor the Prometheus exporter. It serves as
// usual, and a configuration that asks for an exporter it lacks stops it
// at start with an error that says how to fix it.
func TestLeanBuild(t *testing.T) {
	assert.False(t, platform.LeanBuild, "the tests' own build is the full one")
	dir := t.TempDir()
	lean, full := filepath.Join(dir, "hello-lean"), filepath.Join(dir, "hello")
	for bin, tags := range map[string]string{lean: "flotilla_lean", full: ""} {
		out, err := exec.Command("go", "build", "-tags", tags, "-o", bin, "./testdata/hello").CombinedOutput()
		require.NoError(t, err, "%s", out)
	}
	for _, mod := range []string{"google.golang.org/grpc", "github.com/prometheus/client_golang", "go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"} {
		assert.Contains(t, deps(t, full), mod)
		assert.NotContains(t, deps(t, lean), mod)
	}
	fullInfo, _ := os.Stat(full)
	leanInfo, _ := os.Stat(lean)
	t.Logf("binary sizes: %d bytes full, %d lean", fullInfo.Size(), leanInfo.Size())

	run := func(env ...string) (string, error) {
		cmd := exec.Command(lean)
		cmd.Env = append(os.Environ(), append([]string{"FLOTILLA_DB=" + filepath.Join(dir, "f.db"), "FLOTILLA_REGISTRY=", "PORT=" + freePort(t)}, env...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://127.0.0.1:4318/v1/traces")
	require.Error(t, err, "it must not start")
	assert.Contains(t, out, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set")
	assert.Contains(t, out, "-tags flotilla_lean")
	assert.Contains(t, out, "rebuild it without that tag")
	out, err = run("OTEL_TRACES_EXPORTER=otlp") // the default endpoint, but named by the exporter variable
	require.Error(t, err, "it must not start")
	assert.Contains(t, out, "OTEL_TRACES_EXPORTER is set")
	out, err = run("OTEL_LOGS_EXPORTER=otlp")
	require.Error(t, err, "it must not start")
	assert.Contains(t, out, "OTEL_LOGS_EXPORTER is set")
	out, err = run("FLOTILLA_METRICS=1")
	require.Error(t, err, "it must not start")
	assert.Contains(t, out, "/metrics is on")

	// Without those it serves like any service.
	port := freePort(t)
	s := startAs(t, lean, nil, "hello", "FLOTILLA_DB="+filepath.Join(dir, "f.db"), "FLOTILLA_REGISTRY=", "PORT="+port).at("tcp", "127.0.0.1:"+port)
	s.healthy(t)
	code, body := s.get(t, "/hello")
	assert.Equal(t, 200, code, body)
	assert.Equal(t, 0, s.stop(t))
}
