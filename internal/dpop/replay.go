package dpop

import (
	"hash/maphash"
	"sync"
	"time"
)

const shards = 64

// replay remembers the (htu, jti) pairs of accepted proofs until their
// proof could no longer be accepted (iat + window), in shards with a hard
// cap: when a shard is full of live keys a new key is refused, never
// admitted unchecked (fail closed). A pair is held as a 128-bit key, two
// maphash sums under secret seeds (about 40 bytes an entry, whatever the
// length of htu and jti): two pairs sharing a key would make the second a
// false replay, refused, never a replay accepted.
type replay struct {
	seeds  [2]maphash.Seed
	perCap int
	shards [shards]shard
}

// key is a pair's 128-bit key.
type key [2]uint64

type shard struct {
	mu   sync.Mutex
	keys map[key]int64 // key -> expiry, Unix nanoseconds
	next int64         // earliest expiry in keys (a lower bound)
}

func newReplay(max int) *replay {
	r := &replay{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}, perCap: max/shards + 1}
	for i := range r.shards {
		r.shards[i].keys = make(map[key]int64)
	}
	return r
}

// sum returns the key of the pair (htu, jti).
func (r *replay) sum(htu, jti string) key {
	var k key
	for i, seed := range r.seeds {
		var h maphash.Hash
		h.SetSeed(seed)
		h.WriteString(htu)
		h.WriteByte(0)
		h.WriteString(jti)
		k[i] = h.Sum64()
	}
	return k
}

// add records the pair (htu, jti) until expiry. It returns ErrReplay if
// the pair is already held, ErrReplayFull if there is no room for it.
func (r *replay) add(htu, jti string, expiry, now time.Time) error {
	k := r.sum(htu, jti)
	s := &r.shards[k[0]%shards]
	n := now.UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	if exp, ok := s.keys[k]; ok && exp > n {
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
	s.keys[k] = e
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
