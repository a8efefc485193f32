package main

import (
	"crypto/subtle"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"
)

// access guards the gateway: who may create keys, and what each call
// costs. Client addresses come from echo's RealIP, which the platform
// takes from X-Forwarded-For only when nginx (a trusted proxy) sent it.
type access struct {
	keys       *keys
	perKey     *limiters // calls, by key id
	perAddress *limiters // key creations, by client address
	badKeys    *limiters // invalid keys sent, by client address
	total      *rate.Limiter
	adminToken string // when set, creating a key needs it
	freeKeys   bool   // anyone may create a key (within the limits)
}

// createKey makes a key, within the creation limits: per client address
// and for everyone together.
func (a *access) createKey(c echo.Context) error {
	admin := a.adminToken != "" && subtle.ConstantTimeCompare([]byte(bearer(c)), []byte(a.adminToken)) == 1
	if !admin {
		if !a.freeKeys {
			return echo.NewHTTPError(http.StatusForbidden, "keys are created by the operator: send the admin token")
		}
		if err := refuse(c, a.perAddress.get(c.RealIP()), "too many keys from this address"); err != nil {
			return err
		}
		if err := refuse(c, a.total, "too many keys created lately; try later"); err != nil {
			return err
		}
	}
	key, err := a.keys.create(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"key": key, "credits": a.keys.credits,
		"note": "shown once: keep it; send it as Authorization: Bearer <key>"})
}

// guard is the middleware of /v1: a valid key, within its rate limit
// (checked before spending, so a refused call costs no credit), with a
// credit left. An address that has sent too many invalid keys is refused
// before its key is looked up, so guessing keys is slow and costs the
// keys' file nothing.
func (a *access) guard(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		key := bearer(c)
		if key == "" {
			return echo.NewHTTPError(http.StatusUnauthorized, "send Authorization: Bearer <key>; create one with POST /api/keys/create")
		}
		bad := a.badKeys.get(c.RealIP())
		if bad.Tokens() < 1 {
			if err := refuse(c, bad, "too many invalid API keys from this address; try later"); err != nil {
				return err
			}
		}
		ctx := c.Request().Context()
		id, err := a.keys.check(ctx, key)
		if errors.Is(err, errBadKey) {
			bad.Allow() // counts the failure
			return echo.NewHTTPError(http.StatusUnauthorized, "invalid API key")
		} else if err != nil {
			return err
		}
		if err := refuse(c, a.perKey.get(id), "rate limit: slow down"); err != nil {
			return err
		}
		if _, err := a.keys.spend(ctx, id); errors.Is(err, errNoCredits) {
			return echo.NewHTTPError(http.StatusPaymentRequired, "no credits left on this key")
		} else if err != nil {
			return err
		}
		return next(c)
	}
}

// refuse answers 429 with Retry-After when lim has no token now.
func refuse(c echo.Context, lim *rate.Limiter, msg string) error {
	r := lim.Reserve()
	if d := r.Delay(); d > 0 {
		r.Cancel()
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(min(d, 24*time.Hour).Seconds()))))
		return echo.NewHTTPError(http.StatusTooManyRequests, msg)
	}
	return nil
}

func bearer(c echo.Context) string {
	key, ok := strings.CutPrefix(c.Request().Header.Get("Authorization"), "Bearer ")
	if !ok {
		return ""
	}
	return key
}
