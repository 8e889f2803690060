package access

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"latchkey/internal/scope"
	"latchkey/internal/store"
)

// cacheMaxAge bounds how long a cached token record is trusted without
// re-reading the store, for changes made by another process. Changes made
// through this Authority invalidate the entry at once, and with the
// embedded store every change goes through the one serving process (the
// CLI talks to its admin API), so this only bounds the unexpected. At
// 5 s, a gateway with 100,000 tokens in use re-read nearly every token
// from the store on every request. Processes sharing a store hear of each
// other's changes sooner through the store's invalidation feed
// (Authority.Follow, follow.go).
const cacheMaxAge = 60 * time.Second

// maxTerms bounds the interned terms a cache keeps (see terms).
const maxTerms = 4096

// cached is what authentication, Hold and the gateway need about one
// token, loaded together; nothing else of the record is kept. An entry is
// never modified once cached.
type cached struct {
	id       string
	hash     [32]byte
	terms    *terms    // shared with the other tokens of the same terms
	expires  time.Time // the token's ExpiresAt
	until    time.Time // contractor's engagement end (contractor tokens)
	loaded   time.Time
	maxUses  int64
	jkt, x5t string // proof-of-possession binding (store.Token.CnfJKT, CnfX5T)
	root     string // a derived token's tree root (the token first issued); "" if not derived
	admin    bool
	revoked  bool // the token's RevokedAt is set
	disabled bool // contractor disabled (contractor tokens)
}

// terms is the part of a cached token that many tokens have in common:
// owner, scopes and sources, as stored and parsed. Tokens with equal terms
// share one, so that a cache of many tokens issued alike parses and holds
// their scopes once. A terms is immutable: its slices and Set are shared
// by every token that has it and with callers of Authenticate.
type terms struct {
	contractor string
	note       string // admin tokens only: the admin API names its caller by it
	scopeText  []string
	scopes     scope.Set
	cidrText   []string
	cidrs      []netip.Prefix // parsed cidrText
}

// token returns the record fields of e that Authenticate reports.
func (e *cached) token() store.Token {
	return store.Token{ID: e.id, Admin: e.admin, Contractor: e.terms.contractor, Scopes: e.terms.scopeText,
		Hash: e.hash, ExpiresAt: e.expires, CIDRs: e.terms.cidrText, MaxUses: e.maxUses, Note: e.terms.note,
		CnfJKT: e.jkt, CnfX5T: e.x5t}
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

	termsMu sync.Mutex
	terms   map[string]*terms // by termsKey; at most maxTerms
}

func newCache() *cache {
	return &cache{m: make(map[string]*cached), terms: make(map[string]*terms)}
}

// get returns the entry of id if it is fresh, or nil, counting a hit or a
// miss in the cache statistics.
func (c *cache) get(id string, now time.Time) *cached {
	e := c.lookup(id, now)
	if e == nil {
		c.misses.Add(1)
		return nil
	}
	c.hits.Add(1)
	return e
}

// lookup is get without counting.
func (c *cache) lookup(id string, now time.Time) *cached {
	c.mu.RLock()
	e := c.m[id]
	c.mu.RUnlock()
	if e == nil || now.Sub(e.loaded) > cacheMaxAge {
		return nil
	}
	return e
}

// put caches e unless an invalidation happened since generation gen.
func (c *cache) put(e *cached, gen uint64) {
	c.mu.Lock()
	if c.gen == gen {
		c.m[e.id] = e
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

// dropAll removes every token.
func (c *cache) dropAll() {
	c.mu.Lock()
	clear(c.m)
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
		if !e.admin && e.terms.contractor == name {
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
	tm, err := c.intern(t)
	if err != nil {
		return nil, err
	}
	root, err := derivedRoot(ctx, st, t)
	if err != nil {
		return nil, err
	}
	e := &cached{id: t.ID, hash: t.Hash, terms: tm, expires: t.ExpiresAt, loaded: now, root: root,
		maxUses: t.MaxUses, jkt: t.CnfJKT, x5t: t.CnfX5T, admin: t.Admin, revoked: !t.RevokedAt.IsZero()}
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

// derivedRoot returns the root of the tree a derived token belongs to:
// the token its chain of DerivedFrom links starts at; "" for a token that
// is not derived. The chain is short (derive.go bounds its depth); a
// broken link ends it.
func derivedRoot(ctx context.Context, st store.Store, t store.Token) (string, error) {
	root := ""
	for hops := 0; t.DerivedFrom != "" && hops < 2*maxDeriveDepth; hops++ {
		p, err := st.Token(ctx, t.DerivedFrom)
		if errors.Is(err, store.ErrNotFound) {
			return t.DerivedFrom, nil
		}
		if err != nil {
			return "", err
		}
		root, t = p.ID, p
	}
	return root, nil
}

// intern returns the terms of t, parsed, shared with earlier tokens of
// equal terms. When maxTerms are held it starts over: tokens cached
// before keep theirs.
func (c *cache) intern(t store.Token) (*terms, error) {
	want := terms{contractor: t.Contractor, scopeText: t.Scopes, cidrText: t.CIDRs}
	if t.Admin {
		want.note = t.Note
	}
	key := termsKey(&want)
	c.termsMu.Lock()
	tm := c.terms[key]
	c.termsMu.Unlock()
	if tm != nil && tm.equal(&want) {
		return tm, nil
	}
	tm, err := parseTerms(t.ID, want)
	if err != nil {
		return nil, err
	}
	c.termsMu.Lock()
	if len(c.terms) >= maxTerms {
		clear(c.terms)
	}
	c.terms[key] = tm
	c.termsMu.Unlock()
	return tm, nil
}

// termsKey joins the text of tm's fields. Equal keys need not mean equal
// terms (a stored field could hold a separator): intern compares them.
func termsKey(tm *terms) string {
	return tm.contractor + "\x00" + tm.note + "\x00" + strings.Join(tm.scopeText, "\n") + "\x00" + strings.Join(tm.cidrText, "\n")
}

func (tm *terms) equal(o *terms) bool {
	return tm.contractor == o.contractor && tm.note == o.note &&
		slices.Equal(tm.scopeText, o.scopeText) && slices.Equal(tm.cidrText, o.cidrText)
}

// parseTerms parses the scopes and sources of stored token id.
func parseTerms(id string, tm terms) (*terms, error) {
	set, err := scope.ParseSet(tm.scopeText)
	if err != nil {
		return nil, err
	}
	tm.scopes = set
	for _, s := range tm.cidrText {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("stored token %s has an invalid CIDR: %w", id, err)
		}
		tm.cidrs = append(tm.cidrs, p)
	}
	return &tm, nil
}
