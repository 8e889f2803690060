package audit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// Errors a Storage or a Log returns. Callers branch on them with errors.Is.
var (
	// ErrConflict: the log grew under this writer (another process
	// appended), so an Append at the size it knew was refused.
	ErrConflict = errors.New("audit: log size moved")
	// ErrMissing: a requested record or hash is not stored.
	ErrMissing = errors.New("audit: not stored")
	// ErrCorrupt: a stored value cannot be read back (for example a hash
	// that is not 32 bytes).
	ErrCorrupt = errors.New("audit: stored data corrupt")
	// ErrClosed: the Log was closed.
	ErrClosed = errors.New("audit: log closed")
)

// Leaf is a stored record as a storage scan returns it.
type Leaf struct {
	Index int64
	Data  []byte
}

// StoredHash is a stored tree hash as a storage scan returns it. Index is
// the stored hash index (tlog.StoredHashIndex).
type StoredHash struct {
	Index int64
	Hash  tlog.Hash
}

// Storage keeps the records and tree hashes of one log. Every engine must
// pass the conformance suite in package audittest. Records below Size are
// never changed by a Storage; changing them is what Log.Verify detects.
type Storage interface {
	// Append stores leaves at indexes first..first+len(leaves)-1 together
	// with hashes, the stored hashes tlog.StoredHashes produced for those
	// records, in order (stored indexes tlog.StoredHashCount(first) up to
	// tlog.StoredHashCount(first+len(leaves))-1), all in one transaction.
	// Inside that transaction it checks that first is the current size and
	// fails with ErrConflict if not. On a nil return the records are
	// committed, durable according to the engine's sync mode; on an error
	// nothing was stored.
	Append(ctx context.Context, first int64, leaves [][]byte, hashes []tlog.Hash) error
	// Size returns the number of records: one past the highest index.
	Size(ctx context.Context) (int64, error)
	// ReadHashes returns the hashes at the given stored hash indexes, with
	// tlog.HashReader semantics: a slice as long as indexes, or an error
	// (wrapping ErrMissing if one is not stored).
	ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error)
	// ReadLeaves returns the n leaves at first..first+n-1, or an error
	// (wrapping ErrMissing if one is not stored).
	ReadLeaves(ctx context.Context, first, n int64) ([][]byte, error)
	// ScanLeaves returns, in index order, at most limit stored leaves with
	// index >= first, exactly as stored, gaps and all.
	ScanLeaves(ctx context.Context, first int64, limit int) ([]Leaf, error)
	// ScanHashes returns, in index order, at most limit stored hashes with
	// stored index >= first, gaps and all. A hash that is not 32 bytes is
	// an error wrapping ErrCorrupt.
	ScanHashes(ctx context.Context, first int64, limit int) ([]StoredHash, error)
}

// Config configures a Log. The zero value is the default.
type Config struct {
	// MaxBatch is the most records one storage transaction commits; a
	// single Append call larger than that still commits as one. Zero
	// means 4096.
	MaxBatch int
	// Linger is how long the committer waits for more Appends before it
	// commits a batch, when the previous batch held more than one (under
	// concurrent load; a lone Append never waits). Each commit has a
	// fixed cost (a transaction, its WAL frames), so a short wait that
	// gathers more records per commit buys throughput for latency. Zero
	// means DefaultLinger; negative, no wait.
	Linger time.Duration
	// IntegrateDelay, for a Log on a Queue, is how long the sequencer
	// lets records gather in the queue before it adds them to the tree
	// (a reader waiting in Sync cuts it short). Zero means
	// DefaultIntegrateDelay. Linger does not apply on a Queue: an Enqueue
	// is cheap, so a batch is whatever waits while the previous one is
	// written.
	IntegrateDelay time.Duration
	// Observe, if not nil, is told of the Log's work as it happens, for
	// metrics (see Observer).
	Observe Observer
}

// Observer is told of a Log's work, for metrics. Its methods run on the
// goroutine doing the work, the audited operation's own for Appended:
// they must return at once.
type Observer interface {
	// Appended: an Append waited took for its records to be committed
	// (on a Queue, queued), and failed if err is not nil.
	Appended(took time.Duration, err error)
	// Integrated: on a Queue, the sequencer added n records to the tree
	// in one transaction that took took.
	Integrated(n int, took time.Duration)
}

