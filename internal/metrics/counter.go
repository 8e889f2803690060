package metrics

import (
	"slices"
	"strconv"
	"sync/atomic"
)

// Counter is a count that only goes up. Its methods are safe for
// concurrent use and take no lock.
type Counter struct {
	v atomic.Uint64
}

// Inc adds one.
func (c *Counter) Inc() { c.v.Add(1) }

// Add adds n.
func (c *Counter) Add(n uint64) { c.v.Add(n) }

// Value returns the count.
func (c *Counter) Value() uint64 { return c.v.Load() }

// CounterVec is a family of counters, one per list of label values.
type CounterVec struct {
	vec vec[Counter]
}

// NewCounterVec registers a counter family with the given label names
// (none for a single counter: With()). By convention name ends in _total.
func (r *Registry) NewCounterVec(name, help string, labels ...string) *CounterVec {
	v := &CounterVec{vec[Counter]{name: name, labels: slices.Clone(labels), newChild: func() *Counter { return new(Counter) }}}
	r.register(&family{name: name, help: help, typ: "counter", samples: v.samples}, labels)
	return v
}

// With returns the counter for the label values, given in the order of
// the family's labels, making it on first use. Keep the result where a
// hot path can: it never changes.
func (v *CounterVec) With(values ...string) *Counter { return v.vec.with(values) }

func (v *CounterVec) samples(b []byte, name string) []byte {
	for _, c := range v.vec.sorted() {
		b = appendSeries(b, name, v.vec.labels, c.values, "")
		b = strconv.AppendUint(b, c.m.Value(), 10)
		b = append(b, '\n')
	}
	return b
}
