package pgwire

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of the failure limit: like the HTTP gateway's, per source
// address, in failed authentications.
const (
	DefaultFailureRate  = 10 // per second
	DefaultFailureBurst = 50
	maxFailureSources   = 1 << 16
)

// failures keeps a token bucket of failed authentications per source
// address. A source whose bucket is empty is refused before its password
// is read, so floods of guessed or unknown tokens cannot reach the store.
// It holds at most maxFailureSources buckets: when full, it drops those
// that have refilled, and if that is not enough, all of them.
type failures struct {
	mu    sync.Mutex
	limit rate.Limit
	burst int
	m     map[netip.Addr]*rate.Limiter
}

func newFailures(limit rate.Limit, burst int) *failures {
	return &failures{limit: limit, burst: burst, m: make(map[netip.Addr]*rate.Limiter)}
}

// exhausted reports whether src has no failure left to spend.
func (f *failures) exhausted(src netip.Addr, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.m[src]
	return l != nil && l.TokensAt(now) < 1
}

// fail spends one of src's failures.
func (f *failures) fail(src netip.Addr, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.m[src]
	if l == nil {
		if len(f.m) >= maxFailureSources {
			for k, v := range f.m {
				if v.TokensAt(now) >= float64(f.burst) {
					delete(f.m, k)
				}
			}
			if len(f.m) >= maxFailureSources {
				clear(f.m)
			}
		}
		l = rate.NewLimiter(f.limit, f.burst)
		f.m[src] = l
	}
	l.AllowN(now, 1)
}
