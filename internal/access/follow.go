package access

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"latchkey/internal/store"
)

// Following the store's invalidation feed (store.Store.Invalidations).
const (
	// followBatch is how many feed entries a step reads per query.
	followBatch = 1000
	// FeedKeep is how long feed entries are kept before a follower prunes
	// them. It only has to outlast cacheMaxAge: an entry older than that
	// predates every record a cache still trusts.
	FeedKeep = time.Hour
	// pruneEvery is how often Run prunes the feed.
	pruneEvery = time.Hour
)

// Follower keeps an Authority's token cache in step with changes that
// other processes sharing its store make (a second serve on the same
// database, replicas): every change that can stale a cached token appends
// to the store's invalidation feed in its own transaction, and each Step
// reads what was appended since the last and drops those tokens (or every
// token of a contractor) from the cache, and re-checks the requests held
// under them, as a change made through this Authority does. It does not
// call Config.Invalidate: the change is already everyone's to see.
//
// A step that cannot read the feed, or finds it broken (a seq skipped:
// entries pruned before this process read them; or the feed behind this
// process: a database restored from a backup), drops the whole cache and
// re-checks every held request: fail safe.
//
// Its own changes come back to an Authority through the feed too, and
// drop entries it has already dropped: a cache miss, no more.
type Follower struct {
	a    *Authority
	mu   sync.Mutex // one step at a time
	last atomic.Int64
}

// Follow returns a Follower of the store's feed from its current end. It
// drops the whole cache first: a record cached before that end may be
// stale by an entry the follower will never read.
func (a *Authority) Follow(ctx context.Context) (*Follower, error) {
	last, err := a.cfg.Store.LastInvalidation(ctx)
	if err != nil {
		return nil, fmt.Errorf("access: follow invalidations: %w", err)
	}
	f := &Follower{a: a}
	f.last.Store(last)
	a.flush()
	return f, nil
}

// Last returns the seq of the last feed entry the follower has applied.
func (f *Follower) Last() int64 { return f.last.Load() }

// FeedWatcher is implemented by a store that can say at once that its
// invalidation feed has grown (PostgreSQL: LISTEN/NOTIFY), so that a
// follower steps within milliseconds of another process's change rather
// than at its next poll.
type FeedWatcher interface {
	// WatchInvalidations returns a channel that receives a value soon
	// after each commit that appends to the feed, and after anything that
	// may have lost such news (a reconnection), until ctx is done. Values
	// may be merged: the receiver reads the whole feed since its last step.
	WatchInvalidations(ctx context.Context) <-chan struct{}
}

// Run steps every every until ctx is done, and at once whenever the
// store, if it is a FeedWatcher, says the feed has grown (the polls then
// only reconcile what a lost notification would miss). It prunes feed
// entries older than FeedKeep when it starts and every hour. Errors are
// logged (a failed step has dropped the cache) and the next tick tries
// again.
func (f *Follower) Run(ctx context.Context, every time.Duration) {
	step := time.NewTicker(every)
	defer step.Stop()
	prune := time.NewTicker(pruneEvery)
	defer prune.Stop()
	var news <-chan struct{}
	if w, ok := f.a.cfg.Store.(FeedWatcher); ok {
		news = w.WatchInvalidations(ctx)
	}
	f.prune(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-news:
			if !ok {
				news = nil // the watcher has stopped: polls only
				continue
			}
			if err := f.Step(ctx); err != nil && ctx.Err() == nil {
				f.a.cfg.Log.Error("access: cannot follow invalidations: dropped the token cache", "err", err)
			}
		case <-step.C:
			if err := f.Step(ctx); err != nil && ctx.Err() == nil {
				f.a.cfg.Log.Error("access: cannot follow invalidations: dropped the token cache", "err", err)
			}
		case <-prune.C:
			f.prune(ctx)
		}
	}
}

// prune deletes the feed entries older than FeedKeep. The cutoff is the
// wall clock, not Config.Now: entries are stamped by the store's clock.
func (f *Follower) prune(ctx context.Context) {
	n, err := f.a.cfg.Store.PruneInvalidations(ctx, time.Now().Add(-FeedKeep))
	if err != nil && ctx.Err() == nil {
		f.a.cfg.Log.Error("access: cannot prune invalidations", "err", err)
	}
	if n > 0 {
		f.a.cfg.Log.Debug("access: pruned invalidations", "entries", n)
	}
}

// Step applies the feed entries appended since the last step. On an error
// it has dropped the whole cache and returns the error; on a broken feed
// it drops the whole cache, logs, and carries on from the feed's end.
func (f *Follower) Step(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	last := f.last.Load()
	for {
		ins, err := f.a.cfg.Store.Invalidations(ctx, last, followBatch)
		if err != nil {
			f.a.flush()
			return fmt.Errorf("access: read invalidations after %d: %w", last, err)
		}
		if len(ins) == 0 {
			return f.checkEnd(ctx, last)
		}
		if ins[0].Seq != last+1 {
			f.a.cfg.Log.Warn("access: invalidations were pruned before this process read them: dropped the token cache",
				"after", last, "next", ins[0].Seq)
			f.a.flush()
		} else {
			for _, in := range ins {
				f.a.apply(in)
			}
		}
		last = ins[len(ins)-1].Seq
		f.last.Store(last)
		if len(ins) < followBatch {
			return nil
		}
	}
}

// checkEnd, when the feed has nothing after last, checks that it does not
// end before last (a database restored from an older copy): if it does,
// it drops the cache and follows from the feed's end.
func (f *Follower) checkEnd(ctx context.Context, last int64) error {
	end, err := f.a.cfg.Store.LastInvalidation(ctx)
	if err != nil {
		f.a.flush()
		return fmt.Errorf("access: read the last invalidation: %w", err)
	}
	if end < last {
		f.a.cfg.Log.Warn("access: the invalidation feed went back: dropped the token cache", "seen", last, "end", end)
		f.a.flush()
		f.last.Store(end)
	}
	return nil
}

// apply drops what one feed entry makes stale, as invalidate does, but
// tells no other cache.
func (a *Authority) apply(in store.Invalidation) {
	if in.TokenID != "" {
		a.cache.drop(in.TokenID)
		a.recheck(in.TokenID)
		return
	}
	a.cache.dropContractor(in.Contractor)
	// A request may be held under a token of the contractor that the
	// cache no longer has: re-check every held request (rare: an
	// offboarding or an engagement's end).
	for _, id := range a.holds.ids() {
		a.recheck(id)
	}
}

// flush drops the whole cache and re-checks every held request.
func (a *Authority) flush() {
	a.cache.dropAll()
	for _, id := range a.holds.ids() {
		a.recheck(id)
	}
}
