package platform

import (
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
)

// BudgetHeader carries a call's deadline to the service it calls, as the
// milliseconds the caller will still wait: Propagate (and so Client) sets it
// from the caller's context, and Run caps the request's deadline to it. A
// relative budget, as Envoy's x-envoy-expected-rq-timeout-ms is, needs no
// agreement between the hosts' clocks, which an absolute deadline would;
// milliseconds are as fine as a deadline across a network gets, and one
// integer is cheap to read and hard to get wrong.
const BudgetHeader = "X-Flotilla-Budget-Ms"

// budgetAllowance is taken off a received budget: the time the answer needs
// to travel back, so the caller still has it when the callee gives up.
const budgetAllowance = 2 * time.Millisecond

// ErrBudgetSpent is the error of a request whose caller's budget was spent
// on arrival: it is answered 504 without running its handler, and its log
// row says so.
var ErrBudgetSpent = echo.NewHTTPError(http.StatusGatewayTimeout, "deadline budget spent: the caller has stopped waiting")

// budgetOf reads a request's budget, less the allowance; ok is false when
// it has none, or one that is not exactly one number of milliseconds from
// 0 (malformed, negative, too large for an int64, or repeated), which is
// ignored, as a header a proxy mangled should not fail a request. A huge
// budget is harmless: it only ever caps the service's own timeout.
func budgetOf(r *http.Request) (d time.Duration, ok bool) {
	vs := r.Header.Values(BudgetHeader)
	if len(vs) != 1 {
		return 0, false
	}
	ms, err := strconv.ParseInt(vs[0], 10, 64)
	if err != nil || ms < 0 || ms > int64(time.Duration(math.MaxInt64)/time.Millisecond) {
		return 0, false
	}
	return time.Duration(ms)*time.Millisecond - budgetAllowance, true
}

// requestTimeout is the request timeout capped by the caller's budget; a
// budget never raises it.
func requestTimeout(r *http.Request, timeout time.Duration) time.Duration {
	if b, ok := budgetOf(r); ok && b < timeout {
		return max(b, 0)
	}
	return timeout
}

// refuseSpent answers a request whose budget is spent with ErrBudgetSpent,
// inside the request log, so that the row is there.
func refuseSpent(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if b, ok := budgetOf(c.Request()); ok && b <= 0 {
			return ErrBudgetSpent
		}
		return next(c)
	}
}
