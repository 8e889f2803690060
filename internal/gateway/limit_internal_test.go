package gateway

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func TestBucket(t *testing.T) {
	l := newLimiters[string](1, 3, 100) // 1 token a second, burst 3
	if l.exhausted("a", t0) {
		t.Fatal("a key without a bucket is exhausted")
	}
	for i := range 3 {
		if !l.allow("a", t0) {
			t.Fatalf("request %d refused within the burst", i)
		}
	}
	for range 5 {
		if !l.exhausted("a", t0) {
			t.Fatal("an empty bucket is not exhausted")
		}
	}
	if l.allow("a", t0) {
		t.Fatal("an empty bucket allowed a request")
	}
	if l.exhausted("b", t0) || !l.allow("b", t0) {
		t.Fatal("another key shares the bucket")
	}
	half := t0.Add(500 * time.Millisecond)
	if !l.exhausted("a", half) || l.allow("a", half) {
		t.Fatal("half a token allowed a request")
	}
	second := t0.Add(time.Second)
	if l.exhausted("a", second) {
		t.Fatal("a refilled token is not there")
	}
	if !l.allow("a", second) || l.allow("a", second) {
		t.Fatal("a second did not refill exactly one token")
	}
	// A clock that goes back refills nothing.
	if l.allow("a", t0) {
		t.Fatal("a clock that went back refilled the bucket")
	}
	// The bucket refills up to the burst, no further.
	later := t0.Add(time.Hour)
	for i := range 3 {
		if !l.allow("a", later) {
			t.Fatalf("request %d after an hour refused", i)
		}
	}
	if l.allow("a", later) {
		t.Fatal("the bucket refilled past its burst")
	}
}

func TestBucketUnlimited(t *testing.T) {
	l := newLimiters[string](rate.Inf, 0, 100)
	for range 10 {
		if !l.allow("a", t0) || l.exhausted("a", t0) {
			t.Fatal("an unlimited rate refused a request")
		}
	}
	if n := l.size(); n != 0 {
		t.Fatalf("an unlimited rate holds %d buckets", n)
	}
}

// TestShrink: a full limiters drops refilled buckets first, and only if
// that is not enough arbitrary ones, down to three quarters of max.
func TestShrink(t *testing.T) {
	l := newLimiters[int](1, 2, 8)
	for k := range 8 {
		l.allow(k, t0)
		if k >= 4 {
			l.allow(k, t0) // keys 4 to 7 empty; 0 to 3 hold one token
		}
	}
	// A second later keys 0 to 3 are full again, 4 to 7 are not.
	second := t0.Add(time.Second)
	if !l.allow(8, second) {
		t.Fatal("a new key was refused")
	}
	if n := l.size(); n != 5 {
		t.Fatalf("%d buckets after a shrink that dropped the refilled ones, want 5", n)
	}
	for k := range 9 {
		if held := l.has(k); held != (k >= 4) {
			t.Errorf("key %d held: %v", k, held)
		}
	}
	for k := 4; k < 8; k++ {
		if !l.allow(k, second) || l.allow(k, second) {
			t.Errorf("key %d lost its state in the shrink", k)
		}
	}
	// Now nothing is refilled: arbitrary buckets go, down to 6.
	for k := 9; k < 12; k++ {
		l.allow(k, second)
		l.allow(k, second)
	}
	if n := l.size(); n != 8 {
		t.Fatalf("%d buckets, want 8", n)
	}
	l.allow(100, second)
	if n := l.size(); n != 7 || !l.has(100) {
		t.Fatalf("%d buckets after dropping arbitrary ones (key 100 held: %v), want 7 with the new key", n, l.has(100))
	}
}

// TestLimitersConcurrent: from many goroutines at once a bucket allows
// exactly its burst, and a flood of keys stays within max.
func TestLimitersConcurrent(t *testing.T) {
	hot := newLimiters[string](1e-9, 50, 1000)
	l := newLimiters[string](1e-9, 50, 1000)
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				if hot.allow("hot", t0) {
					allowed.Add(1)
				}
				hot.exhausted("hot", t0)
				l.allow(fmt.Sprintf("k%d-%d", g, i), t0)
				l.exhausted(fmt.Sprintf("k%d-%d", g, i/2), t0)
			}
		})
	}
	wg.Wait()
	if n := allowed.Load(); n != 50 {
		t.Errorf("the hot key was allowed %d requests, want its burst of 50", n)
	}
	if n := l.size(); n > 1000 {
		t.Errorf("%d buckets, want at most 1000", n)
	}
	held := 0
	for i := range l.shards {
		held += len(l.shards[i].m)
	}
	if held != l.size() {
		t.Errorf("size %d, but %d buckets in the shards", l.size(), held)
	}
}

// has reports whether k has a bucket.
func (l *limiters[K]) has(k K) bool {
	s := l.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[k]
	return ok
}
