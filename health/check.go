package health

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// DefaultCheckTimeout bounds a Check whose Timeout is zero.
const DefaultCheckTimeout = 2 * time.Second

// ErrWarn marks a check error as a warning rather than a failure: a Run
// that returns an error for which errors.Is(err, ErrWarn) holds reports warn.
// Warnf makes such errors.
var ErrWarn = errors.New("warn")

type warnError struct{ msg string }

func (e *warnError) Error() string        { return e.msg }
func (e *warnError) Is(target error) bool { return target == ErrWarn }

// Warnf returns an error, formatted like fmt.Errorf, that makes a check
// report warn with that text as its output.
func Warnf(format string, args ...any) error {
	return &warnError{msg: fmt.Sprintf(format, args...)}
}

// Check is one health check of one component.
type Check struct {
	// Component names what is checked, such as "requestlog" or "postgres".
	// It must not contain a colon.
	Component string
	// Measurement names what is measured, such as "queue" or
	// "responseTime". The check's key is "Component:Measurement", or
	// Component alone when Measurement is empty. It must not contain a
	// colon.
	Measurement string
	// ComponentID identifies the instance, if there are several.
	ComponentID string
	// ComponentType is "component" (the default), "datastore", "system" or
	// a URI.
	ComponentType string
	// ObservedUnit is the unit of the observed value, such as "ms".
	ObservedUnit string
	// Critical makes a failure of this check fail the whole service. A
	// failing check that is not critical makes the service warn.
	Critical bool
	// Timeout bounds one run (default DefaultCheckTimeout). A run that
	// takes longer fails with "timed out".
	Timeout time.Duration
	// Run performs the check and returns what it observed. A nil error
	// passes; an error wrapping ErrWarn (see Warnf) warns; any other error
	// fails. A panic in Run fails the check with the panic's message.
	Run func(ctx context.Context) (observed any, err error)
}

// Key returns the key of the check's results in Response.Checks.
func (c *Check) Key() string {
	if c.Measurement == "" {
		return c.Component
	}
	return c.Component + ":" + c.Measurement
}

func (c *Check) validate() error {
	if c.Component == "" {
		return errors.New("health: check has no Component")
	}
	if strings.Contains(c.Component, ":") || strings.Contains(c.Measurement, ":") {
		return fmt.Errorf("health: check %q: Component and Measurement must not contain ':'", c.Key())
	}
	if c.Run == nil {
		return fmt.Errorf("health: check %q has no Run function", c.Key())
	}
	return nil
}

// run performs c with its timeout and turns its outcome into a result and
// the status it contributes to the service.
func (c *Check) run(ctx context.Context, now time.Time) (CheckResult, Status) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultCheckTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	type outcome struct {
		observed any
		err      error
	}
	done := make(chan outcome, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- outcome{err: fmt.Errorf("panic: %v", p)}
			}
		}()
		v, err := c.Run(ctx)
		done <- outcome{v, err}
	}()
	var o outcome
	select {
	case o = <-done:
	case <-ctx.Done():
		o.err = fmt.Errorf("timed out after %v", timeout)
	}

	typ := c.ComponentType
	if typ == "" {
		typ = "component"
	}
	res := CheckResult{
		ComponentID:   c.ComponentID,
		ComponentType: typ,
		ObservedValue: o.observed,
		ObservedUnit:  c.ObservedUnit,
		Status:        Pass,
		Time:          now.UTC().Format(time.RFC3339),
	}
	if o.err == nil {
		return res, Pass
	}
	res.Output = o.err.Error()
	if errors.Is(o.err, ErrWarn) {
		res.Status = Warn
		return res, Warn
	}
	res.Status = Fail
	if c.Critical {
		return res, Fail
	}
	return res, Warn
}
