// Package adminapi implements latchkey's admin REST API: JSON over HTTP
// under /v1/, authenticated by admin (lka_) tokens whose own admin scopes
// are enforced per route, plus the OpenAPI 3 document at /v1/openapi.json
// generated from the same route table, and a Go client. Beside /v1/, and
// with no token: /healthz, /readyz, and /metrics if configured.
//
// What a client sees (Problem: a reason word and one line) is kept apart
// from what is logged (the full error). Internal errors are logged and
// answered with reason "internal" and no detail.
package adminapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"latchkey/internal/access"
	"latchkey/internal/audit"
	"latchkey/internal/leak"
	"latchkey/internal/notify"
	"latchkey/internal/scope"
	"latchkey/internal/store"
	"latchkey/internal/usage"
)

// MaxBody caps every request body.
const MaxBody = 64 << 10

// Config configures the admin API handler.
type Config struct {
	// Authority applies the rules. Required.
	Authority *access.Authority
	// Usage records admin token use off the request path. Optional.
	Usage *usage.Recorder
	// Audit is the audit log, for the /v1/audit routes (absent if nil).
	Audit *audit.Log
	// AuditStorage is the audit log's storage, for search and export.
	AuditStorage interface {
		audit.Storage
		audit.Searcher
	}
	// Checkpoints signs a checkpoint of the audit log now (force: even if
	// the log did not grow) and returns it.
	Checkpoints func(ctx context.Context, force bool) ([]byte, error)
	// Webhooks manages webhooks, for the /v1/webhooks routes (absent if nil).
	Webhooks *notify.Notifier
	// Metrics, if set, is served at GET /metrics with no token and no
	// audit record (as a Prometheus scrape expects), exposing service
	// names and request counts to whoever reaches the admin listener.
	// Absent (404) if nil.
	Metrics http.Handler
	// Ready reports whether the server can do its work (the store and
	// audit log answer), for GET /readyz, which needs no token. It is
	// called once per probe with a deadline of a few seconds. Its error
	// is logged; the client sees only the Component of a *NotReady in
	// it. Nil means always ready.
	Ready func(context.Context) error
	// LeakKeys verify the signatures of leak reports (GitHub secret
	// scanning) at POST /v1/leaks. nil: the route refuses every report.
	LeakKeys *leak.Keys
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Log is the application log. Default slog.Default().
	Log *slog.Logger
}

// Server serves the admin API.
type Server struct {
	cfg Config
	mux *http.ServeMux
}

// New returns the admin API handler.
func New(cfg Config) (*Server, error) {
	if cfg.Authority == nil {
		return nil, errors.New("adminapi: Authority is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	for _, rt := range s.routes() {
		s.mux.Handle(rt.Method+" "+rt.Path, s.authorize(rt))
	}
	for _, rt := range s.publicRoutes() {
		s.mux.Handle(rt.Method+" "+rt.Path, rt.serve)
	}
	doc, err := json.Marshal(openAPI(s.routes(), s.publicRoutes()))
	if err != nil {
		return nil, err
	}
	s.mux.HandleFunc("GET /v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(doc)
	})
	s.mux.HandleFunc("/v1/", s.notFound)
	return s, nil
}

// notFound answers paths and methods no route serves, in JSON: 405 with
// an Allow header if another method serves the path, else 404.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pat := s.mux.Handler(probe); pat != "/v1/" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeProblem(w, http.StatusMethodNotAllowed, "method_not_allowed", fmt.Sprintf("%s is not allowed on %q", r.Method, r.URL.Path))
		return
	}
	writeProblem(w, http.StatusNotFound, "not_found", fmt.Sprintf("no such endpoint: %s %q", r.Method, r.URL.Path))
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	s.mux.ServeHTTP(w, r)
}

// caller is the authenticated admin making a request.
type caller struct {
	tok    store.Token
	scopes scope.Set
	source string // peer address
}

func (c caller) actor() access.Actor {
	name := c.tok.Note
	if !c.tok.Admin {
		name = c.tok.Contractor
	}
	return access.Actor{TokenID: c.tok.ID, Name: name, Source: c.source, Scopes: c.scopes,
		ExpiresAt: c.tok.ExpiresAt, CIDRs: c.tok.CIDRs}
}

// refuse records a request refused before any operation ran, then
// answers it. If even the refusal cannot be recorded, the answer is 503.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, by access.Actor, status int, reason, msg string) {
	req := access.Request{Method: r.Method, Path: r.URL.Path, Status: status, Reason: reason}
	if err := s.cfg.Authority.RecordRequest(r.Context(), by, req); err != nil {
		s.fail(w, r, err)
		return
	}
	writeProblem(w, status, reason, msg)
}

// handler is a route's body: it returns the status and value to encode,
// or an error.
type handler func(ctx context.Context, c caller, r *http.Request) (int, any, error)

