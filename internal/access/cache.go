package access

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"latchkey/internal/scope"
	"latchkey/internal/store"
)

// cacheMaxAge bounds how long a cached token record is trusted without
// re-reading the store, for changes made by another process. Changes made
// through this Authority invalidate the entry at once.
const cacheMaxAge = 5 * time.Second

// cached is what authentication needs about one token, loaded together.
type cached struct {
	tok      store.Token
	scopes   scope.Set
	cidrs    []netip.Prefix // parsed tok.CIDRs
	until    time.Time      // contractor's engagement end (contractor tokens)
	disabled bool           // contractor disabled (contractor tokens)
	loaded   time.Time
}

// cache keeps token records by id for the authentication hot path. Only
// tokens that exist are cached; an unknown id always reaches the store.
type cache struct {
	mu sync.RWMutex
	m  map[string]*cached
	// gen counts invalidations. A load that began before an invalidation
	// must not cache what it read: the row may predate the revocation.
	gen uint64

	hits, misses atomic.Uint64 // lookups of get
}

func newCache() *cache { return &cache{m: make(map[string]*cached)} }

func (c *cache) get(id string, now time.Time) *cached {
	c.mu.RLock()
	e := c.m[id]
	c.mu.RUnlock()
	if e == nil || now.Sub(e.loaded) > cacheMaxAge {
		c.misses.Add(1)
		return nil
	}
	c.hits.Add(1)
	return e
}

// put caches e unless an invalidation happened since generation gen.
func (c *cache) put(e *cached, gen uint64) {
	c.mu.Lock()
	if c.gen == gen {
		c.m[e.tok.ID] = e
	}
	c.mu.Unlock()
}

func (c *cache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// drop removes a token so the next check reads the store.
func (c *cache) drop(id string) {
	c.mu.Lock()
	delete(c.m, id)
	c.gen++
	c.mu.Unlock()
}

// dropContractor removes every cached token of a contractor and returns
// their ids. Tokens not in the cache need nothing: the next check reads the
// store, where they are already revoked.
func (c *cache) dropContractor(name string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	var ids []string
	for id, e := range c.m {
		if !e.tok.Admin && e.tok.Contractor == name {
			delete(c.m, id)
			ids = append(ids, id)
		}
	}
	return ids
}

// load reads a token and its contractor from the store into the cache.
func (c *cache) load(ctx context.Context, st store.Store, id string, now time.Time) (*cached, error) {
	gen := c.generation()
	t, err := st.Token(ctx, id)
	if err != nil {
		return nil, err
	}
	set, err := scope.ParseSet(t.Scopes)
	if err != nil {
		return nil, err
	}
	e := &cached{tok: t, scopes: set, loaded: now}
	for _, s := range t.CIDRs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("stored token %s has an invalid CIDR: %w", id, err)
		}
		e.cidrs = append(e.cidrs, p)
	}
	if !t.Admin {
		ct, err := st.Contractor(ctx, t.Contractor)
		if err != nil {
			return nil, err
		}
		e.until, e.disabled = ct.Until, ct.Disabled
	}
	c.put(e, gen)
	return e, nil
}
