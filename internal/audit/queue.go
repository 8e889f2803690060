package audit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// Queue is a Storage that can acknowledge records before they are in the
// tree. A Log on a Queue answers an Append once its records are durably
// queued (Enqueue: for example one write to an append-only journal, or one
// INSERT), and a sequencer goroutine of the Log adds the queued records
// to the tree in large batches behind (Integrate). The expensive part of
// an append (the tree's hashes, the indexed rows, their commit) is then
// off the path of the operation being audited, and shared by many more
// records per transaction.
//
// Every engine of Queue must pass the conformance suite in package
// audittest (RunQueue).
type Queue interface {
	Storage
	// Enqueue stores leaves durably, in order, as records still to be
	// added to the tree, and returns a mark: once Integrated(mark) is true,
	// these leaves and every leaf enqueued before them through this Queue
	// are in the tree. On an error nothing is queued. Records queued before
	// a crash are still queued when the engine is opened again.
	Enqueue(ctx context.Context, leaves [][]byte) (mark int64, err error)
	// Integrate adds the oldest queued records, at most max of them unless
	// the oldest single Enqueue holds more, to the tree at index first:
	// in one transaction it checks that first is the log's size (else
	// ErrConflict, nothing changes), appends the leaves with the stored
	// hashes that hashes returns for them (see Storage.Append), and takes
	// them off the queue. It returns how many it added (0: nothing queued,
	// or another process is integrating; the queue may be shared).
	Integrate(ctx context.Context, first int64, max int, hashes func(leaves [][]byte) ([]tlog.Hash, error)) (int, error)
	// Integrated reports whether every record enqueued up to mark, through
	// this Queue, is in the tree.
	Integrated(ctx context.Context, mark int64) (bool, error)
	// Mark returns a mark for every record queued so far: enqueued
	// through this Queue, taken over from a process that died, and, on a
	// queue several processes share, enqueued by any of them.
	Mark(ctx context.Context) (int64, error)
}

// SharedQueue is a Queue that several processes enqueue to and integrate
// from (PostgreSQL): the sequencer of every Log on one tries to integrate
// every IntegrateDelay, whatever its own process enqueued, so that the
// records of the others reach the tree even when one sequencer (the one
// holding the engine's lock) dies.
type SharedQueue interface {
	Queue
	Shared()
}

// HelpedQueue is a Queue whose records a helper process may add to the
// tree too: sqlite.QueuedAudit beside serve's audit helper, which reads
// the journal files and integrates them at the lowest processor priority,
// so that the serve process's processors are left to the gateway. The
// sequencer of a Log on one wakes every IntegrateDelay, takes off the
// queue the records the helper added (Reconcile), and
// integrates itself only the records the queue says are due (Due): those
// the helper has left too long. The helper is never needed: if it dies
// or starves, the records still reach the tree, later, from the Log.
type HelpedQueue interface {
	Queue
	// Reconcile takes off the queue the records enqueued through it
	// that another process has added to the tree, and returns how many.
	Reconcile(ctx context.Context) (int, error)
	// Due reports whether a queued record is due for this process to
	// integrate rather than wait for the helper.
	Due() bool
}

// DefaultIntegrateDelay is Config.IntegrateDelay's default.
const DefaultIntegrateDelay = 20 * time.Millisecond

// maxPending is how many acknowledged records may wait for the tree
// before Append refuses more: a Storage that keeps failing must stop the
// audited operations (fail closed) rather than grow the queue without
// bound.
const maxPending = 1 << 20

// sequence is the sequencer goroutine of a Log on a Queue: it adds the
// queued records to the tree IntegrateDelay after the first of a burst
// (or at once when a reader is waiting in Sync), and once more after
// Close, before Close returns.
func (l *Log) sequence(q Queue, c *committer) {
	defer close(l.seqDone)
	delay := time.NewTimer(time.Hour)
	delay.Stop()
	var tick <-chan time.Time
	_, shared := q.(SharedQueue)
	if _, helped := q.(HelpedQueue); shared || helped {
		t := time.NewTicker(l.delay)
		defer t.Stop()
		tick = t.C
	}
	for {
		var retry <-chan time.Time
		if l.seqErr.Load() != nil {
			retry = time.After(time.Second) // a failing tree: try again
		}
		urgent := false // a reader waits, or Close: integrate what is queued
		select {
		case <-retry:
		case <-tick:
		case <-l.queued:
			delay.Reset(l.delay)
			select {
			case <-delay.C:
			case <-l.prompt:
				delay.Stop()
				urgent = true
			case <-l.done: // the committer has stopped: integrate and exit
				delay.Stop()
				urgent = true
			}
		case <-l.prompt:
			urgent = true
		case <-l.done:
			l.integrateAll(q, c, true)
			return
		}
		l.integrateAll(q, c, urgent)
	}
}

