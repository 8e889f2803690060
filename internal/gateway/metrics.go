package gateway

import (
	"time"

	"latchkey/internal/metrics"
)

// Metrics are the gateway's series in a metrics.Registry:
//
//	latchkey_gateway_requests_total{service, decision, reason}
//	latchkey_gateway_request_duration_seconds{service, decision}
//
// The service label is the name of a registered service or "_other", so
// that clients cannot mint series with made-up paths.
type Metrics struct {
	requests *metrics.CounterVec
	duration *metrics.HistogramVec
}

// NewMetrics registers the gateway's series in reg.
func NewMetrics(reg *metrics.Registry) *Metrics {
	return &Metrics{
		requests: reg.NewCounterVec("latchkey_gateway_requests_total",
			"Gateway requests by service, decision (allow or deny) and denial reason.", "service", "decision", "reason"),
		duration: reg.NewHistogramVec("latchkey_gateway_request_duration_seconds",
			"Time from a gateway request's arrival to the end of its response, streams included.",
			metrics.DefaultBuckets, "service", "decision"),
	}
}

func (m *Metrics) observe(service, decision, reason string, took time.Duration) {
	m.requests.With(service, decision, reason).Inc()
	m.duration.With(service, decision).Observe(took.Seconds())
}
