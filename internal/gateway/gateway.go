package gateway

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"latchkey/internal/access"
	"latchkey/internal/scope"
	"latchkey/internal/store"
	"latchkey/internal/token"
	"latchkey/internal/usage"
)

// Denial reasons the gateway answers with, beyond the token reasons that
// access.Authority.Authenticate returns (token_malformed, token_unknown,
// token_expired, token_revoked, contractor_disabled, source_denied).
const (
	ReasonTokenMissing        = "token_missing"
	ReasonScopeDenied         = "scope_denied"
	ReasonPathAmbiguous       = "path_ambiguous"
	ReasonServiceUnknown      = "service_unknown"
	ReasonUpstreamUnavailable = "upstream_unavailable"
	ReasonInternal            = "internal_error"
)

// Config configures a Handler. Only Authority is required.
type Config struct {
	// Authority authenticates tokens, holds the services and their sealed
	// credentials, and commits the audit record of every request. Required.
	Authority *access.Authority
	// Usage receives one use per allowed request (token id, matched scope,
	// time), batched off the request path. nil: usage is not tracked.
	Usage *usage.Recorder
	// Log is the application log (never the audit log). Default slog.Default().
	Log *slog.Logger
	// Transport forwards requests to upstreams. Default: a clone of
	// http.DefaultTransport keeping up to 256 idle connections per host
	// (the default 2 would dial on almost every request under load).
	Transport http.RoundTripper
	// Now is the clock for usage times. Default time.Now. (Token expiry
	// and engagement ends are judged by the Authority's own clock.)
	Now func() time.Time
}

// Handler is the gateway: an http.Handler serving each service NAME at
// /NAME/..., as ../shared/CONTRACT.md ("The gateway") describes. For each
// request, in order:
//
//  1. the escaped path is checked with CheckPath (400 path_ambiguous);
//  2. the "Authorization: Bearer TOKEN" header is required (401
//     token_missing; any other scheme, DPoP included, counts as missing
//     for now) and the token is authenticated against the peer address
//     (r.RemoteAddr: X-Forwarded-For is not trusted in this version);
//     refusals keep Authenticate's reason (401 token_*, 403
//     contractor_disabled and source_denied);
//  3. an admin token, an unregistered method, or a request no scope of the
//     token matches is 403 scope_denied;
//  4. an unknown service is 404 service_unknown;
//  5. the audit record is committed (503 audit_unavailable if it cannot
//     be, and nothing is forwarded), the use is noted, and the request is
//     forwarded: see [Handler.rewrite].
//
// Every denial is also committed to the audit log before it is answered;
// a denial that cannot be recorded is answered 503 audit_unavailable
// instead. Denials are JSON {"error": REASON, "message": TEXT}; TEXT never
// contains the token or any credential.
//
// Not yet enforced (issue 4): token use limits (MaxUses), rate limits,
// DPoP and mTLS binding, trusted proxies for X-Forwarded-For, cutting
// streams when their token ends, and metrics.
type Handler struct {
	cfg       Config
	transport http.RoundTripper

	mu       sync.RWMutex
	services map[string]*upstream // services are immutable in this version
}

// New validates cfg and returns a Handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Authority == nil {
		return nil, errors.New("gateway: Authority is required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns = 0 // no total cap; the per-host cap applies
		t.MaxIdleConnsPerHost = 256
		cfg.Transport = t
	}
	return &Handler{cfg: cfg, services: make(map[string]*upstream)}, nil
}

// ServeHTTP implements the steps listed on Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw := requestPath(r)
	name, rest := splitService(raw)
	src := peer(r.RemoteAddr)
	rec := access.GatewayRequest{Service: name, Method: r.Method, Path: rest, Source: r.RemoteAddr}
	if src.IsValid() {
		rec.Source = src.String()
	}
	if err := CheckPath(raw); err != nil {
		h.deny(w, r, rec, http.StatusBadRequest, ReasonPathAmbiguous, err.Error())
		return
	}
	tok, matched, ok := h.authorize(w, r, src, &rec)
	if !ok {
		return
	}
	up, err := h.service(r.Context(), name)
	switch {
	case access.ReasonOf(err) == access.ReasonNotFound:
		h.deny(w, r, rec, http.StatusNotFound, ReasonServiceUnknown, "no service named "+quote(name))
		return
	case err != nil:
		h.cfg.Log.Error("gateway: cannot load service", "service", name, "err", err)
		h.deny(w, r, rec, http.StatusInternalServerError, ReasonInternal, "internal error")
		return
	}
	if err := h.cfg.Authority.RecordGatewayRequest(r.Context(), rec); err != nil {
		h.cfg.Log.Error("gateway: audit append failed: request refused", "service", name, "token", tok.ID, "err", err)
		writeDenial(w, http.StatusServiceUnavailable, access.ReasonAuditUnavailable, "the audit log cannot be written: request refused")
		return
	}
	if h.cfg.Usage != nil {
		h.cfg.Usage.Record(tok.ID, matched.String(), h.cfg.Now())
	}
	up.proxy.ServeHTTP(w, r)
}

