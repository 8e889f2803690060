package adminapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"latchkey/internal/adminapi"
	"latchkey/internal/metrics"
)

// get sends GET path with no token (or a junk one) and returns the status,
// Content-Type and body.
func get(t *testing.T, e *env, path, tok string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest("GET", e.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

func TestHealthz(t *testing.T) {
	e := newEnv(t)
	for _, tok := range []string{"", "lka_junk"} {
		status, ct, body := get(t, e, "/healthz", tok)
		if status != 200 || ct != "application/json" || body != `{"status":"ok"}`+"\n" {
			t.Errorf("GET /healthz (token %q): %d %q %s", tok, status, ct, body)
		}
	}
	resp, err := http.Post(e.srv.URL+"/healthz", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("POST /healthz: %d", resp.StatusCode)
	}
}

// TestProbesNotAudited checks that probes leave no audit record: only the
// two audit reads themselves are recorded.
func TestProbesNotAudited(t *testing.T) {
	e := newEnvWith(t, func(c *adminapi.Config) { c.Metrics = new(metrics.Registry).Handler() })
	newest := func() int64 {
		_, body := call(t, e, "GET", "/v1/audit?limit=1", e.root, "")
		var p adminapi.AuditPage
		if err := json.Unmarshal([]byte(body), &p); err != nil || len(p.Records) != 1 {
			t.Fatalf("audit page %v %s", err, body)
		}
		return p.Records[0].Index
	}
	before := newest()
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		get(t, e, p, "")
	}
	if after := newest(); after != before+1 {
		t.Errorf("newest record %d after probes, want %d", after, before+1)
	}
}

func TestReadyz(t *testing.T) {
	const secret = "postgres://latchkey:hunter2@10.0.0.5/latchkey"
	tests := []struct {
		name         string
		ready        func(context.Context) error
		status       int
		body         string
		wantDeadline bool
	}{
		{"no check", nil, 200, `{"status":"ready"}`, false},
		{"ready", func(context.Context) error { return nil }, 200, `{"status":"ready"}`, true},
		{"component", func(context.Context) error {
			return &adminapi.NotReady{Component: "store", Err: errors.New("dial " + secret)}
		}, 503, `{"error":"not_ready","message":"store is not ready"}`, true},
		{"wrapped component", func(context.Context) error {
			return fmt.Errorf("check: %w", &adminapi.NotReady{Component: "audit", Err: errors.New(secret)})
		}, 503, `{"error":"not_ready","message":"audit is not ready"}`, true},
		{"plain error", func(context.Context) error { return errors.New(secret) },
			503, `{"error":"not_ready","message":"not ready"}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var deadline atomic.Bool
			e := newEnvWith(t, func(c *adminapi.Config) {
				if tt.ready != nil {
					c.Ready = func(ctx context.Context) error {
						_, ok := ctx.Deadline()
						deadline.Store(ok)
						return tt.ready(ctx)
					}
				}
			})
			status, ct, body := get(t, e, "/readyz", "")
			if status != tt.status || ct != "application/json" || body != tt.body+"\n" {
				t.Errorf("GET /readyz: %d %q %s, want %d %s", status, ct, body, tt.status, tt.body)
			}
			if strings.Contains(body, "hunter2") {
				t.Errorf("GET /readyz leaks the error: %s", body)
			}
			if deadline.Load() != tt.wantDeadline {
				t.Errorf("Ready called with deadline %v, want %v", deadline.Load(), tt.wantDeadline)
			}
		})
	}
}

func TestMetricsEndpoint(t *testing.T) {
	e := newEnv(t)
	if status, _, _ := get(t, e, "/metrics", ""); status != 404 {
		t.Errorf("GET /metrics with no Metrics: %d, want 404", status)
	}
	if status, _, _ := get(t, e, "/metrics", e.root); status != 404 {
		t.Errorf("GET /metrics with no Metrics, admin token: %d, want 404", status)
	}
	if _, ok := openAPIDoc(t, e).Paths["/metrics"]; ok {
		t.Error("/metrics documented but not served")
	}

	var reg metrics.Registry
	reg.NewCounterVec("latchkey_requests_total", "Requests.", "service").With("billing").Add(5)
	e = newEnvWith(t, func(c *adminapi.Config) { c.Metrics = reg.Handler() })
	status, ct, body := get(t, e, "/metrics", "")
	if status != 200 || ct != metrics.ContentType || !strings.Contains(body, `latchkey_requests_total{service="billing"} 5`+"\n") {
		t.Errorf("GET /metrics: %d %q\n%s", status, ct, body)
	}
	if _, ok := openAPIDoc(t, e).Paths["/metrics"]["get"]; !ok {
		t.Error("/metrics served but not documented")
	}
}

// TestPublicRoutesDocumented checks that the probes are documented as
// needing no token, and every other operation as needing one.
func TestPublicRoutesDocumented(t *testing.T) {
	e := newEnvWith(t, func(c *adminapi.Config) { c.Metrics = new(metrics.Registry).Handler() })
	resp, err := http.Get(e.srv.URL + "/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
			Security    []any  `json:"security"`
		} `json:"paths"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	public := map[string]string{"/healthz": "getHealthz", "/readyz": "getReadyz", "/metrics": "getMetrics", "/v1/leaks": "postLeaks"}
	for path, ops := range doc.Paths {
		for m, op := range ops {
			id, isPublic := public[path]
			if isPublic != (len(op.Security) == 0) {
				t.Errorf("%s %s: security %v", m, path, op.Security)
			}
			if isPublic && op.OperationID != id {
				t.Errorf("%s %s: operationId %q, want %q", m, path, op.OperationID, id)
			}
		}
	}
	if ops := doc.Paths["/v1/tokens/{id}"]; ops["get"].OperationID != "getTokensId" {
		t.Errorf("operationId of GET /v1/tokens/{id}: %q", ops["get"].OperationID)
	}
}