// DefaultLinger is Config.Linger's default: well under the gateway's
// latency budget, long enough to gather the Appends of concurrent
// requests into one commit.
const DefaultLinger = 500 * time.Microsecond

// Log is an append-only, tamper-evident log of records on a Storage. It is
// safe for concurrent use. On a Storage, Append calls are group-committed
// by one goroutine, which Close stops; on a Queue, by the Append calls
// themselves (see combiner).
type Log struct {
	obs      Observer // nil: none
	st       Storage
	maxBatch int
	linger   time.Duration
	reqs     chan *request
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
	lastErr  atomic.Pointer[error] // the last commit's error; nil after a success

	// On a Queue (see queue.go); q is nil otherwise.
	q       Queue
	delay   time.Duration
	queued  chan struct{} // capacity 1: something was enqueued
	prompt  chan struct{} // capacity 1: a reader waits in Sync
	seqDone chan struct{} // closed when the sequencer has exited
	seqErr  atomic.Pointer[error]
	pending atomic.Int64 // acknowledged, not known to be integrated
	roundMu sync.Mutex
	round   chan struct{} // closed (and replaced) after each integration round
	comb    combiner
}

// request is one Append call waiting for its batch.
type request struct {
	leaves [][]byte
	res    chan result // buffered: the committer never blocks on it
}

type result struct {
	first int64
	err   error
}

// New returns a Log on st and starts its committer. Call Close when done.
func New(st Storage, cfg Config) *Log {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 4096
	}
	if cfg.Linger == 0 {
		cfg.Linger = DefaultLinger
	}
	l := &Log{
		obs:      cfg.Observe,
		st:       st,
		maxBatch: cfg.MaxBatch,
		linger:   cfg.Linger,
		reqs:     make(chan *request, 1024),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	c := &committer{st: st, size: -1}
	if q, ok := st.(Queue); ok {
		l.q = q
		l.linger = 0 // an Enqueue is cheap: no wait for more
		l.delay = cfg.IntegrateDelay
		if l.delay <= 0 {
			l.delay = DefaultIntegrateDelay
		}
		l.queued = make(chan struct{}, 1)
		l.prompt = make(chan struct{}, 1)
		l.seqDone = make(chan struct{})
		l.round = make(chan struct{})
		// Records queued before a crash are integrated first.
		l.queued <- struct{}{}
		l.comb.kick = make(chan struct{}, 1)
		go l.sequence(q, c)
		go l.combine()
		return l
	}
	go l.run(c)
	return l
}

