package store

import "time"

// Invalidation is one entry of the invalidation feed (see the Store
// methods Invalidations, LastInvalidation and PruneInvalidations): a
// committed change that may make a token record cached by another
// process sharing the store stale.
type Invalidation struct {
	// Seq orders the feed: it increases by one per entry, in commit
	// order, and is never reused.
	Seq int64
	// TokenID is the token that was revoked or whose expiry moved; ""
	// means every token of Contractor (offboarding, an engagement's end).
	TokenID string
	// Contractor is the token's contractor ("" for an admin token), or
	// the contractor whose every token changed.
	Contractor string
	// At is when the entry was written, by the store's clock.
	At time.Time
}
