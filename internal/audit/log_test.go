package audit_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"latchkey/internal/audit"
	"latchkey/internal/audit/audittest"
)

func TestMem(t *testing.T) {
	audittest.Run(t, func(t *testing.T) audit.Storage { return audittest.NewMem() })
}

// filled returns a Mem holding Rec(0) .. Rec(n-1) and a Log on it.
func filled(t *testing.T, n int) (*audittest.Mem, *audit.Log) {
	t.Helper()
	m := audittest.NewMem()
	l := audit.New(m, audit.Config{})
	t.Cleanup(func() { l.Close() })
	recs := make([]audit.Record, n)
	for i := range recs {
		recs[i] = audittest.Rec(i)
	}
	if _, err := l.Append(t.Context(), recs...); err != nil {
		t.Fatal(err)
	}
	return m, l
}

// TestVerifyTamper changes the stored log under the Log in every way Verify
// must notice, and checks that it names the first bad record. The SQLite
// engine repeats these with raw SQL on the database file.
func TestVerifyTamper(t *testing.T) {
	const n = 100
	other := audittest.Rec(1000).Encode()
	tests := []struct {
		name   string
		tamper func(m *audittest.Mem)
		want   int64
	}{
		{"change", func(m *audittest.Mem) { m.Leaves[37] = other }, 37},
		{"garble", func(m *audittest.Mem) { m.Leaves[37] = []byte{1, 2, 3} }, 37},
		{"delete", func(m *audittest.Mem) { delete(m.Leaves, 37) }, 37},
		{"delete last", func(m *audittest.Mem) { delete(m.Leaves, n-1) }, n - 1},
		{"insert at end", func(m *audittest.Mem) { m.Leaves[n] = other }, n},
		{"insert past end", func(m *audittest.Mem) { m.Leaves[n+5] = other }, n},
		{"insert", func(m *audittest.Mem) {
			for i := int64(n); i > 37; i-- {
				m.Leaves[i] = m.Leaves[i-1]
			}
			m.Leaves[37] = other
		}, 37},
		{"swap", func(m *audittest.Mem) { m.Leaves[20], m.Leaves[30] = m.Leaves[30], m.Leaves[20] }, 20},
		{"change hash", func(m *audittest.Mem) { m.Hashes[tlog.StoredHashIndex(1, 25)] = tlog.Hash{1} }, 51},
		{"delete hash", func(m *audittest.Mem) { delete(m.Hashes, tlog.StoredHashIndex(0, 60)) }, 60},
		{"extra hash", func(m *audittest.Mem) { m.Hashes[tlog.StoredHashCount(n)] = tlog.Hash{} }, n},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, l := filled(t, n)
			tt.tamper(m)
			_, _, err := l.Verify(t.Context(), nil)
			var ve *audit.VerifyError
			if !errors.As(err, &ve) || ve.Index != tt.want {
				t.Fatalf("Verify = %v, want a VerifyError at %d", err, tt.want)
			}
		})
	}
}

// TestVerifyChunks checks Verify across chunk boundaries and its progress
// reports.
func TestVerifyChunks(t *testing.T) {
	const n = 20000 // more than two chunks
	m, l := filled(t, n)
	var calls []int64
	size, root, err := l.Verify(t.Context(), func(done, total int64) {
		if total != n {
			t.Errorf("progress total %d, want %d", total, n)
		}
		calls = append(calls, done)
	})
	if err != nil || size != n {
		t.Fatalf("Verify = %d, %v", size, err)
	}
	if len(calls) < 3 || calls[len(calls)-1] != n {
		t.Errorf("progress calls %v", calls)
	}
	h := audittest.NewHasher()
	h.Add(audittest.Leaves(0, n))
	if root != h.Root(n) {
		t.Errorf("root %v, want %v", root, h.Root(n))
	}
	m.Leaves[n-3] = audittest.Rec(0).Encode()
	var ve *audit.VerifyError
	if _, _, err := l.Verify(t.Context(), nil); !errors.As(err, &ve) || ve.Index != n-3 {
		t.Errorf("Verify after a change in the last chunk = %v", err)
	}
}