// integrateAll integrates until the queue is empty or an error; it
// records the outcome for Healthy and wakes the readers waiting in Sync.
// On a HelpedQueue it first takes off what the helper added, and then
// integrates only while records are due, unless urgent.
func (l *Log) integrateAll(q Queue, c *committer, urgent bool) {
	var err error
	hq, helped := q.(HelpedQueue)
	if helped {
		var n int
		if n, err = hq.Reconcile(context.Background()); n > 0 {
			l.pending.Add(int64(-n))
			c.size = -1 // the tree grew elsewhere: reload before integrating
		}
	}
	for err == nil && (!helped || urgent || hq.Due()) {
		start := time.Now()
		var n int
		n, err = c.integrate(q, l.maxBatch)
		if err != nil || n == 0 {
			break
		}
		if l.obs != nil {
			l.obs.Integrated(n, time.Since(start))
		}
		l.pending.Add(int64(-n))
	}
	if err != nil {
		l.seqErr.Store(&err)
	} else {
		l.seqErr.Store(nil)
	}
	l.roundMu.Lock()
	close(l.round)
	l.round = make(chan struct{})
	l.roundMu.Unlock()
}

// integrate adds up to max queued records at the committer's size,
// reloading and retrying on ErrConflict like commit.
func (c *committer) integrate(q Queue, max int) (int, error) {
	ctx := context.Background()
	for try := 0; ; try++ {
		n, err := c.integrateOnce(ctx, q, max)
		if err == nil {
			return n, nil
		}
		c.size = -1
		if !errors.Is(err, ErrConflict) || try >= conflictRetries {
			return 0, fmt.Errorf("audit: integrate: %w", err)
		}
	}
}

func (c *committer) integrateOnce(ctx context.Context, q Queue, max int) (int, error) {
	if c.size < 0 {
		if err := c.load(ctx); err != nil {
			return 0, err
		}
	}
	first := c.size
	var known map[int64]tlog.Hash
	n, err := q.Integrate(ctx, first, max, func(leaves [][]byte) ([]tlog.Hash, error) {
		known = make(map[int64]tlog.Hash, len(c.frontier)+2*len(leaves)+8)
		for k, v := range c.frontier {
			known[k] = v
		}
		return storedHashes(first, leaves, known, c.reader(ctx, known))
	})
	if err != nil || n == 0 {
		return 0, err
	}
	c.size = first + int64(n)
	if c.frontier, err = frontierOf(c.size, c.reader(ctx, known)); err != nil {
		c.size = -1 // integrated all the same: reload before the next batch
	}
	return n, nil
}

// treeHealthy is nil if the last integration succeeded. Otherwise it
// asks the sequencer for another at once, waits for it (at most a
// second), and returns its error: while records cannot be added to the
// tree, no more are acknowledged (fail closed), and the first Append
// after the storage is back goes through.
func (l *Log) treeHealthy() error {
	if l.seqErr.Load() == nil {
		return nil
	}
	l.roundMu.Lock()
	round := l.round
	l.roundMu.Unlock()
	select {
	case l.prompt <- struct{}{}:
	default:
	}
	select {
	case <-round:
	case <-l.seqDone:
	case <-time.After(time.Second):
	}
	if p := l.seqErr.Load(); p != nil {
		return fmt.Errorf("records cannot be added to the tree: %w", *p)
	}
	return nil
}

// Sync returns once every record whose Append returned before Sync was
// called is in the tree (at once on a Log that is not on a Queue): after
// it, Size, Record, the proofs and a search see them.
func (l *Log) Sync(ctx context.Context) error {
	if l.q == nil {
		return nil
	}
	mark, err := l.q.Mark(ctx)
	if err != nil {
		return fmt.Errorf("audit: sync: %w", err)
	}
	for {
		l.roundMu.Lock()
		round := l.round
		l.roundMu.Unlock()
		ok, err := l.q.Integrated(ctx, mark)
		if err != nil {
			return fmt.Errorf("audit: sync: %w", err)
		}
		if ok {
			return nil
		}
		select {
		case l.prompt <- struct{}{}:
		default:
		}
		select {
		case <-round:
			if p := l.seqErr.Load(); p != nil {
				return *p
			}
		case <-l.seqDone:
			ok, err := l.q.Integrated(ctx, mark)
			if err == nil && !ok {
				err = ErrClosed
			}
			return err
		case <-time.After(l.delay):
			// Another process may be integrating a shared queue.
		case <-ctx.Done():
			return fmt.Errorf("audit: sync: %w", ctx.Err())
		}
	}
}

// Pending returns the number of records acknowledged by this Log that are
// not yet in the tree (always 0 on a Log that is not on a Queue).
func (l *Log) Pending() int64 { return l.pending.Load() }