// Close stops the committer after the batch in progress. Appends waiting
// for a later batch, and Appends after Close, fail with ErrClosed. On a
// Queue, the sequencer then integrates what is queued before Close
// returns; what it cannot stays queued for the next open, and Close
// returns that error.
func (l *Log) Close() error {
	l.once.Do(func() {
		close(l.stop)
		if l.q != nil {
			l.comb.close()
			close(l.done)
		}
	})
	<-l.done
	if l.q == nil {
		return nil
	}
	<-l.seqDone
	if p := l.seqErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Queued returns the number of Append calls waiting for a batch.
func (l *Log) Queued() int {
	if l.q != nil {
		return l.comb.waiting()
	}
	return len(l.reqs)
}

// Healthy returns ErrClosed after Close, and otherwise the error of the
// most recent commit if it failed: appends are failing, and whatever
// depends on them must be refused. It is nil after a successful commit.
func (l *Log) Healthy() error {
	select {
	case <-l.stop:
		return ErrClosed
	default:
	}
	if err := l.lastErr.Load(); err != nil {
		return *err
	}
	if err := l.seqErr.Load(); err != nil {
		return *err
	}
	return nil
}

// Append validates and commits recs as consecutive records and returns the
// index of the first. It returns only once they are committed, sharing
// one storage transaction with concurrent Appends. On any error the
// operation being audited must not proceed: the records are not known to
// be committed (if ctx ends while the batch commits, they may still be).
//
// On a Queue, committed means durably queued: they are consecutive, but
// their index is not known yet, and Append returns -1 (Sync waits until
// they are in the tree).
func (l *Log) Append(ctx context.Context, recs ...Record) (first int64, err error) {
	if len(recs) == 0 {
		return 0, errors.New("audit: append: no records")
	}
	leaves := make([][]byte, len(recs))
	for i, r := range recs {
		if err := r.Validate(); err != nil {
			return 0, fmt.Errorf("audit: append: %w", err)
		}
		leaves[i] = r.Encode()
	}
	req := &request{leaves: leaves, res: make(chan result, 1)}
	if l.obs != nil {
		start := time.Now()
		defer func() { l.obs.Appended(time.Since(start), err) }()
	}
	if l.q != nil {
		return l.appendQueued(ctx, req)
	}
	select {
	case l.reqs <- req:
	case <-l.stop:
		return 0, ErrClosed
	case <-ctx.Done():
		return 0, fmt.Errorf("audit: append: %w", ctx.Err())
	}
	select {
	case res := <-req.res:
		return res.first, res.err
	case <-l.done:
		// The committer answers every request it takes before it exits;
		// one that slipped into the queue after Close is failed here.
		select {
		case res := <-req.res:
			return res.first, res.err
		default:
			return 0, ErrClosed
		}
	case <-ctx.Done():
		return 0, fmt.Errorf("audit: append: %w", ctx.Err())
	}
}

// run is the committer goroutine of a Log on a Storage (not a Queue): it
// takes every request waiting, commits them in one transaction, answers
// them, and starts over.
func (l *Log) run(c *committer) {
	defer close(l.done)
	var next *request // taken from the queue but left for the next batch
	var timer *time.Timer
	last := 0 // requests in the previous batch
	for {
		if next == nil {
			select {
			case next = <-l.reqs:
			case <-l.stop:
				l.drain()
				return
			}
		}
		batch := []*request{next}
		n := len(next.leaves)
		next = nil
		var wait <-chan time.Time
		if l.linger > 0 && last > 1 {
			if timer == nil {
				timer = time.NewTimer(l.linger)
			} else {
				timer.Reset(l.linger)
			}
			wait = timer.C
		}
		// add takes r into the batch, or leaves it for the next one if
		// it does not fit; it reports whether the batch has room left.
		add := func(r *request) bool {
			if n+len(r.leaves) > l.maxBatch {
				next = r
				return false
			}
			batch = append(batch, r)
			n += len(r.leaves)
			return n < l.maxBatch
		}
	fill:
		for n < l.maxBatch {
			select {
			case r := <-l.reqs:
				if !add(r) {
					break fill
				}
				continue
			default:
			}
			if wait == nil {
				break
			}
			select {
			case r := <-l.reqs:
				if !add(r) {
					break fill
				}
			case <-wait:
				wait = nil
				break fill
			case <-l.stop:
				break fill
			}
		}
		if wait != nil {
			timer.Stop()
		}
		last = len(batch)
		first, err := c.commit(batch)
		l.answer(batch, first, err)
	}
}

// combiner is how Appends on a Queue are written: flat combining. Each
// Append adds its request to the waiting list; whichever Append then
// holds the write lock takes every request waiting (at most MaxBatch
// records) and enqueues them in one Queue.Enqueue, answers them, and
// starts over while more wait. An Append alone on the log so writes its
// own records in its own goroutine: no handoff to a committer goroutine
// and back, two thread wake-ups per record that cost more than the
// journal write itself. Under concurrent Appends, those that arrive while
// a batch is written form the next batch, as with the committer: an
// Append writes until its own request is answered, and then leaves what
// still waits to the combiner goroutine (Log.combine), so that no Append
// serves the others for long.
type combiner struct {
	mu     sync.Mutex // guards reqs and closed
	reqs   []*request
	closed bool
	write  sync.Mutex    // held by whoever writes a batch
	kick   chan struct{} // capacity 1: requests wait and no Append will write them
}

// add adds r to the waiting list; false after close.
func (c *combiner) add(r *request) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.reqs = append(c.reqs, r)
	return true
}

