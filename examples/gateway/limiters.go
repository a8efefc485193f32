package main

import (
	"sync"

	"golang.org/x/time/rate"
)

// limiters are token buckets by key (an API key's id, a client address),
// made on first use. The map stays bounded: once it has doubled since the
// last sweep, a sweep drops every limiter whose bucket is full again, which
// is exactly a fresh limiter, so nothing a client did is forgotten early.
type limiters struct {
	every rate.Limit
	burst int

	mu    sync.Mutex
	m     map[string]*rate.Limiter
	swept int // size after the last sweep
}

func newLimiters(every rate.Limit, burst int) *limiters {
	return &limiters{every: every, burst: burst, m: map[string]*rate.Limiter{}, swept: 64}
}

// get returns the limiter of key.
func (l *limiters) get(key string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.m[key]
	if lim == nil {
		if len(l.m) >= 2*l.swept {
			for k, v := range l.m {
				if v.Tokens() >= float64(l.burst) {
					delete(l.m, k)
				}
			}
			l.swept = max(len(l.m), 64)
		}
		lim = rate.NewLimiter(l.every, l.burst)
		l.m[key] = lim
	}
	return lim
}

// len returns how many limiters are kept.
func (l *limiters) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}
