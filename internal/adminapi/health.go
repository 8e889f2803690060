package adminapi

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// Health is the reply to GET /healthz ("ok") and GET /readyz ("ready").
type Health struct {
	Status string `json:"status"`
}

// NotReady is an error a Config.Ready function returns to name the
// component that is not ready. GET /readyz shows the component, never
// Err, which goes to the application log.
type NotReady struct {
	Component string // a fixed name such as "store" or "audit"
	Err       error
}

func (e *NotReady) Error() string { return e.Component + " not ready: " + e.Err.Error() }

func (e *NotReady) Unwrap() error { return e.Err }

// readyTimeout bounds one call of Config.Ready.
const readyTimeout = 5 * time.Second

// publicRoute is an endpoint served without a token and, but for
// POST /v1/leaks which records itself, not recorded in the audit log
// (probes and scrapes would flood it). Produces is the reply's media type
// if not JSON.
type publicRoute struct {
	Method, Path string
	Summary      string
	Reply        any
	Produces     string
	Status       int
	serve        http.HandlerFunc
}

func (s *Server) publicRoutes() []publicRoute {
	rs := []publicRoute{
		{"GET", "/healthz", "Liveness: 200 whenever the process serves", Health{}, "", 200, s.healthz},
		{"GET", "/readyz", "Readiness: 200 when every component is ready, else 503 naming the component", Health{}, "", 200, s.readyz},
		// Authenticated by its signature, not a token, and audited itself.
		{"POST", "/v1/leaks", "Leak reports in GitHub's secret scanning partner format, signed (Github-Public-Key-Identifier, Github-Public-Key-Signature): revokes each reported token; the same reply for every entry", LeakReceipt{}, "", 200, s.leaks},
	}
	if s.cfg.Metrics != nil {
		rs = append(rs, publicRoute{"GET", "/metrics", "Prometheus metrics (text exposition format 0.0.4)", nil,
			"text/plain; version=0.0.4", 200, s.cfg.Metrics.ServeHTTP})
	}
	return rs
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, Health{"ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready == nil {
		writeJSON(w, http.StatusOK, Health{"ready"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	err := s.cfg.Ready(ctx)
	if err == nil {
		writeJSON(w, http.StatusOK, Health{"ready"})
		return
	}
	s.cfg.Log.Warn("not ready", "err", err)
	msg := "not ready"
	var nr *NotReady
	if errors.As(err, &nr) && nr.Component != "" {
		msg = nr.Component + " is not ready"
	}
	writeProblem(w, http.StatusServiceUnavailable, "not_ready", msg)
}