// authorize runs steps 2 and 3 of ServeHTTP, filling in rec. When it
// reports false the request has been denied and answered.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request, src netip.Addr, rec *access.GatewayRequest) (store.Token, scope.Scope, bool) {
	text, ok := bearer(r.Header)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="latchkey"`)
		h.deny(w, r, *rec, http.StatusUnauthorized, ReasonTokenMissing, "an Authorization: Bearer token is required")
		return store.Token{}, scope.Scope{}, false
	}
	if p, err := token.Parse(text); err == nil {
		rec.TokenID = p.ID // the claimed id, so denials are searchable by token
	}
	tok, set, err := h.cfg.Authority.Authenticate(r.Context(), text, src)
	if err != nil {
		h.denyAuth(w, r, *rec, err)
		return store.Token{}, scope.Scope{}, false
	}
	rec.Contractor = tok.Contractor
	var msg string
	matched, ok := set.Match(rec.Service, r.Method, rec.Path)
	switch _, registered := scope.MethodBit(r.Method); {
	case tok.Admin:
		msg = "an admin token cannot call services"
	case !registered:
		msg = "method " + quote(r.Method) + " is not allowed through the gateway"
	case !ok:
		msg = "no scope of token " + tok.ID + " allows " + r.Method + " " + quote(rec.Path) + " on service " + quote(rec.Service)
	default:
		return tok, matched, true
	}
	h.deny(w, r, *rec, http.StatusForbidden, ReasonScopeDenied, msg)
	return store.Token{}, scope.Scope{}, false
}

// denyAuth answers an Authenticate failure with its reason's status.
func (h *Handler) denyAuth(w http.ResponseWriter, r *http.Request, rec access.GatewayRequest, err error) {
	var e *access.Error
	if !errors.As(err, &e) {
		h.cfg.Log.Error("gateway: cannot authenticate", "token", rec.TokenID, "err", err)
		h.deny(w, r, rec, http.StatusInternalServerError, ReasonInternal, "internal error")
		return
	}
	status := http.StatusForbidden
	switch e.Reason {
	case access.ReasonMalformed, access.ReasonUnknown, access.ReasonExpired, access.ReasonRevoked:
		status = http.StatusUnauthorized
	case access.ReasonContractorDisabled, access.ReasonSourceDenied:
	default:
		h.cfg.Log.Error("gateway: unexpected authentication refusal", "reason", e.Reason, "err", err)
		status = http.StatusInternalServerError
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="latchkey", error="invalid_token"`)
	}
	h.deny(w, r, rec, status, e.Reason, e.Msg)
}

// deny commits the denial's audit record, then answers it. If the record
// cannot be committed, it answers 503 audit_unavailable instead.
func (h *Handler) deny(w http.ResponseWriter, r *http.Request, rec access.GatewayRequest, status int, reason, msg string) {
	rec.Status, rec.Reason = status, reason
	if err := h.cfg.Authority.RecordGatewayRequest(r.Context(), rec); err != nil {
		h.cfg.Log.Error("gateway: audit append failed: denial not recorded", "reason", reason, "err", err)
		w.Header().Del("WWW-Authenticate")
		status, reason, msg = http.StatusServiceUnavailable, access.ReasonAuditUnavailable, "the audit log cannot be written: request refused"
	}
	writeDenial(w, status, reason, msg)
}

// denial is the JSON body of every refusal.
type denial struct {
	Error   string `json:"error"`
	Message string `json:"message,omitempty"`
}

func writeDenial(w http.ResponseWriter, status int, reason, msg string) {
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(denial{Error: reason, Message: msg})
}

// requestPath returns the escaped path to check and forward: the path of
// the request-target exactly as the client sent it. Go's URL parser would
// re-escape some bytes (EscapedPath); the raw bytes are what CheckPath
// must judge. A request-target not in origin form (absolute URL, "*")
// does not start with "/" and so fails CheckPath.
func requestPath(r *http.Request) string {
	if r.RequestURI == "" { // not a server request (direct ServeHTTP calls)
		return r.URL.EscapedPath()
	}
	p, _, _ := strings.Cut(r.RequestURI, "?")
	return p
}

// splitService splits "/NAME/rest" into NAME and "/rest"; rest is "/" when
// the path is "/NAME" or "/NAME/".
func splitService(p string) (name, rest string) {
	p = strings.TrimPrefix(p, "/")
	i := strings.IndexByte(p, '/')
	if i < 0 {
		return p, "/"
	}
	return p[:i], p[i:]
}

// bearer returns the token of the request's single "Authorization: Bearer
// TOKEN" header. The scheme is case-insensitive (RFC 9110 11.1).
func bearer(h http.Header) (string, bool) {
	vs := h["Authorization"]
	if len(vs) != 1 {
		return "", false
	}
	scheme, text, ok := strings.Cut(vs[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	text = strings.Trim(text, " ")
	return text, text != ""
}

// peer returns the address of the connection's peer, or the zero Addr.
func peer(remote string) netip.Addr {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// quote quotes client-controlled text for a message, cut to 128 bytes.
func quote(s string) string {
	if len(s) > 128 {
		s = s[:128] + "..."
	}
	b, _ := json.Marshal(s)
	return string(b)
}