func TestVerifyEmpty(t *testing.T) {
	l := audit.New(audittest.NewMem(), audit.Config{})
	defer l.Close()
	want, err := tlog.TreeHash(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if size, root, err := l.Verify(t.Context(), nil); err != nil || size != 0 || root != want {
		t.Errorf("Verify of an empty log = %d, %v, %v", size, root, err)
	}
}

// failing is a Storage whose appends fail while broken is set.
type failing struct {
	audit.Storage
	mu     sync.Mutex
	broken bool
}

var errBroken = errors.New("disk on fire")

func (f *failing) Append(ctx context.Context, first int64, leaves [][]byte, hashes []tlog.Hash) error {
	f.mu.Lock()
	broken := f.broken
	f.mu.Unlock()
	if broken {
		return errBroken
	}
	return f.Storage.Append(ctx, first, leaves, hashes)
}

func (f *failing) set(b bool) {
	f.mu.Lock()
	f.broken = b
	f.mu.Unlock()
}

// TestFailClosed checks that every Append whose batch fails returns that
// error, that none of its records is stored, and that the log carries on
// once storage works again.
func TestFailClosed(t *testing.T) {
	ctx := t.Context()
	f := &failing{Storage: audittest.NewMem()}
	l := audit.New(f, audit.Config{})
	defer l.Close()
	audittest.AppendConcurrently(t, l, 8, 5)
	f.set(true)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			if _, err := l.Append(ctx, audittest.Rec(1000+w)); !errors.Is(err, errBroken) {
				t.Errorf("Append on broken storage = %v, want errBroken", err)
			}
		})
	}
	wg.Wait()
	f.set(false)
	for i := 40; i < 50; i++ {
		if first, err := l.Append(ctx, audittest.Rec(i)); err != nil || first != int64(i) {
			t.Fatalf("Append after repair = %d, %v, want %d", first, err, i)
		}
	}
	audittest.CheckAll(t, l, 50)
}

// TestCloseConcurrent closes a Log under concurrent Appends: each returns
// either its index or ErrClosed, never hangs, and what was acknowledged is
// stored.
func TestCloseConcurrent(t *testing.T) {
	m := audittest.NewMem()
	l := audit.New(m, audit.Config{})
	var wg sync.WaitGroup
	acked := make(chan int64, 64*100)
	for w := range 64 {
		wg.Go(func() {
			for i := range 100 {
				first, err := l.Append(context.Background(), audittest.Rec(w*100+i))
				if errors.Is(err, audit.ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				acked <- first
			}
		})
	}
	l.Close()
	wg.Wait()
	close(acked)
	for i := range acked {
		if _, ok := m.Leaves[i]; !ok {
			t.Fatalf("acknowledged record %d not stored", i)
		}
	}
}

func TestAppendInvalid(t *testing.T) {
	l := audit.New(audittest.NewMem(), audit.Config{})
	defer l.Close()
	if _, err := l.Append(t.Context(), audit.Record{}); !errors.Is(err, audit.ErrMalformed) {
		t.Errorf("Append of an invalid record = %v, want ErrMalformed", err)
	}
	if _, err := l.Append(t.Context()); err == nil {
		t.Error("Append of nothing: no error")
	}
}

// TestMaxBatch appends more than a batch in one call and in many.
func TestMaxBatch(t *testing.T) {
	m := audittest.NewMem()
	l := audit.New(m, audit.Config{MaxBatch: 3})
	defer l.Close()
	recs := make([]audit.Record, 10)
	for i := range recs {
		recs[i] = audittest.Rec(i)
	}
	if _, err := l.Append(t.Context(), recs...); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 10 {
		wg.Go(func() {
			if _, err := l.Append(context.Background(), audittest.Rec(10+2*w), audittest.Rec(11+2*w)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	audittest.CheckAll(t, l, 30)
}
