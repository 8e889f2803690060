// Package usage records token use off the request path. Record only
// updates an in-memory table; a background loop hands the table to the
// store in one batch (store.RecordUse) every Interval, so the gateway never
// waits on a database write per request. Close flushes what is left.
//
// A crash loses at most one Interval of last-use times. That is
// acceptable for reports; it is not what enforces anything (the audit log
// is the record of every request).
package usage

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"latchkey/internal/store"
)

// DefaultInterval is the flush period when Config.Interval is zero.
const DefaultInterval = time.Second

// Config configures a Recorder.
type Config struct {
	// Store receives the batches. Required.
	Store store.Store
	// Interval between flushes. Default DefaultInterval.
	Interval time.Duration
	// Log reports failed flushes. Default slog.Default().
	Log *slog.Logger
}

type entry struct {
	at     time.Time
	count  int64
	scopes []string
}

// Recorder batches token use. It is safe for concurrent use.
type Recorder struct {
	cfg     Config
	mu      sync.Mutex
	pending map[string]*entry
	flushMu sync.Mutex // one flush at a time, so batches apply in order
	stop    chan struct{}
	stopped sync.Once // closes stop
	done    chan struct{}
}

// New starts a Recorder's flush loop.
func New(cfg Config) *Recorder {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	r := &Recorder{cfg: cfg, pending: make(map[string]*entry), stop: make(chan struct{}), done: make(chan struct{})}
	go r.loop()
	return r
}

// Record notes that token id was used at t; sc is the scope that allowed
// the request ("" for admin requests, which have no resource scope).
func (r *Recorder) Record(id, sc string, t time.Time) { r.record(id, sc, t, 1) }

// RecordCounted is Record for a use the store has already counted
// (store.ConsumeUse, for tokens with a use limit): it notes the times and
// scope but adds nothing to the token's uses.
func (r *Recorder) RecordCounted(id, sc string, t time.Time) { r.record(id, sc, t, 0) }

func (r *Recorder) record(id, sc string, t time.Time, n int64) {
	r.mu.Lock()
	e := r.pending[id]
	if e == nil {
		e = &entry{}
		r.pending[id] = e
	}
	e.count += n
	if t.After(e.at) {
		e.at = t
	}
	if sc != "" && !slices.Contains(e.scopes, sc) {
		e.scopes = append(e.scopes, sc)
	}
	r.mu.Unlock()
}

func (r *Recorder) loop() {
	defer close(r.done)
	tick := time.NewTicker(r.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-tick.C:
			if err := r.flush(context.Background(), true); err != nil {
				r.cfg.Log.Error("usage flush failed", "err", err)
			}
		}
	}
}

// Flush writes everything recorded so far in one batch. On failure the
// batch is merged back so the next flush retries it.
func (r *Recorder) Flush(ctx context.Context) error { return r.flush(ctx, false) }

// flush is Flush. Paced, as the loop flushes, it rests after each chunk
// as long as the chunk took, until Close: a gateway's flush is tens of
// milliseconds of CPU, and in one burst it took a processor from the
// requests for as long, which showed in their p99 latency.
func (r *Recorder) flush(ctx context.Context, paced bool) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	batch := r.pending
	r.pending = make(map[string]*entry, len(batch))
	r.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	uses := make([]store.Use, 0, len(batch))
	for id, e := range batch {
		uses = append(uses, store.Use{TokenID: id, At: e.at.UTC().Truncate(time.Millisecond), Count: e.count, Scopes: e.scopes})
	}
	// The store has one writer, which audit appends wait for on the
	// gateway's request path: write in small transactions, so that none
	// holds it for more than a millisecond or two.
	for len(uses) > 0 {
		k := min(len(uses), flushChunk)
		start := time.Now()
		if err := r.cfg.Store.RecordUse(ctx, uses[:k]); err != nil {
			rest := make(map[string]*entry, len(uses))
			for _, u := range uses {
				rest[u.TokenID] = batch[u.TokenID]
			}
			r.requeue(rest)
			return err
		}
		uses = uses[k:]
		if paced && len(uses) > 0 {
			rest := time.NewTimer(time.Since(start))
			select {
			case <-rest.C:
			case <-r.stop:
				rest.Stop()
				paced = false
			}
		}
	}
	return nil
}

// flushChunk is the most token uses one store transaction writes.
const flushChunk = 64

func (r *Recorder) requeue(batch map[string]*entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, old := range batch {
		e := r.pending[id]
		if e == nil {
			r.pending[id] = old
			continue
		}
		e.count += old.count
		if old.at.After(e.at) {
			e.at = old.at
		}
		for _, s := range old.scopes {
			if !slices.Contains(e.scopes, s) {
				e.scopes = append(e.scopes, s)
			}
		}
	}
}

// Close stops the loop and flushes what is left. If that flush fails, the
// batch stays pending and Close may be called again to retry it.
func (r *Recorder) Close(ctx context.Context) error {
	r.stopped.Do(func() { close(r.stop) })
	<-r.done
	return r.Flush(ctx)
}
