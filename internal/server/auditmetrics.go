package server

import (
	"sync/atomic"
	"time"

	"latchkey/internal/metrics"
)

// auditBuckets are upper bounds in seconds for the audit log's waits: an
// Append is one journal write (tens of microseconds) unless it waits
// behind another; an integration is one transaction of many records.
var auditBuckets = []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1}

// auditMetrics is the audit log's audit.Observer: how long audited
// operations wait for their records, and the integrations into the tree.
// It drops what it is told until register (serve) gives it a registry: a
// CLI command opens the same log without metrics.
type auditMetrics struct {
	h       atomic.Pointer[auditHistograms]
	records atomic.Uint64 // integrated so far
}

// auditHistograms are the series auditMetrics observes into, looked up
// once.
type auditHistograms struct {
	ok, failed, integrate *metrics.Histogram
}

// register adds the metrics to reg.
func (m *auditMetrics) register(reg *metrics.Registry) {
	appends := reg.NewHistogramVec("latchkey_audit_append_duration_seconds",
		"Time an audited operation (a gateway request, an admin action) waited for its audit record to be durably journalled, by outcome.",
		auditBuckets, "outcome")
	integrates := reg.NewHistogramVec("latchkey_audit_integrate_duration_seconds",
		"Time of each transaction adding journalled audit records to the Merkle tree.", auditBuckets)
	reg.NewCounterFunc("latchkey_audit_integrated_records_total", "Audit records added to the Merkle tree by this process.",
		func() float64 { return float64(m.records.Load()) })
	m.h.Store(&auditHistograms{ok: appends.With("ok"), failed: appends.With("error"), integrate: integrates.With()})
}

// Appended implements audit.Observer.
func (m *auditMetrics) Appended(took time.Duration, err error) {
	h := m.h.Load()
	if h == nil {
		return
	}
	if err != nil {
		h.failed.Observe(took.Seconds())
		return
	}
	h.ok.Observe(took.Seconds())
}

// Integrated implements audit.Observer.
func (m *auditMetrics) Integrated(n int, took time.Duration) {
	m.records.Add(uint64(n))
	if h := m.h.Load(); h != nil {
		h.integrate.Observe(took.Seconds())
	}
}