// take removes from the waiting list the oldest requests, at least one
// and together at most max records (unless the first alone is more).
func (c *combiner) take(max int) []*request {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, k := 0, 0
	for k < len(c.reqs) && (k == 0 || n+len(c.reqs[k].leaves) <= max) {
		n += len(c.reqs[k].leaves)
		k++
	}
	batch := slices.Clone(c.reqs[:k])
	c.reqs = slices.Delete(c.reqs, 0, k)
	return batch
}

func (c *combiner) waiting() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.reqs)
}

// close fails the requests still waiting with ErrClosed, refuses new
// ones, and returns once the batch being written, if any, is answered.
func (c *combiner) close() {
	c.mu.Lock()
	c.closed = true
	rest := c.reqs
	c.reqs = nil
	c.mu.Unlock()
	for _, r := range rest {
		r.res <- result{err: ErrClosed}
	}
	c.write.Lock()
	c.write.Unlock()
}

// appendQueued is Append on a Queue.
func (l *Log) appendQueued(ctx context.Context, req *request) (int64, error) {
	if !l.comb.add(req) {
		return 0, ErrClosed
	}
	for len(req.res) == 0 && l.comb.write.TryLock() {
		l.writeBatch()
	}
	// A request added while the lock was held may have seen it held and
	// left its writing to the holder, this Append: it is done with its
	// own, so the combiner goroutine writes the rest.
	if l.comb.waiting() > 0 {
		select {
		case l.comb.kick <- struct{}{}:
		default:
		}
	}
	select {
	case res := <-req.res:
		return res.first, res.err
	case <-ctx.Done():
		return 0, fmt.Errorf("audit: append: %w", ctx.Err())
	}
}

// writeBatch, with the write lock held, enqueues the oldest requests
// waiting, answers them and releases the lock.
func (l *Log) writeBatch() {
	defer l.comb.write.Unlock()
	batch := l.comb.take(l.maxBatch)
	if len(batch) == 0 {
		return
	}
	first, err := l.enqueue(batch)
	l.answer(batch, first, err)
}

// answer records the outcome of a batch for Healthy and answers its
// requests: each its first index (first, -1 on a Queue, counting on from
// the previous request's records) or err.
func (l *Log) answer(batch []*request, first int64, err error) {
	if err != nil {
		l.lastErr.Store(&err)
	} else {
		l.lastErr.Store(nil)
	}
	for _, r := range batch {
		r.res <- result{first, err}
		if first >= 0 {
			first += int64(len(r.leaves))
		}
	}
}

// combine is the combiner goroutine: kicked by an Append that leaves
// requests waiting, it writes until none wait (or another Append holds
// the write lock: that one will look again when it releases it).
func (l *Log) combine() {
	for {
		select {
		case <-l.comb.kick:
		case <-l.stop:
			return
		}
		for l.comb.waiting() > 0 && l.comb.write.TryLock() {
			l.writeBatch()
		}
	}
}

// enqueue queues the batch on l.q and wakes the sequencer; it returns -1
// (the index is not known yet).
func (l *Log) enqueue(batch []*request) (int64, error) {
	var leaves [][]byte
	for _, r := range batch {
		leaves = append(leaves, r.leaves...)
	}
	if err := l.treeHealthy(); err != nil {
		return 0, fmt.Errorf("audit: append: %w", err)
	}
	if l.pending.Load() > maxPending {
		return 0, fmt.Errorf("audit: append: %d records wait for the tree, the most allowed: the storage is failing", l.pending.Load())
	}
	if _, err := l.q.Enqueue(context.Background(), leaves); err != nil {
		return 0, fmt.Errorf("audit: append: %w", err)
	}
	l.pending.Add(int64(len(leaves)))
	select {
	case l.queued <- struct{}{}:
	default:
	}
	return -1, nil
}

// drain fails every request still queued at Close.
func (l *Log) drain() {
	for {
		select {
		case r := <-l.reqs:
			r.res <- result{err: ErrClosed}
		default:
			return
		}
	}
}

// committer is the committer goroutine's state: the committed size and
// the hashes the next append needs (the roots of the complete subtrees of
// the tree of that size). size < 0 means unknown: reload from storage.
type committer struct {
	st       Storage
	size     int64
	frontier map[int64]tlog.Hash
}

