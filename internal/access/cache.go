package access

import (
	"context"
	"sync"
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
	until    time.Time // contractor's engagement end (contractor tokens)
	disabled bool      // contractor disabled (contractor tokens)
	loaded   time.Time
}

// cache keeps token records by id for the authentication hot path. Only
// tokens that exist are cached; an unknown id always reaches the store.
type cache struct {
	mu sync.RWMutex
	m  map[string]*cached
}

func newCache() *cache { return &cache{m: make(map[string]*cached)} }

func (c *cache) get(id string, now time.Time) *cached {
	c.mu.RLock()
	e := c.m[id]
	c.mu.RUnlock()
	if e == nil || now.Sub(e.loaded) > cacheMaxAge {
		return nil
	}
	return e
}

func (c *cache) put(e *cached) {
	c.mu.Lock()
	c.m[e.tok.ID] = e
	c.mu.Unlock()
}

// drop removes a token so the next check reads the store.
func (c *cache) drop(id string) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}

// dropContractor removes every cached token of a contractor and returns
// their ids. Tokens not in the cache need nothing: the next check reads the
// store, where they are already revoked.
func (c *cache) dropContractor(name string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
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
	t, err := st.Token(ctx, id)
	if err != nil {
		return nil, err
	}
	set, err := scope.ParseSet(t.Scopes)
	if err != nil {
		return nil, err
	}
	e := &cached{tok: t, scopes: set, loaded: now}
	if !t.Admin {
		ct, err := st.Contractor(ctx, t.Contractor)
		if err != nil {
			return nil, err
		}
		e.until, e.disabled = ct.Until, ct.Disabled
	}
	c.put(e)
	return e, nil
}
