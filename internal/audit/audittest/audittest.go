// Package audittest is the conformance suite for audit.Storage engines
// (Run) and helpers for the tests of package audit and of every engine.
package audittest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/mod/sumdb/tlog"

	"latchkey/internal/audit"
)

// Run runs the conformance suite. open returns a new, empty Storage for
// each subtest; the engine's own cleanup goes in t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) audit.Storage) {
	tests := []struct {
		name string
		fn   func(t *testing.T, st audit.Storage)
	}{
		{"Empty", testEmpty},
		{"AppendRead", testAppendRead},
		{"AppendConflict", testAppendConflict},
		{"AppendBadHashes", testAppendBadHashes},
		{"ConcurrentAppend", testConcurrentAppend},
		{"Proofs", testProofs},
		{"Reopen", testReopen},
		{"TwoWriters", testTwoWriters},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

// Rec returns a valid record that names i in its fields.
func Rec(i int) audit.Record {
	return audit.Record{
		Time:       time.Unix(1_900_000_000, int64(i)).UTC(),
		Actor:      "tok_admin",
		ActorName:  "root",
		Action:     "gateway.request",
		Contractor: fmt.Sprintf("contractor-%d", i%7),
		TokenID:    fmt.Sprintf("tok_%06d", i),
		Service:    "github",
		Method:     "GET",
		Path:       fmt.Sprintf("/repos/acme/%d", i),
		Status:     200,
		Decision:   audit.Allow,
		Source:     "192.0.2.1:4242",
	}
}

// Leaves returns the encodings of Rec(from) .. Rec(from+n-1).
func Leaves(from, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = Rec(from + i).Encode()
	}
	return out
}

// Hasher computes the stored hashes of a log it is fed in order, keeping
// them all in memory, as a test's independent reference.
type Hasher struct {
	Size   int64
	Hashes map[int64]tlog.Hash
}

// NewHasher returns a Hasher for an empty log.
func NewHasher() *Hasher { return &Hasher{Hashes: map[int64]tlog.Hash{}} }

// ReadHashes implements tlog.HashReader.
func (h *Hasher) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		v, ok := h.Hashes[x]
		if !ok {
			return nil, fmt.Errorf("hasher: hash %d: %w", x, audit.ErrMissing)
		}
		out[i] = v
	}
	return out, nil
}

// Add appends leaves and returns their stored hashes.
func (h *Hasher) Add(leaves [][]byte) []tlog.Hash {
	var out []tlog.Hash
	for _, leaf := range leaves {
		hs, err := tlog.StoredHashes(h.Size, leaf, h)
		if err != nil {
			panic(err)
		}
		base := tlog.StoredHashCount(h.Size)
		for i, v := range hs {
			h.Hashes[base+int64(i)] = v
		}
		out = append(out, hs...)
		h.Size++
	}
	return out
}

// Root returns the root hash of the tree of size n.
func (h *Hasher) Root(n int64) tlog.Hash {
	root, err := tlog.TreeHash(n, h)
	if err != nil {
		panic(err)
	}
	return root
}

func testEmpty(t *testing.T, st audit.Storage) {
	ctx := t.Context()
	checkSize(t, st, 0)
	if _, err := st.ReadHashes(ctx, []int64{0}); !errors.Is(err, audit.ErrMissing) {
		t.Errorf("ReadHashes(0) = %v, want ErrMissing", err)
	}
	if _, err := st.ReadLeaves(ctx, 0, 1); !errors.Is(err, audit.ErrMissing) {
		t.Errorf("ReadLeaves(0, 1) = %v, want ErrMissing", err)
	}
	if got, err := st.ReadLeaves(ctx, 0, 0); err != nil || len(got) != 0 {
		t.Errorf("ReadLeaves(0, 0) = %v, %v, want nothing", got, err)
	}
	if got, err := st.ScanLeaves(ctx, 0, 10); err != nil || len(got) != 0 {
		t.Errorf("ScanLeaves = %v, %v, want nothing", got, err)
	}
	if got, err := st.ScanHashes(ctx, 0, 10); err != nil || len(got) != 0 {
		t.Errorf("ScanHashes = %v, %v, want nothing", got, err)
	}
}

