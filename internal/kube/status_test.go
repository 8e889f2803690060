package kube

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWriteStatus(t *testing.T) {
	tests := []struct {
		code            int
		reason, kreason string
	}{
		{400, "path_ambiguous", "BadRequest"},
		{401, "token_expired", "Unauthorized"},
		{401, "token_missing", "Unauthorized"},
		{403, "scope_denied", "Forbidden"},
		{404, "service_unknown", "NotFound"},
		{429, "rate_limited", "TooManyRequests"},
		{500, "internal_error", "InternalError"},
		{502, "upstream_unavailable", "ServiceUnavailable"},
		{503, "audit_unavailable", "ServiceUnavailable"},
	}
	for _, tt := range tests {
		w := httptest.NewRecorder()
		WriteStatus(w, tt.code, tt.reason, "no scope allows it")
		if w.Code != tt.code || w.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%d: status %d, Content-Type %q", tt.code, w.Code, w.Header().Get("Content-Type"))
		}
		var got map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{
			"kind": "Status", "apiVersion": "v1", "metadata": map[string]any{}, "status": "Failure",
			"message": tt.reason + ": no scope allows it", "reason": tt.kreason, "code": float64(tt.code),
			"error":   tt.reason,
			"details": map[string]any{"causes": []any{map[string]any{"reason": tt.reason, "message": "no scope allows it"}}},
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%d (-want +got):\n%s", tt.code, d)
		}
	}
	if StatusReason(http.StatusTeapot) != "InternalError" {
		t.Error("an unexpected code is not InternalError")
	}
}