// authorize authenticates the admin token and checks the route's scope
// before calling the route. Deny by default: a route without a scope is a
// programming error caught by tests.
func (s *Server) authorize(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The admin API trusts no proxy header: the source is the peer.
		src, _ := netip.ParseAddrPort(r.RemoteAddr)
		anon := access.Actor{Source: src.Addr().String()}
		text, ok := bearer(r)
		if !ok {
			s.refuse(w, r, anon, http.StatusUnauthorized, "token_missing", "an admin token is required: Authorization: Bearer lka_...")
			return
		}
		tok, set, err := s.cfg.Authority.Authenticate(r.Context(), text, src.Addr())
		var refused *access.Error
		if errors.As(err, &refused) {
			// Refusals of the caller's own token are 401, but for a known
			// token used from a source it is not allowed from.
			status := http.StatusUnauthorized
			if refused.Reason == access.ReasonSourceDenied {
				status = http.StatusForbidden
			}
			s.refuse(w, r, anon, status, refused.Reason, refused.Msg)
			return
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		c := caller{tok, set, anon.Source}
		if tok.Bound() {
			// The admin API checks no proof of possession (only the gateway
			// does): a bound token is refused here, never taken as bearer.
			s.refuse(w, r, c.actor(), http.StatusUnauthorized, "proof_invalid",
				"token "+tok.ID+" is bound to a key: it is accepted only at the gateway, with its proof of possession")
			return
		}
		switch {
		case rt.Resource == selfService && tok.Admin:
			s.refuse(w, r, c.actor(), http.StatusForbidden, access.ReasonForbidden, "this endpoint is for contractor tokens; an admin token cannot use it")
			return
		case rt.Resource == selfService:
			// A contractor's own endpoint: the handler checks the rest.
		case !tok.Admin:
			s.refuse(w, r, c.actor(), http.StatusForbidden, access.ReasonForbidden, "a contractor token cannot use the admin API")
			return
		case rt.Resource != "" && !set.AllowsAdmin(rt.Resource, rt.Action):
			s.refuse(w, r, c.actor(), http.StatusForbidden, access.ReasonForbidden,
				fmt.Sprintf("this token lacks scope admin:%s:%s", rt.Resource, rt.Action))
			return
		}
		if rt.Method == http.MethodGet {
			// Reads change nothing, so no operation records them: this does.
			if err := s.cfg.Authority.RecordRequest(r.Context(), c.actor(), access.Request{Method: r.Method, Path: r.URL.Path, Status: http.StatusOK}); err != nil {
				s.fail(w, r, err)
				return
			}
		}
		if s.cfg.Usage != nil {
			s.cfg.Usage.Record(tok.ID, "", s.cfg.Now())
		}
		status, v, err := rt.handle(r.Context(), c, r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if st, ok := v.(streamer); ok {
			st(w)
			return
		}
		writeJSON(w, status, v)
	})
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, text, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || text == "" {
		return "", false
	}
	return text, true
}

// statusOf maps refusal reasons to HTTP statuses.
var statusOf = map[string]int{
	access.ReasonInvalid:            http.StatusBadRequest,
	access.ReasonTTLMissing:         http.StatusBadRequest,
	access.ReasonTTLTooLong:         http.StatusBadRequest,
	access.ReasonGrantTooLong:       http.StatusBadRequest,
	access.ReasonApprovalRequired:   http.StatusForbidden,
	access.ReasonNotFound:           http.StatusNotFound,
	access.ReasonConflict:           http.StatusConflict,
	access.ReasonRevoked:            http.StatusConflict,
	access.ReasonGrantRevoked:       http.StatusConflict,
	access.ReasonExpired:            http.StatusConflict,
	access.ReasonForbidden:          http.StatusForbidden,
	access.ReasonScopeNotCovered:    http.StatusForbidden,
	access.ReasonPastEngagement:     http.StatusForbidden,
	access.ReasonPastGrant:          http.StatusForbidden,
	access.ReasonContractorDisabled: http.StatusForbidden,
	access.ReasonEngagementEnded:    http.StatusForbidden,
	access.ReasonMalformed:          http.StatusUnauthorized,
	access.ReasonUnknown:            http.StatusUnauthorized,
	access.ReasonSourceDenied:       http.StatusForbidden,
	"body_too_large":                http.StatusRequestEntityTooLarge,
	access.ReasonAuditUnavailable:   http.StatusServiceUnavailable,
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var e *access.Error
	if !errors.As(err, &e) {
		s.cfg.Log.Error("admin API internal error", "method", r.Method, "path", r.URL.Path, "err", err)
		writeProblem(w, http.StatusInternalServerError, "internal", "internal error; see the server log")
		return
	}
	status := statusOf[e.Reason]
	if status == 0 {
		status = http.StatusBadRequest
	}
	writeProblem(w, status, e.Reason, e.Msg)
}

func writeProblem(w http.ResponseWriter, status int, reason, msg string) {
	writeJSON(w, status, Problem{Error: reason, Message: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":"internal","message":"failed to encode reply"}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// decode reads a JSON body strictly: size-capped, no unknown fields, one
// value and nothing after it.
func decode(r *http.Request, v any) error {
	body := http.MaxBytesReader(nil, r.Body, MaxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &access.Error{Reason: "body_too_large", Msg: fmt.Sprintf("request body exceeds %d bytes", MaxBody)}
		}
		if errors.Is(err, io.EOF) {
			return &access.Error{Reason: access.ReasonInvalid, Msg: "request body is empty: want a JSON object"}
		}
		return &access.Error{Reason: access.ReasonInvalid, Msg: "invalid JSON body: " + err.Error()}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &access.Error{Reason: access.ReasonInvalid, Msg: "invalid JSON body: trailing data after the object"}
	}
	return nil
}