func checkSize(t *testing.T, st audit.Storage, want int64) {
	t.Helper()
	got, err := st.Size(t.Context())
	if err != nil || got != want {
		t.Fatalf("Size = %d, %v, want %d", got, err, want)
	}
}

func testAppendRead(t *testing.T, st audit.Storage) {
	ctx := t.Context()
	h := NewHasher()
	var all [][]byte
	for _, n := range []int{1, 2, 5, 300} { // 300: more than one INSERT's worth
		first := h.Size
		leaves := Leaves(int(first), n)
		if err := st.Append(ctx, first, leaves, h.Add(leaves)); err != nil {
			t.Fatalf("Append(%d, %d leaves): %v", first, n, err)
		}
		all = append(all, leaves...)
	}
	checkSize(t, st, h.Size)
	got, err := st.ReadLeaves(ctx, 0, h.Size)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(all, got); diff != "" {
		t.Errorf("ReadLeaves (-want +got):\n%s", diff)
	}
	if _, err := st.ReadLeaves(ctx, h.Size-1, 2); !errors.Is(err, audit.ErrMissing) {
		t.Errorf("ReadLeaves past the end = %v, want ErrMissing", err)
	}
	// Any order, repeats, more than one query's worth.
	var idx []int64
	for i := tlog.StoredHashCount(h.Size) - 1; i >= 0; i-- {
		idx = append(idx, i, i/2)
	}
	hs, err := st.ReadHashes(ctx, idx)
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range idx {
		if hs[i] != h.Hashes[x] {
			t.Fatalf("ReadHashes: hash %d wrong", x)
		}
	}
	bad := []int64{0, tlog.StoredHashCount(h.Size)}
	if _, err := st.ReadHashes(ctx, bad); !errors.Is(err, audit.ErrMissing) {
		t.Errorf("ReadHashes past the end = %v, want ErrMissing", err)
	}
	scan, err := st.ScanLeaves(ctx, 3, 4)
	if err != nil || len(scan) != 4 || scan[0].Index != 3 || scan[3].Index != 6 ||
		!cmp.Equal(scan[3].Data, all[6]) {
		t.Errorf("ScanLeaves(3, 4) = %v, %v", scan, err)
	}
	sh, err := st.ScanHashes(ctx, 5, 3)
	if err != nil || len(sh) != 3 || sh[0].Index != 5 || sh[2].Hash != h.Hashes[7] {
		t.Errorf("ScanHashes(5, 3) = %v, %v", sh, err)
	}
}

func testAppendConflict(t *testing.T, st audit.Storage) {
	ctx := t.Context()
	h := NewHasher()
	leaves := Leaves(0, 3)
	if err := st.Append(ctx, 0, leaves, h.Add(leaves)); err != nil {
		t.Fatal(err)
	}
	for _, first := range []int64{0, 2, 4} {
		hh := NewHasher()
		hh.Add(Leaves(0, int(first)))
		more := Leaves(int(first), 2)
		err := st.Append(ctx, first, more, hh.Add(more))
		if !errors.Is(err, audit.ErrConflict) {
			t.Errorf("Append at %d of a log of 3 = %v, want ErrConflict", first, err)
		}
	}
	checkSize(t, st, 3)
	if got, _ := st.ScanHashes(ctx, 0, 100); int64(len(got)) != tlog.StoredHashCount(3) {
		t.Errorf("after refused appends: %d hashes, want %d", len(got), tlog.StoredHashCount(3))
	}
}

func testAppendBadHashes(t *testing.T, st audit.Storage) {
	h := NewHasher()
	leaves := Leaves(0, 4)
	hashes := h.Add(leaves)
	if err := st.Append(t.Context(), 0, leaves, hashes[:len(hashes)-1]); err == nil {
		t.Error("Append with a hash short: no error")
	}
	checkSize(t, st, 0)
}

// newLog returns a Log on st closed at the end of the test.
func newLog(t *testing.T, st audit.Storage) *audit.Log {
	l := audit.New(st, audit.Config{})
	t.Cleanup(func() { l.Close() })
	return l
}

