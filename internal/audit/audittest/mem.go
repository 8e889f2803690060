package audittest

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/mod/sumdb/tlog"

	"latchkey/internal/audit"
)

// Mem is an audit.Storage in memory, for tests of package audit that need
// to reach under the Storage API (to tamper with it). It passes Run. Its
// exported maps may be changed directly while no Log appends to it.
type Mem struct {
	mu     sync.Mutex
	Leaves map[int64][]byte    // record index -> leaf
	Hashes map[int64]tlog.Hash // stored hash index -> hash
}

var _ audit.Storage = (*Mem)(nil)

// NewMem returns an empty Mem.
func NewMem() *Mem {
	return &Mem{Leaves: map[int64][]byte{}, Hashes: map[int64]tlog.Hash{}}
}

// size is one past the highest record index; m.mu is held.
func (m *Mem) size() int64 {
	var n int64
	for i := range m.Leaves {
		n = max(n, i+1)
	}
	return n
}

// Append implements audit.Storage.
func (m *Mem) Append(ctx context.Context, first int64, leaves [][]byte, hashes []tlog.Hash) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := int64(len(leaves))
	if want := tlog.StoredHashCount(first+n) - tlog.StoredHashCount(first); int64(len(hashes)) != want {
		return fmt.Errorf("mem: append: %d hashes, want %d", len(hashes), want)
	}
	if size := m.size(); size != first {
		return fmt.Errorf("mem: append at %d: log has %d records: %w", first, size, audit.ErrConflict)
	}
	for i, leaf := range leaves {
		m.Leaves[first+int64(i)] = slices.Clone(leaf)
	}
	base := tlog.StoredHashCount(first)
	for i, h := range hashes {
		m.Hashes[base+int64(i)] = h
	}
	return nil
}

// Size implements audit.Storage.
func (m *Mem) Size(ctx context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.size(), nil
}

// ReadHashes implements audit.Storage.
func (m *Mem) ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		h, ok := m.Hashes[x]
		if !ok {
			return nil, fmt.Errorf("mem: hash %d: %w", x, audit.ErrMissing)
		}
		out[i] = h
	}
	return out, nil
}

// ReadLeaves implements audit.Storage.
func (m *Mem) ReadLeaves(ctx context.Context, first, n int64) ([][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if first < 0 || n < 0 {
		return nil, fmt.Errorf("mem: records %d+%d: %w", first, n, audit.ErrMissing)
	}
	out := make([][]byte, n)
	for i := range out {
		leaf, ok := m.Leaves[first+int64(i)]
		if !ok {
			return nil, fmt.Errorf("mem: record %d: %w", first+int64(i), audit.ErrMissing)
		}
		out[i] = slices.Clone(leaf)
	}
	return out, nil
}

// ScanLeaves implements audit.Storage.
func (m *Mem) ScanLeaves(ctx context.Context, first int64, limit int) ([]audit.Leaf, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []audit.Leaf
	for _, i := range sortedFrom(m.Leaves, first, limit) {
		out = append(out, audit.Leaf{Index: i, Data: slices.Clone(m.Leaves[i])})
	}
	return out, nil
}

// ScanHashes implements audit.Storage.
func (m *Mem) ScanHashes(ctx context.Context, first int64, limit int) ([]audit.StoredHash, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []audit.StoredHash
	for _, i := range sortedFrom(m.Hashes, first, limit) {
		out = append(out, audit.StoredHash{Index: i, Hash: m.Hashes[i]})
	}
	return out, nil
}

// sortedFrom returns the keys of m that are >= first, sorted, at most limit.
func sortedFrom[V any](m map[int64]V, first int64, limit int) []int64 {
	var keys []int64
	for k := range m {
		if k >= first {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys[:min(len(keys), max(limit, 0))]
}