// conflictRetries is how many times commit reloads and retries after an
// ErrConflict: replicas sharing the storage (their sweepers, gateways)
// may each move the log under the other several times in a row.
const conflictRetries = 8

// commit stores the batch and returns the index of its first record. On
// ErrConflict (another writer) it reloads and retries, up to
// conflictRetries times.
func (c *committer) commit(batch []*request) (int64, error) {
	var leaves [][]byte
	for _, r := range batch {
		leaves = append(leaves, r.leaves...)
	}
	ctx := context.Background()
	for try := 0; ; try++ {
		first, err := c.commitLeaves(ctx, leaves)
		if err == nil {
			return first, nil
		}
		c.size = -1 // whatever happened, trust only storage from now on
		if !errors.Is(err, ErrConflict) || try >= conflictRetries {
			return 0, fmt.Errorf("audit: append: %w", err)
		}
	}
}

func (c *committer) commitLeaves(ctx context.Context, leaves [][]byte) (int64, error) {
	if c.size < 0 {
		if err := c.load(ctx); err != nil {
			return 0, err
		}
	}
	first := c.size
	known := make(map[int64]tlog.Hash, len(c.frontier)+2*len(leaves)+8)
	for k, v := range c.frontier {
		known[k] = v
	}
	hashes, err := storedHashes(first, leaves, known, c.reader(ctx, known))
	if err != nil {
		return 0, err
	}
	if err := c.st.Append(ctx, first, leaves, hashes); err != nil {
		return 0, err
	}
	c.size = first + int64(len(leaves))
	if c.frontier, err = frontierOf(c.size, c.reader(ctx, known)); err != nil {
		c.size = -1 // committed all the same: reload before the next batch
	}
	return first, nil
}

// load reads the size and the frontier hashes from storage.
func (c *committer) load(ctx context.Context) error {
	size, err := c.st.Size(ctx)
	if err != nil {
		return err
	}
	f, err := frontierOf(size, c.reader(ctx, nil))
	if err != nil {
		return err
	}
	c.size, c.frontier = size, f
	return nil
}

// reader serves hashes from known, and the rest from storage.
func (c *committer) reader(ctx context.Context, known map[int64]tlog.Hash) tlog.HashReader {
	return memReader{known: known, next: storageReader(ctx, c.st)}
}

// storedHashes computes the stored hashes for leaves appended at first,
// adding each to known as it goes.
func storedHashes(first int64, leaves [][]byte, known map[int64]tlog.Hash, r tlog.HashReader) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, 0, 2*len(leaves)+8)
	for i, leaf := range leaves {
		n := first + int64(i)
		hs, err := tlog.StoredHashes(n, leaf, r)
		if err != nil {
			return nil, err
		}
		base := tlog.StoredHashIndex(0, n)
		for k, h := range hs {
			known[base+int64(k)] = h
		}
		out = append(out, hs...)
	}
	return out, nil
}

// frontierIndexes returns the stored indexes of the roots of the complete
// subtrees that make up a tree of size n, largest first: exactly the hashes
// that tlog.TreeHash(n) and the next tlog.StoredHashes need.
func frontierIndexes(n int64) []int64 {
	var idx []int64
	var start int64
	for level := 62; level >= 0; level-- {
		if n&(1<<level) != 0 {
			idx = append(idx, tlog.StoredHashIndex(level, start>>level))
			start += 1 << level
		}
	}
	return idx
}

// frontierOf reads the frontier of a tree of size n through r.
func frontierOf(n int64, r tlog.HashReader) (map[int64]tlog.Hash, error) {
	idx := frontierIndexes(n)
	hs, err := r.ReadHashes(idx)
	if err != nil {
		return nil, err
	}
	f := make(map[int64]tlog.Hash, len(idx))
	for i, x := range idx {
		f[x] = hs[i]
	}
	return f, nil
}

// memReader is a tlog.HashReader over a map, falling back to next (if
// not nil) for hashes it does not hold.
type memReader struct {
	known map[int64]tlog.Hash
	next  tlog.HashReader
}

