package gateway

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// limiterShards is how many independently locked maps a limiters spreads
// its keys over, so that requests of different keys rarely wait on each
// other.
const limiterShards = 32

// limiters keeps a token bucket per key (a token id, a source address),
// created full on first use. It holds at most max buckets: when full, it
// drops the buckets that have refilled (which are the same as new ones),
// and if that is not enough, arbitrary ones, down to three quarters of
// max, so a flood of distinct keys cannot grow it without bound. Dropping
// a bucket that was not full gives its key a fresh burst; with max far
// above the keys seen in normal use, that only happens under such a flood.
//
// A bucket is two words, not a rate.Limiter: a gateway holds one per
// token in use, so its size is the gateway's memory per token. The map
// holds pointers so that a request updates its own bucket in place
// rather than writing the shard's map.
type limiters[K comparable] struct {
	unlimited bool    // rate.Inf: every request is allowed, nothing held
	limit     float64 // tokens per second
	burst     float64
	max       int
	base      time.Time // bucket times are nanoseconds since base
	seed      maphash.Seed

	shards [limiterShards]shard[K]
	n      atomic.Int64 // buckets held
	sweep  sync.Mutex
}

// shard is one lock and the buckets of the keys that hash to it, padded
// to a cache line so that neighbouring shards' locks do not contend.
type shard[K comparable] struct {
	mu sync.Mutex
	m  map[K]*bucket
	_  [64 - 16]byte
}

// bucket is one key's token bucket: tokens at last, in nanoseconds since
// the limiters' base. It refills at limit per second up to burst.
type bucket struct {
	tokens float64
	last   int64
}

func newLimiters[K comparable](limit rate.Limit, burst, max int) *limiters[K] {
	l := &limiters[K]{unlimited: limit == rate.Inf, limit: float64(limit), burst: float64(burst), max: max,
		base: time.Now(), seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].m = make(map[K]*bucket)
	}
	return l
}

// allow takes one token from k's bucket, reporting whether there was one.
func (l *limiters[K]) allow(k K, now time.Time) bool {
	if l.unlimited {
		return true
	}
	t := l.since(now)
	s := l.shard(k)
	s.mu.Lock()
	b := s.m[k]
	if b == nil && l.n.Load() >= int64(l.max) {
		s.mu.Unlock()
		l.shrink(t)
		s.mu.Lock()
		b = s.m[k] // another request may have made it meanwhile
	}
	if b == nil {
		b = &bucket{tokens: l.burst, last: t}
		s.m[k] = b
		l.n.Add(1)
	}
	*b = l.refill(*b, t)
	allowed := b.tokens >= 1
	if allowed {
		b.tokens--
	}
	s.mu.Unlock()
	return allowed
}

// exhausted reports whether k's bucket is empty, without taking a token.
// A key without a bucket is not exhausted.
func (l *limiters[K]) exhausted(k K, now time.Time) bool {
	if l.unlimited {
		return false
	}
	s := l.shard(k)
	s.mu.Lock()
	b := s.m[k]
	exhausted := b != nil && l.refill(*b, l.since(now)).tokens < 1
	s.mu.Unlock()
	return exhausted
}

// refill returns b as it is at t: refilled for the time since b.last, up
// to burst. A t before b.last (a clock that went back) refills nothing.
func (l *limiters[K]) refill(b bucket, t int64) bucket {
	if t > b.last {
		b.tokens = min(l.burst, b.tokens+float64(t-b.last)/1e9*l.limit)
	}
	b.last = t
	return b
}

// since returns now in nanoseconds since l.base; it uses the monotonic
// clock when both have it, so a wall clock step neither refills nor
// drains the buckets.
func (l *limiters[K]) since(now time.Time) int64 { return int64(now.Sub(l.base)) }

func (l *limiters[K]) shard(k K) *shard[K] {
	return &l.shards[maphash.Comparable(l.seed, k)%limiterShards]
}

// shrink drops refilled buckets, then arbitrary ones until a quarter of
// the room is free.
func (l *limiters[K]) shrink(t int64) {
	if !l.sweep.TryLock() {
		return // another goroutine is at it
	}
	defer l.sweep.Unlock()
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for k, b := range s.m {
			if l.refill(*b, t).tokens >= l.burst {
				delete(s.m, k)
				l.n.Add(-1)
			}
		}
		s.mu.Unlock()
	}
	target := int64(l.max - l.max/4)
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for k := range s.m {
			if l.n.Load() <= target {
				break
			}
			delete(s.m, k)
			l.n.Add(-1)
		}
		s.mu.Unlock()
	}
}

// size returns the number of buckets held.
func (l *limiters[K]) size() int { return int(l.n.Load()) }
