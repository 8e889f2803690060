package metrics_test

import (
	"fmt"
	"testing"

	"latchkey/internal/metrics"
)

func BenchmarkCounterInc(b *testing.B) {
	var r metrics.Registry
	c := r.NewCounterVec("c_total", "c").With()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Inc()
		}
	})
}

// BenchmarkCounterVecWith is the hot path that looks its counter up per
// request by service, decision and reason.
func BenchmarkCounterVecWith(b *testing.B) {
	var r metrics.Registry
	v := r.NewCounterVec("c_total", "c", "service", "decision", "reason")
	services := make([]string, 50)
	for i := range services {
		services[i] = fmt.Sprint("service-", i)
		v.With(services[i], "deny", "scope_not_covered")
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			v.With(services[i%len(services)], "deny", "scope_not_covered").Inc()
			i++
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				v.With(services[i%len(services)], "deny", "scope_not_covered").Inc()
				i++
			}
		})
	})
}

func BenchmarkHistogramObserve(b *testing.B) {
	var r metrics.Registry
	h := r.NewHistogramVec("h_seconds", "h", nil).With()
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			h.Observe(float64(i%1000) * 0.003)
			i++
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				h.Observe(float64(i%1000) * 0.003)
				i++
			}
		})
	})
}

// BenchmarkWrite is one scrape of 50 services x 3 decisions and their
// latency histograms.
func BenchmarkWrite(b *testing.B) {
	var r metrics.Registry
	c := r.NewCounterVec("c_total", "c", "service", "decision", "reason")
	h := r.NewHistogramVec("h_seconds", "h", nil, "service")
	for i := range 50 {
		s := fmt.Sprint("service-", i)
		for _, d := range []string{"allow", "deny", "error"} {
			c.With(s, d, "r").Inc()
		}
		h.With(s).Observe(0.01)
	}
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		buf = r.AppendText(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}
