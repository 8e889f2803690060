package metrics

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync/atomic"
)

// DefaultBuckets are upper bounds in seconds for gateway latencies, from
// half a millisecond (a cached refusal) to ten seconds (a slow upstream).
var DefaultBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Histogram counts observations in buckets. Observe is safe for
// concurrent use and takes no lock. An exposition running during
// Observe may show a sum that lags or leads the counts by that
// observation; the counts always agree with each other.
type Histogram struct {
	upper  []float64       // upper bounds, increasing, +Inf implied
	counts []atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sum    atomic.Uint64   // math.Float64bits of the sum
}

// Observe records v. NaN falls in the +Inf bucket and makes the sum NaN.
func (h *Histogram) Observe(v float64) {
	i, _ := slices.BinarySearch(h.upper, v) // first bound >= v: le is inclusive
	h.counts[i].Add(1)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// HistogramVec is a family of histograms, one per list of label values,
// all with the same buckets.
type HistogramVec struct {
	vec   vec[Histogram]
	upper []float64
	le    []string // formatted upper bounds
}

// NewHistogramVec registers a histogram family with the given bucket
// upper bounds (nil for DefaultBuckets; strictly increasing, not NaN; a
// final +Inf may be given or left implied) and label names (not le).
func (r *Registry) NewHistogramVec(name, help string, buckets []float64, labels ...string) *HistogramVec {
	if buckets == nil {
		buckets = DefaultBuckets
	}
	upper := slices.Clone(buckets)
	if n := len(upper); n > 0 && math.IsInf(upper[n-1], +1) {
		upper = upper[:n-1]
	}
	v := &HistogramVec{upper: upper}
	for i, u := range upper {
		if math.IsNaN(u) || math.IsInf(u, 0) || i > 0 && u <= upper[i-1] {
			panic(fmt.Sprintf("metrics: %s: buckets %v are not strictly increasing finite bounds", name, buckets))
		}
		v.le = append(v.le, string(appendFloat(nil, u)))
	}
	v.le = append(v.le, "+Inf")
	v.vec = vec[Histogram]{name: name, labels: slices.Clone(labels), newChild: func() *Histogram {
		return &Histogram{upper: upper, counts: make([]atomic.Uint64, len(upper)+1)}
	}}
	r.register(&family{name: name, help: help, typ: "histogram", samples: v.samples}, labels, "_bucket", "_sum", "_count")
	return v
}

// With returns the histogram for the label values, given in the order of
// the family's labels, making it on first use. Keep the result where a
// hot path can: it never changes.
func (v *HistogramVec) With(values ...string) *Histogram { return v.vec.with(values) }

func (v *HistogramVec) samples(b []byte, name string) []byte {
	labels := v.vec.labels
	for _, c := range v.vec.sorted() {
		var total uint64
		for i := range c.m.counts {
			total += c.m.counts[i].Load()
			b = appendSeries(b, name+"_bucket", labels, c.values, v.le[i])
			b = strconv.AppendUint(b, total, 10)
			b = append(b, '\n')
		}
		b = appendSeries(b, name+"_sum", labels, c.values, "")
		b = appendFloat(b, math.Float64frombits(c.m.sum.Load()))
		b = append(b, '\n')
		b = appendSeries(b, name+"_count", labels, c.values, "")
		b = strconv.AppendUint(b, total, 10)
		b = append(b, '\n')
	}
	return b
}
