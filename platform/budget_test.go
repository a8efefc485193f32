package platform_test

import (
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-go/flotilla/platform"
)

// A call carries what is left of its caller's deadline: svc-b, whose own
// request timeout is 30 s, gives up on a request when svc-a (300 ms) has,
// and a request whose budget is spent on arrival is answered 504 without
// its handler, and logged so.
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

	code, _ := a.get(t, "/relay/deadline") // svc-a proxies to svc-b's /deadline, which waits for its context
	assert.GreaterOrEqual(t, code, 500)
	d := openDB(t, db)
	eventually(t, 10*time.Second, func() bool {
		return len(rows(t, d, "service = 'svc-b' AND route = '/deadline'")) == 1
	}, "svc-b did not give up with its caller (its own timeout is 30 s)")
	// Its own deadline (503) or its caller's hanging up (499) came first,
	// whichever the machine's timing gave: either way not its own 30 s.
	assert.Contains(t, []int{http.StatusServiceUnavailable, 499}, rows(t, d, "service = 'svc-b' AND route = '/deadline'")[0].status)

	req, err := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+bPort+"/hello/late", nil)
	require.NoError(t, err)
	req.Header.Set(platform.BudgetHeader, "1")
	res, err := http.DefaultClient.Do(req)
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
