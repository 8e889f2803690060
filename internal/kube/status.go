package kube

import (
	"encoding/json"
	"net/http"
)

// Status is a Kubernetes meta/v1 Status object, the body of every error
// the API server answers, which kubectl prints as
// "Error from server (REASON): MESSAGE". The gateway answers its denials
// on a kubernetes service with one:
//
//	{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
//	 "message":"scope_denied: no scope of token ... allows ...",
//	 "reason":"Forbidden","details":{"causes":[{"reason":"scope_denied",
//	 "message":"..."}]},"code":403,"error":"scope_denied"}
//
// message starts with latchkey's denial reason (CONTRACT.md "The
// gateway"), so kubectl shows it; "error" carries the reason alone, as the
// gateway's JSON denials do ({"error": REASON, "message": TEXT}); clients
// decoding a Status ignore it.
type Status struct {
	Kind       string   `json:"kind"`
	APIVersion string   `json:"apiVersion"`
	Metadata   struct{} `json:"metadata"`
	Status     string   `json:"status"`
	Message    string   `json:"message"`
	Reason     string   `json:"reason"`
	Details    Details  `json:"details"`
	Code       int      `json:"code"`
	Error      string   `json:"error"`
}

// Details are a Status's details: one cause, latchkey's reason.
type Details struct {
	Causes []Cause `json:"causes"`
}

// Cause is one cause of a Status.
type Cause struct {
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// NewStatus returns the Status of a denial with HTTP status code, latchkey
// reason (token_expired, scope_denied, ...) and message text.
func NewStatus(code int, reason, msg string) Status {
	return Status{
		Kind: "Status", APIVersion: "v1", Status: "Failure",
		Message: reason + ": " + msg,
		Reason:  StatusReason(code),
		Details: Details{Causes: []Cause{{Reason: reason, Message: msg}}},
		Code:    code, Error: reason,
	}
}

// StatusReason returns the Kubernetes StatusReason of an HTTP status code,
// as the API server would give it.
func StatusReason(code int) string {
	switch code {
	case http.StatusBadRequest:
		return "BadRequest"
	case http.StatusUnauthorized:
		return "Unauthorized"
	case http.StatusForbidden:
		return "Forbidden"
	case http.StatusNotFound:
		return "NotFound"
	case http.StatusTooManyRequests:
		return "TooManyRequests"
	case http.StatusServiceUnavailable, http.StatusBadGateway:
		return "ServiceUnavailable"
	}
	return "InternalError"
}

// WriteStatus answers a denial as a Status (application/json).
func WriteStatus(w http.ResponseWriter, code int, reason, msg string) {
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(NewStatus(code, reason, msg))
}
