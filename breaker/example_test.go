package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/flotilla-go/flotilla/breaker"
)

// Wrap any call: after five failures in a row the breaker fails fast.
func ExampleBreaker_Execute() {
	b := breaker.New(breaker.WithName("postgres"))
	for range 5 {
		b.Execute(context.Background(), func(ctx context.Context) error { return errors.New("connection refused") })
	}
	err := b.Execute(context.Background(), func(ctx context.Context) error { return nil })
	fmt.Println(errors.Is(err, breaker.ErrOpen), b.Snapshot().State)
	// Output: true open
}

// The two-step form, for code that cannot be wrapped in a function.
func ExampleBreaker_Allow() {
	b := breaker.New(breaker.WithSlowCalls(500*time.Millisecond, 0.5), breaker.WithFailureRate(0.5))
	done, err := b.Allow()
	if err != nil {
		fmt.Println("not calling:", err)
		return
	}
	// ... make the call ...
	done(breaker.Success)
	fmt.Println(b.Snapshot().Calls, "call in the window")
	// Output: 1 call in the window
}

// A client for calling siblings: one breaker per host, retries for
// idempotent requests, a 2 s bound per attempt.
func ExampleNewClient() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "pong")
	}))
	defer srv.Close()

	client := breaker.NewClient(nil, breaker.WithRetries(1), breaker.WithBreaker(
		breaker.OnStateChange(func(name string, from, to breaker.State) {
			fmt.Printf("%s: %s -> %s\n", name, from, to)
		})))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	res, err := client.Do(req)
	if err != nil {
		fmt.Println(err) // breaker "host": 3 attempts: 503 Service Unavailable, timeout after 2s, ...
		return
	}
	res.Body.Close()
	fmt.Println(res.Status)
	// Output: 200 OK
}
