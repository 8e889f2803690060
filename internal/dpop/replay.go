package dpop

import (
	"hash/maphash"
	"sync"
	"time"
)

const shards = 64

// replay remembers the (htu, jti) keys of accepted proofs until their
// proof could no longer be accepted (iat + window), in shards with a hard
// cap: when a shard is full of live keys a new key is refused, never
// admitted unchecked (fail closed).
type replay struct {
	seed   maphash.Seed
	perCap int
	shards [shards]shard
}

type shard struct {
	mu   sync.Mutex
	keys map[string]int64 // key -> expiry, Unix nanoseconds
	next int64            // earliest expiry in keys (a lower bound)
}

func newReplay(max int) *replay {
	r := &replay{seed: maphash.MakeSeed(), perCap: max/shards + 1}
	for i := range r.shards {
		r.shards[i].keys = make(map[string]int64)
	}
	return r
}

// add records key until expiry. It returns ErrReplay if key is already
// held, ErrReplayFull if there is no room for it.
func (r *replay) add(key string, expiry, now time.Time) error {
	s := &r.shards[maphash.String(r.seed, key)%shards]
	n := now.UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	if exp, ok := s.keys[key]; ok && exp > n {
		return ErrReplay
	}
	if len(s.keys) >= r.perCap && n >= s.next {
		s.sweep(n)
	}
	if len(s.keys) >= r.perCap {
		return ErrReplayFull
	}
	e := expiry.UnixNano()
	if len(s.keys) == 0 || e < s.next {
		s.next = e
	}
	s.keys[key] = e
	return nil
}

// sweep drops expired keys and recomputes next.
func (s *shard) sweep(now int64) {
	next := int64(1<<63 - 1)
	for k, e := range s.keys {
		if e <= now {
			delete(s.keys, k)
		} else if e < next {
			next = e
		}
	}
	s.next = next
}

func (r *replay) len() int {
	n := 0
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		n += len(s.keys)
		s.mu.Unlock()
	}
	return n
}