// AppendConcurrently appends writers*each records (Rec(0) ...) from
// writers goroutines, one record per Append, and checks that each got its
// own index.
func AppendConcurrently(t testing.TB, l *audit.Log, writers, each int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, err := l.Append(context.Background(), Rec(w*each+i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// CheckAll checks that l holds exactly Rec(0) .. Rec(n-1), each once, at
// dense indexes, that it verifies, and that its root is the reference one.
func CheckAll(t testing.TB, l *audit.Log, n int) {
	t.Helper()
	ctx := context.Background()
	size, root, err := l.Verify(ctx, nil)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if size != int64(n) {
		t.Fatalf("Verify: size %d, want %d", size, n)
	}
	seen := make([]bool, n)
	h := NewHasher()
	for i := range int64(n) {
		r, leaf, err := l.Record(ctx, i)
		if err != nil {
			t.Fatalf("Record(%d): %v", i, err)
		}
		var k int
		if _, err := fmt.Sscanf(r.TokenID, "tok_%d", &k); err != nil || k >= n || seen[k] {
			t.Fatalf("record %d: token %q: unknown or seen before", i, r.TokenID)
		}
		seen[k] = true
		h.Add([][]byte{leaf})
	}
	if want := h.Root(int64(n)); root != want {
		t.Fatalf("Verify root %v, want %v", root, want)
	}
	if th, err := l.TreeHash(ctx, int64(n)); err != nil || th != root {
		t.Fatalf("TreeHash = %v, %v, want %v", th, err, root)
	}
}

func testConcurrentAppend(t *testing.T, st audit.Storage) {
	l := newLog(t, st)
	AppendConcurrently(t, l, 64, 20)
	CheckAll(t, l, 64*20)
}

func testProofs(t *testing.T, st audit.Storage) {
	ctx := t.Context()
	l := newLog(t, st)
	const n = 77
	recs := make([]audit.Record, n)
	for i := range recs {
		recs[i] = Rec(i)
	}
	if first, err := l.Append(ctx, recs...); err != nil || first != 0 {
		t.Fatalf("Append = %d, %v", first, err)
	}
	for _, size := range []int64{1, 2, 3, 8, 13, 64, 76, 77} {
		root, err := l.TreeHash(ctx, size)
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range []int64{0, size / 2, size - 1} {
			p, err := l.ProveRecord(ctx, i, size)
			if err != nil {
				t.Fatalf("ProveRecord(%d, %d): %v", i, size, err)
			}
			_, leaf, err := l.Record(ctx, i)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckRecord(p, size, root, i, tlog.RecordHash(leaf)); err != nil {
				t.Errorf("CheckRecord(%d, %d): %v", i, size, err)
			}
			other := tlog.RecordHash(Rec(1000).Encode())
			if err := tlog.CheckRecord(p, size, root, i, other); err == nil {
				t.Errorf("CheckRecord(%d, %d) of another record: no error", i, size)
			}
		}
		for _, old := range []int64{1, size / 2, size} {
			if old == 0 {
				continue
			}
			oldRoot, err := l.TreeHash(ctx, old)
			if err != nil {
				t.Fatal(err)
			}
			p, err := l.ProveTree(ctx, old, size)
			if err != nil {
				t.Fatalf("ProveTree(%d, %d): %v", old, size, err)
			}
			if err := tlog.CheckTree(p, size, root, old, oldRoot); err != nil {
				t.Errorf("CheckTree(%d, %d): %v", old, size, err)
			}
		}
	}
	if _, err := l.ProveRecord(ctx, 0, n+1); err == nil {
		t.Error("ProveRecord past the end: no error")
	}
	if _, err := l.ProveTree(ctx, 1, n+1); err == nil {
		t.Error("ProveTree past the end: no error")
	}
}

func testReopen(t *testing.T, st audit.Storage) {
	ctx := t.Context()
	l := audit.New(st, audit.Config{})
	if _, err := l.Append(ctx, Rec(0), Rec(1), Rec(2)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if _, err := l.Append(ctx, Rec(3)); !errors.Is(err, audit.ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
	l = newLog(t, st)
	if first, err := l.Append(ctx, Rec(3), Rec(4)); err != nil || first != 3 {
		t.Fatalf("Append after reopening = %d, %v, want 3", first, err)
	}
	CheckAll(t, l, 5)
}

// testTwoWriters has two Logs (as two processes would) append in turn:
// each finds the log grown under it and catches up.
func testTwoWriters(t *testing.T, st audit.Storage) {
	ctx := t.Context()
	a, b := newLog(t, st), newLog(t, st)
	for i := range 6 {
		l := a
		if i%2 == 1 {
			l = b
		}
		if first, err := l.Append(ctx, Rec(2*i), Rec(2*i+1)); err != nil || first != int64(2*i) {
			t.Fatalf("append %d = %d, %v", i, first, err)
		}
	}
	CheckAll(t, a, 12)
}

// RunQueue runs the conformance suite of an audit.Queue, after Run's.
// open returns a new, empty Queue for each subtest. reopen stands for a
// crash and a restart: it abandons q as a killed process would (what q
// acknowledged must survive, nothing it did not finish may count) and
// returns a new Queue on the same storage. second returns another Queue
// on the same storage as q, as a second process would open it.
func RunQueue(t *testing.T, open func(t *testing.T) audit.Queue, reopen, second func(t *testing.T, q audit.Queue) audit.Queue) {
	// As a plain Storage (a Log on it commits synchronously).
	Run(t, func(t *testing.T) audit.Storage { return storageOnly{open(t)} })
	tests := []struct {
		name string
		fn   func(t *testing.T, q audit.Queue)
	}{
		{"QueueAppend", testQueueAppend},
		{"QueueConcurrent", testQueueConcurrent},
		{"QueueIntegrateConflict", testQueueIntegrateConflict},
		{"QueueCrash", func(t *testing.T, q audit.Queue) { testQueueCrash(t, q, reopen) }},
		{"QueueCloseConcurrent", func(t *testing.T, q audit.Queue) { testQueueClose(t, q, reopen) }},
		{"QueueTwoProcesses", func(t *testing.T, q audit.Queue) { testQueueTwo(t, q, second(t, q)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

func testQueueAppend(t *testing.T, q audit.Queue) {
	ctx := t.Context()
	l := newLog(t, q)
	if first, err := l.Append(ctx, Rec(0), Rec(1)); err != nil || first != -1 {
		t.Fatalf("Append on a queue = %d, %v, want -1, nil", first, err)
	}
	if err := l.Sync(ctx); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if l.Pending() != 0 {
		t.Errorf("Pending after Sync = %d", l.Pending())
	}
	checkSize(t, q, 2)
	if _, err := l.Append(ctx, Rec(2)); err != nil {
		t.Fatal(err)
	}
	CheckAll(t, l, 3) // reads Sync first
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func testQueueConcurrent(t *testing.T, q audit.Queue) {
	l := newLog(t, q)
	AppendConcurrently(t, l, 64, 20)
	CheckAll(t, l, 64*20)
}

// testQueueIntegrateConflict: an Integrate at the wrong size changes
// nothing, and the records stay queued for the right one.
func testQueueIntegrateConflict(t *testing.T, q audit.Queue) {
	ctx := t.Context()
	mark, err := q.Enqueue(ctx, Leaves(0, 3))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := q.Integrated(ctx, mark); err != nil || ok {
		t.Fatalf("Integrated before Integrate = %v, %v", ok, err)
	}
	h := NewHasher()
	for _, first := range []int64{1, 5} {
		_, err := q.Integrate(ctx, first, 100, func(leaves [][]byte) ([]tlog.Hash, error) {
			return NewHasher().Add(append(Leaves(100, int(first)), leaves...))[tlog.StoredHashCount(first):], nil
		})
		if !errors.Is(err, audit.ErrConflict) {
			t.Fatalf("Integrate at %d of an empty log = %v, want ErrConflict", first, err)
		}
	}
	checkSize(t, q, 0)
	n, err := q.Integrate(ctx, 0, 100, func(leaves [][]byte) ([]tlog.Hash, error) {
		if len(leaves) != 3 || !bytes.Equal(leaves[2], Leaves(2, 1)[0]) {
			t.Errorf("Integrate got %d leaves", len(leaves))
		}
		return h.Add(leaves), nil
	})
	if err != nil || n != 3 {
		t.Fatalf("Integrate = %d, %v, want 3", n, err)
	}
	if ok, err := q.Integrated(ctx, mark); err != nil || !ok {
		t.Fatalf("Integrated after Integrate = %v, %v", ok, err)
	}
	if n, err := q.Integrate(ctx, 3, 100, adder(h)); err != nil || n != 0 {
		t.Fatalf("Integrate of an empty queue = %d, %v", n, err)
	}
	checkSize(t, q, 3)
}

// testQueueCrash: records acknowledged by Enqueue, some integrated, some
// not, survive a crash; each reaches the tree exactly once.
func testQueueCrash(t *testing.T, q audit.Queue, reopen func(t *testing.T, q audit.Queue) audit.Queue) {
	ctx := t.Context()
	for i := range 4 {
		if _, err := q.Enqueue(ctx, Leaves(2*i, 2)); err != nil {
			t.Fatal(err)
		}
	}
	h := NewHasher()
	n, err := q.Integrate(ctx, 0, 3, adder(h))
	if err != nil || n < 1 || n > 3 {
		t.Fatalf("Integrate(max 3) = %d, %v, want 1 to 3", n, err)
	}
	q = reopen(t, q)
	checkSize(t, q, int64(n))
	l := newLog(t, q)
	// Sync waits for what was queued before the crash too.
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	checkSize(t, q, 8)
	if _, err := l.Append(ctx, Rec(8)); err != nil {
		t.Fatal(err)
	}
	CheckAll(t, l, 9)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	q = reopen(t, q)
	l = newLog(t, q)
	if _, err := l.Append(ctx, Rec(9)); err != nil {
		t.Fatal(err)
	}
	CheckAll(t, l, 10)
}

// testQueueClose closes a Log on q under concurrent Appends (which a Log
// on a Queue writes in the Appending goroutines, see audit.combiner): each
// returns -1 or ErrClosed, none hangs, and every acknowledged record is in
// the tree once the queue is opened again, exactly once.
func testQueueClose(t *testing.T, q audit.Queue, reopen func(t *testing.T, q audit.Queue) audit.Queue) {
	l := audit.New(q, audit.Config{})
	var wg sync.WaitGroup
	var acked, refused atomic.Int64
	ackedRec := make([]atomic.Bool, 64*100)
	for w := range 64 {
		wg.Go(func() {
			for i := range 100 {
				_, err := l.Append(context.Background(), Rec(w*100+i))
				switch {
				case errors.Is(err, audit.ErrClosed):
					refused.Add(1)
					return
				case err != nil:
					t.Errorf("Append = %v, want -1 or ErrClosed", err)
					return
				}
				acked.Add(1)
				ackedRec[w*100+i].Store(true)
			}
		})
	}
	writing := make(chan struct{})
	go func() { wg.Wait(); close(writing) }()
wait:
	for acked.Load() < 200 {
		select {
		case <-writing: // every writer stopped early: the checks below say why
			break wait
		default:
			runtime.Gosched()
		}
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	<-writing
	if refused.Load() == 0 {
		t.Log("every Append finished before Close")
	}
	l = newLog(t, reopen(t, q))
	if err := l.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	size, _, err := l.Verify(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i := range size {
		r, _, err := l.Record(t.Context(), i)
		if err != nil {
			t.Fatal(err)
		}
		if seen[r.TokenID] {
			t.Fatalf("record %d: %s twice", i, r.TokenID)
		}
		seen[r.TokenID] = true
	}
	for k := range ackedRec {
		if ackedRec[k].Load() && !seen[Rec(k).TokenID] {
			t.Fatalf("acknowledged record %s not in the tree", Rec(k).TokenID)
		}
	}
}

// testQueueTwo: two processes' Logs on one storage interleave into one
// tree without gaps or duplicates.
func testQueueTwo(t *testing.T, qa, qb audit.Queue) {
	a, b := newLog(t, qa), newLog(t, qb)
	var wg sync.WaitGroup
	for k, l := range []*audit.Log{a, b} {
		wg.Go(func() {
			for i := range 50 {
				if _, err := l.Append(context.Background(), Rec(k*50+i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := b.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	CheckAll(t, a, 100)
}

// storageOnly hides the Queue methods of a Queue.
type storageOnly struct{ audit.Storage }

// adder is h.Add as Integrate's hashes.
func adder(h *Hasher) func([][]byte) ([]tlog.Hash, error) {
	return func(leaves [][]byte) ([]tlog.Hash, error) { return h.Add(leaves), nil }
}
