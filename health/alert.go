package health

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Retry bounds of alert delivery.
const (
	// DefaultSinkRetryFor is how long a failing sink is retried for one
	// alert before the alert is given up for that sink.
	DefaultSinkRetryFor = 5 * time.Minute
	// DefaultSinkTimeout bounds one delivery attempt.
	DefaultSinkTimeout = 10 * time.Second
	// sinkQueueLen is how many alerts wait for a slow sink; past it the
	// oldest waiting alert is dropped.
	sinkQueueLen = 64
)

// AlertSink delivers alerts somewhere.
type AlertSink interface {
	// Send delivers a. An error makes the monitor retry with backoff.
	Send(ctx context.Context, a Alert) error
}

// SinkFunc makes a function an AlertSink.
type SinkFunc func(ctx context.Context, a Alert) error

// Send calls f.
func (f SinkFunc) Send(ctx context.Context, a Alert) error { return f(ctx, a) }

// Webhook returns a sink that POSTs each alert as JSON to url: the Alert's
// fields plus "text", the rendered message, so Slack- and
// Mattermost-compatible incoming webhooks work as they are. A non-2xx
// answer is an error. A nil client means http.DefaultClient.
func Webhook(url string, client *http.Client) AlertSink {
	if client == nil {
		client = http.DefaultClient
	}
	return SinkFunc(func(ctx context.Context, a Alert) error {
		body, err := json.Marshal(struct {
			Text string `json:"text"`
			Alert
		}{a.Text(), a})
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("health: webhook: %w", err)
		}
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("health: webhook: %w", err)
		}
		defer res.Body.Close()
		io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
		if res.StatusCode < 200 || res.StatusCode > 299 {
			return fmt.Errorf("health: webhook %s: %s", url, res.Status)
		}
		return nil
	})
}

// Command returns a sink that runs a command for each alert with the
// alert's text on its standard input, such as
// Command("mail", "-s", "fleet", "ops@example.com"). A non-zero exit is an
// error.
func Command(name string, args ...string) AlertSink {
	return SinkFunc(func(ctx context.Context, a Alert) error {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Stdin = strings.NewReader(a.Text())
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("health: alert command %s: %w: %s", name, err, bytes.TrimSpace(out))
		}
		return nil
	})
}

// Writer returns a sink that writes each alert's text to w, such as
// os.Stdout.
func Writer(w io.Writer) AlertSink {
	var mu sync.Mutex
	return SinkFunc(func(_ context.Context, a Alert) error {
		mu.Lock()
		defer mu.Unlock()
		_, err := io.WriteString(w, a.Time.UTC().Format(time.RFC3339)+" "+a.Text())
		return err
	})
}

// sinkQueue delivers alerts to one sink in order from its own goroutine.
type sinkQueue struct {
	sink    AlertSink
	mu      sync.Mutex
	queue   []Alert
	busy    bool // an alert is being delivered
	wake    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once
}

func newSinkQueue(s AlertSink) *sinkQueue {
	q := &sinkQueue{sink: s, wake: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	go q.run()
	return q
}

func (q *sinkQueue) push(a Alert) {
	q.mu.Lock()
	if len(q.queue) >= sinkQueueLen {
		q.queue = q.queue[1:]
	}
	q.queue = append(q.queue, a)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *sinkQueue) run() {
	defer close(q.stopped)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-q.stop
		cancel()
	}()
	for {
		q.mu.Lock()
		if len(q.queue) == 0 {
			q.mu.Unlock()
			select {
			case <-q.wake:
				continue
			case <-q.stop:
				return
			}
		}
		a := q.queue[0]
		q.queue = q.queue[1:]
		q.busy = true
		q.mu.Unlock()
		q.deliver(ctx, a)
		q.mu.Lock()
		q.busy = false
		q.mu.Unlock()
	}
}

// deliver retries one alert with exponential backoff and jitter for at most
// DefaultSinkRetryFor.
func (q *sinkQueue) deliver(ctx context.Context, a Alert) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 500 * time.Millisecond
	b.MaxInterval = 30 * time.Second
	b.MaxElapsedTime = DefaultSinkRetryFor
	backoff.Retry(func() error {
		actx, cancel := context.WithTimeout(ctx, DefaultSinkTimeout)
		defer cancel()
		return q.sink.Send(actx, a)
	}, backoff.WithContext(b, ctx))
}

// closeSinks waits up to d for queued alerts to be delivered, then stops
// every sink.
func (m *Monitor) closeSinks(d time.Duration) {
	deadline := time.After(d)
	for _, q := range m.sinks {
		if !q.isIdle() {
			select {
			case <-deadline:
			case <-q.idle():
			}
		}
		q.once.Do(func() { close(q.stop) })
		<-q.stopped
	}
}

// idle returns a channel closed once the queue is empty.
func (q *sinkQueue) idle() <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		for {
			if q.isIdle() {
				return
			}
			select {
			case <-q.stopped:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return ch
}

func (q *sinkQueue) isIdle() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.queue) == 0 && !q.busy
}
