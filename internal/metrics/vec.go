package metrics

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// vec is a family's labelled children, each made once and kept forever.
// Reads take no lock: the map is replaced, never changed, when a child is
// added (so adding is O(children); label values must come from a bounded
// set, such as registered service names, never from raw request data).
type vec[T any] struct {
	name     string
	labels   []string
	newChild func() *T
	mu       sync.Mutex // serializes adding children
	children atomic.Pointer[map[string]child[T]]
}

type child[T any] struct {
	values []string
	m      *T
}

// with returns the child for values, making it if need be. It does not
// allocate when the child exists and the key is under 128 bytes.
func (v *vec[T]) with(values []string) *T {
	if len(values) != len(v.labels) {
		panic(fmt.Sprintf("metrics: %s: %d label values for %d labels", v.name, len(values), len(v.labels)))
	}
	var buf [128]byte
	k := appendKey(buf[:0], values)
	if m := v.children.Load(); m != nil {
		if c, ok := (*m)[string(k)]; ok {
			return c.m
		}
	}
	return v.add(values)
}

func (v *vec[T]) add(raw []string) *T {
	values := make([]string, len(raw))
	for i, s := range raw {
		values[i] = strings.ToValidUTF8(s, "\uFFFD")
	}
	k := string(appendKey(nil, values))
	v.mu.Lock()
	defer v.mu.Unlock()
	old := v.children.Load()
	if old != nil {
		if c, ok := (*old)[k]; ok {
			return c.m
		}
	}
	m := make(map[string]child[T], 1)
	if old != nil {
		m = maps.Clone(*old)
	}
	c := child[T]{values, v.newChild()}
	m[k] = c
	v.children.Store(&m)
	return c.m
}

// appendKey appends values, each prefixed by its length, so that no two
// lists of values share a key.
func appendKey(b []byte, values []string) []byte {
	for _, s := range values {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// sorted returns the children in the order of their label values.
func (v *vec[T]) sorted() []child[T] {
	m := v.children.Load()
	if m == nil {
		return nil
	}
	cs := slices.Collect(maps.Values(*m))
	slices.SortFunc(cs, func(a, b child[T]) int { return slices.Compare(a.values, b.values) })
	return cs
}
