package gateway

import (
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// limiters keeps a token bucket per key (a token id, a source address),
// created on first use. It holds at most max buckets: when full, it drops
// the buckets that have refilled (which are the same as new ones), and if
// that is not enough, arbitrary ones, so a flood of distinct keys cannot
// grow it without bound. Dropping a bucket that was not full gives its key
// a fresh burst; with max far above the keys seen in normal use, that
// only happens under such a flood.
type limiters[K comparable] struct {
	limit rate.Limit
	burst int
	max   int

	m     sync.Map // K -> *rate.Limiter
	n     atomic.Int64
	sweep sync.Mutex
}

func newLimiters[K comparable](limit rate.Limit, burst, max int) *limiters[K] {
	return &limiters[K]{limit: limit, burst: burst, max: max}
}

// allow takes one token from k's bucket, reporting whether there was one.
func (l *limiters[K]) allow(k K, now time.Time) bool {
	return l.get(k, now).AllowN(now, 1)
}

// exhausted reports whether k's bucket is empty, without taking a token.
// A key without a bucket is not exhausted.
func (l *limiters[K]) exhausted(k K, now time.Time) bool {
	v, ok := l.m.Load(k)
	return ok && v.(*rate.Limiter).TokensAt(now) < 1
}

func (l *limiters[K]) get(k K, now time.Time) *rate.Limiter {
	if v, ok := l.m.Load(k); ok {
		return v.(*rate.Limiter)
	}
	if l.n.Load() >= int64(l.max) {
		l.shrink(now)
	}
	v, loaded := l.m.LoadOrStore(k, rate.NewLimiter(l.limit, l.burst))
	if !loaded {
		l.n.Add(1)
	}
	return v.(*rate.Limiter)
}

// shrink drops refilled buckets, then arbitrary ones until a quarter of
// the room is free.
func (l *limiters[K]) shrink(now time.Time) {
	if !l.sweep.TryLock() {
		return // another goroutine is at it
	}
	defer l.sweep.Unlock()
	l.m.Range(func(k, v any) bool {
		if v.(*rate.Limiter).TokensAt(now) >= float64(l.burst) {
			if _, ok := l.m.LoadAndDelete(k); ok {
				l.n.Add(-1)
			}
		}
		return true
	})
	target := int64(l.max - l.max/4)
	l.m.Range(func(k, _ any) bool {
		if l.n.Load() <= target {
			return false
		}
		if _, ok := l.m.LoadAndDelete(k); ok {
			l.n.Add(-1)
		}
		return true
	})
}

// size returns the number of buckets held.
func (l *limiters[K]) size() int { return int(l.n.Load()) }
