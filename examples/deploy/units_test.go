// Package deploy_test checks the systemd unit templates with systemd's own
// verifier.
package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// systemd-analyze verify loads an instance of each template as systemd
// would and reports unknown keys, values it cannot parse, missing
// dependencies and commands that are not there. The only complaint allowed
// is the service's binary, which a test machine does not have.
func TestUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("FLOTILLA_REQUIRE_INTEGRATION") != "" {
			t.Fatal("systemd-analyze is not installed and FLOTILLA_REQUIRE_INTEGRATION is set: apt-get install systemd")
		}
		t.Skip("systemd-analyze is not installed (apt-get install systemd); set FLOTILLA_REQUIRE_INTEGRATION=1 to make this a failure")
	}
	dir := t.TempDir()
	for _, name := range []string{"flotilla@.service", "flotilla@.socket"} {
		b, err := os.ReadFile(name)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
	}
	cmd := exec.Command(analyze, "verify",
		filepath.Join(dir, "flotilla@agent-geo.socket"), filepath.Join(dir, "flotilla@agent-geo.service"))
	out, _ := cmd.CombinedOutput()
	var complaints []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" || strings.Contains(line, "Command /usr/local/bin/agent-geo is not executable") {
			continue
		}
		complaints = append(complaints, line)
	}
	assert.Empty(t, complaints, "systemd-analyze verify:\n%s", out)
	assert.Contains(t, string(out), "/usr/local/bin/agent-geo", "the instance name is the binary's name")
}
