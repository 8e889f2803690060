package access

import (
	"testing"
	"time"

	"latchkey/internal/store"
)

// TestCacheLoadRacingInvalidation: a load that read the store before a
// revocation committed must not cache what it read.
func TestCacheLoadRacingInvalidation(t *testing.T) {
	c := newCache()
	now := time.Now()
	gen := c.generation() // load begins: reads the unrevoked row...
	c.drop("tok")         // ...revocation commits and invalidates...
	stale := &cached{tok: store.Token{ID: "tok"}, loaded: now}
	c.put(stale, gen) // ...then the load tries to cache its row.
	if c.get("tok", now) != nil {
		t.Fatal("a row read before an invalidation was cached")
	}
	gen = c.generation()
	c.put(stale, gen)
	if c.get("tok", now) == nil {
		t.Fatal("a load with no invalidation in between was not cached")
	}
	if c.get("tok", now.Add(cacheMaxAge+time.Millisecond)) != nil {
		t.Fatal("an entry older than cacheMaxAge was trusted")
	}
	gen = c.generation()
	c.dropContractor("someone")
	c.put(&cached{tok: store.Token{ID: "other"}, loaded: now}, gen)
	if c.get("other", now) != nil {
		t.Fatal("offboarding did not invalidate loads in flight")
	}
}
