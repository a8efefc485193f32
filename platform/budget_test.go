package platform_test

import (
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/breaker"
	"github.com/flotilla-go/flotilla/platform"
)

// A call carries what is left of its caller's deadline; svc-b, whose own
// request timeout is 30 s, gives up on a request when its caller's budget
// runs out; and a request whose budget is spent on arrival is answered 504
// without its handler, and logged so.
func TestRun_DeadlineBudget(t *testing.T) {
	dir := tempDir(t)
	db := filepath.Join(dir, "f.db")
	bPort := freePort(t)
	b := start(t, "svc-b", "FLOTILLA_DB="+db, "PORT="+bPort).at("tcp", "127.0.0.1:"+bPort)
	aPort := freePort(t)
	a := start(t, "svc-a", "FLOTILLA_DB="+db, "PORT="+aPort, "PLATFORM_TEST_REQUEST_TIMEOUT=300ms",
		"PLATFORM_TEST_RELAY_TO=127.0.0.1:"+bPort).at("tcp", "127.0.0.1:"+aPort)
	a.healthy(t)
	b.healthy(t)

	// svc-a's call to svc-b carries what is left of svc-a's 300 ms.
	code, got := a.get(t, "/relay/budget")
	require.Equal(t, 200, code)
	ms, err := strconv.Atoi(got)
	require.NoError(t, err, "svc-b got no budget: %q", got)
	assert.True(t, ms > 0 && ms <= 300, "budget %d ms", ms)

	// From a service with the default 30 s timeout, the budget is the
	// breaker's attempt timeout, which ends the attempt sooner.
	cPort := freePort(t)
	c := start(t, "svc-c", "FLOTILLA_DB="+db, "PORT="+cPort, "PLATFORM_TEST_RELAY_TO=127.0.0.1:"+bPort).at("tcp", "127.0.0.1:"+cPort)
	c.healthy(t)
	code, got = c.get(t, "/relay/budget")
	require.Equal(t, 200, code)
	ms, err = strconv.Atoi(got)
	require.NoError(t, err, "svc-b got no budget: %q", got)
	assert.True(t, ms > 1000 && ms <= int(breaker.DefaultAttemptTimeout/time.Millisecond), "budget %d ms", ms)

	// svc-b, whose own timeout is 30 s, gives up on a request whose
	// caller gave it 300 ms (and waits 10 s for the answer).
	req, err := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+bPort+"/deadline", nil)
	require.NoError(t, err)
	req.Header.Set(platform.BudgetHeader, "300")
	res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	require.NoError(t, err, "svc-b held the request past its caller's budget")
	res.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, res.StatusCode, "the capped deadline passed")
	d := openDB(t, db)

	req, err = http.NewRequest(http.MethodGet, "http://127.0.0.1:"+bPort+"/hello/late", nil)
	require.NoError(t, err)
	req.Header.Set(platform.BudgetHeader, "1")
	res, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusGatewayTimeout, res.StatusCode)
	eventually(t, 10*time.Second, func() bool {
		return len(rows(t, d, "service = 'svc-b' AND path = '/hello/late' AND status = 504 AND error LIKE '%deadline budget spent%'")) == 1
	}, "the refused request is not in the log with its reason")

	req.Header.Set(platform.BudgetHeader, "not a number") // ignored, as a mangled header should be
	res, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode)
}

// A budget header that is malformed, negative, huge or repeated is ignored:
// the request runs with the service's own timeout.
func TestRun_BadBudgetsAreIgnored(t *testing.T) {
	port := freePort(t)
	s := start(t, "agent-geo", "FLOTILLA_DB="+filepath.Join(tempDir(t), "f.db"), "PORT="+port).at("tcp", "127.0.0.1:"+port)
	s.healthy(t)
	for _, values := range [][]string{{"soon"}, {"-5"}, {"99999999999999999999999"}, {"0", "0"}, {"1.5"}, {""}} {
		req, err := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+port+"/hello/x", nil)
		require.NoError(t, err)
		req.Header[platform.BudgetHeader] = values
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		assert.Equal(t, http.StatusOK, res.StatusCode, "%q", values)
	}
}