func (m memReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var miss []int64
	for i, x := range indexes {
		h, ok := m.known[x]
		if !ok {
			miss = append(miss, x)
			continue
		}
		out[i] = h
	}
	if len(miss) == 0 {
		return out, nil
	}
	if m.next == nil {
		return nil, fmt.Errorf("%w: hash %d", ErrMissing, miss[0])
	}
	got, err := m.next.ReadHashes(miss)
	if err != nil {
		return nil, err
	}
	j := 0
	for i, x := range indexes {
		if _, ok := m.known[x]; !ok {
			out[i] = got[j]
			j++
		}
	}
	return out, nil
}

// storageReader adapts st.ReadHashes to tlog.HashReader.
func storageReader(ctx context.Context, st Storage) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		hs, err := st.ReadHashes(ctx, indexes)
		if err == nil && len(hs) != len(indexes) {
			err = fmt.Errorf("audit: storage returned %d hashes for %d indexes", len(hs), len(indexes))
		}
		return hs, err
	})
}

// Size returns the number of committed records.
func (l *Log) Size(ctx context.Context) (int64, error) {
	if err := l.Sync(ctx); err != nil {
		return 0, err
	}
	return l.st.Size(ctx)
}

// Integrated returns the number of records in the stored tree, without
// waiting for those still queued: for what runs on a timer (the periodic
// checkpoint, a readiness probe), which must not make the Log integrate
// at once what it holds back for a helper (Sync does).
func (l *Log) Integrated(ctx context.Context) (int64, error) {
	return l.st.Size(ctx)
}

// Record returns the record at index and its leaf, the bytes the tree
// hashes (tlog.RecordHash(leaf)).
func (l *Log) Record(ctx context.Context, index int64) (Record, []byte, error) {
	if err := l.Sync(ctx); err != nil {
		return Record{}, nil, err
	}
	leaves, err := l.st.ReadLeaves(ctx, index, 1)
	if err != nil {
		return Record{}, nil, fmt.Errorf("audit: record %d: %w", index, err)
	}
	r, err := Decode(leaves[0])
	if err != nil {
		return Record{}, nil, fmt.Errorf("audit: record %d: %w", index, err)
	}
	return r, leaves[0], nil
}

// checkSize refuses a tree size past the committed size.
func (l *Log) checkSize(ctx context.Context, sizes ...int64) error {
	cur, err := l.Size(ctx)
	if err != nil {
		return err
	}
	for _, n := range sizes {
		if n < 0 || n > cur {
			return fmt.Errorf("audit: tree size %d out of range 0..%d", n, cur)
		}
	}
	return nil
}

// TreeHash returns the root hash of the tree of the first size records.
func (l *Log) TreeHash(ctx context.Context, size int64) (tlog.Hash, error) {
	if err := l.checkSize(ctx, size); err != nil {
		return tlog.Hash{}, err
	}
	return tlog.TreeHash(size, storageReader(ctx, l.st))
}

// ProveRecord returns the proof that record index is in the tree of the
// first size records, to be checked with
// tlog.CheckRecord(proof, size, root, index, tlog.RecordHash(leaf)).
// (Note that tlog takes the tree size first.)
func (l *Log) ProveRecord(ctx context.Context, index, size int64) (tlog.RecordProof, error) {
	if err := l.checkSize(ctx, size); err != nil {
		return nil, err
	}
	if index < 0 || index >= size {
		return nil, fmt.Errorf("audit: record %d not in a tree of size %d", index, size)
	}
	return tlog.ProveRecord(size, index, storageReader(ctx, l.st))
}

// ProveTree returns the proof that the tree of size newSize extends the
// tree of size oldSize (1 <= oldSize <= newSize), to be checked with
// tlog.CheckTree(proof, newSize, newRoot, oldSize, oldRoot).
func (l *Log) ProveTree(ctx context.Context, oldSize, newSize int64) (tlog.TreeProof, error) {
	if err := l.checkSize(ctx, oldSize, newSize); err != nil {
		return nil, err
	}
	if oldSize < 1 || oldSize > newSize {
		return nil, fmt.Errorf("audit: no consistency proof from size %d to %d", oldSize, newSize)
	}
	return tlog.ProveTree(newSize, oldSize, storageReader(ctx, l.st))
}
