// Package bench compares flotilla's breaker with peer libraries, side by
// side in one run, on the same wrapped function. It is a separate module so
// that the library's go.mod lists none of the peers.
package bench

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/sony/gobreaker/v2"

	"github.com/flotilla-go/flotilla/breaker"
)

var errFail = errors.New("failed")

func work() error { return nil }

func parallel(b *testing.B, f func()) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			f()
		}
	})
}

func serial(b *testing.B, f func()) {
	b.ReportAllocs()
	for range b.N {
		f()
	}
}

// BenchmarkClosed: every call succeeds.
func BenchmarkClosed(b *testing.B) {
	ctx := context.Background()
	flot := breaker.New()
	flotWin := breaker.New(breaker.WithFailureRate(0.5), breaker.WithSlowCalls(time.Second, 0.5))
	gob := gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{Name: "x"})
	fs := circuitbreaker.NewWithDefaults[any]()
	fsExec := failsafe.With[any](fs)
	cases := []struct {
		name string
		f    func()
	}{
		{"flotilla-consecutive", func() { flot.Execute(ctx, func(context.Context) error { return work() }) }},
		{"flotilla-window-slow", func() { flotWin.Execute(ctx, func(context.Context) error { return work() }) }},
		{"gobreaker", func() { gob.Execute(func() (struct{}, error) { return struct{}{}, work() }) }},
		{"failsafe-go", func() { fsExec.Run(work) }},
	}
	for _, c := range cases {
		b.Run(c.name+"/serial", func(b *testing.B) { serial(b, c.f) })
		b.Run(c.name+"/parallel", func(b *testing.B) { parallel(b, c.f) })
	}
}

// BenchmarkOpen: the breaker is open and refuses every call.
func BenchmarkOpen(b *testing.B) {
	ctx := context.Background()
	flot := breaker.New(breaker.WithConsecutiveFailures(1), breaker.WithOpenTimeout(time.Hour, time.Hour))
	flot.Execute(ctx, func(context.Context) error { return errFail })
	gob := gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{Name: "x", Timeout: time.Hour,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 1 }})
	gob.Execute(func() (struct{}, error) { return struct{}{}, errFail })
	fs := circuitbreaker.NewBuilder[any]().WithFailureThreshold(1).WithDelay(time.Hour).Build()
	fsExec := failsafe.With[any](fs)
	fsExec.Run(func() error { return errFail })
	cases := []struct {
		name string
		f    func()
	}{
		{"flotilla", func() { flot.Execute(ctx, func(context.Context) error { return work() }) }},
		{"gobreaker", func() { gob.Execute(func() (struct{}, error) { return struct{}{}, work() }) }},
		{"failsafe-go", func() { fsExec.Run(work) }},
	}
	for _, c := range cases {
		b.Run(c.name+"/serial", func(b *testing.B) { serial(b, c.f) })
		b.Run(c.name+"/parallel", func(b *testing.B) { parallel(b, c.f) })
	}
}
