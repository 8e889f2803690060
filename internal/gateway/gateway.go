package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"latchkey/internal/access"
	"latchkey/internal/dpop"
	"latchkey/internal/kube"
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
	ReasonRateLimited         = "rate_limited"
	ReasonServiceUnknown      = "service_unknown"
	ReasonUpstreamUnavailable = "upstream_unavailable"
	ReasonInternal            = "internal_error"
	ReasonProofInvalid        = "proof_invalid"
)

// Defaults of the Config limits.
const (
	DefaultTokenRate    = 100 // requests per second per token
	DefaultTokenBurst   = 200
	DefaultFailureRate  = 10 // authentication failures per second per source
	DefaultFailureBurst = 50
	// maxLimiters bounds the buckets each limiter keeps.
	maxTokenLimiters  = 1 << 20
	maxSourceLimiters = 1 << 16
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
	// AccessLog, if set, gets one Info record per request when it ends:
	// service, method, path, status, decision, reason, token id,
	// contractor, source, duration and bytes written. Never a secret.
	AccessLog *slog.Logger
	// Transport forwards requests to upstreams. Default: a clone of
	// http.DefaultTransport keeping up to 256 idle connections per host
	// (the default 2 would dial on almost every request under load).
	Transport http.RoundTripper
	// TrustedProxies are the networks of proxies in front of the gateway
	// whose X-Forwarded-For is believed (see source). Default none: the
	// source is always the connection's peer.
	TrustedProxies []netip.Prefix
	// TokenRate and TokenBurst bound each token's requests (token bucket).
	// Zero: DefaultTokenRate, DefaultTokenBurst; rate.Inf: no limit.
	TokenRate  rate.Limit
	TokenBurst int
	// FailureRate and FailureBurst bound the authentication failures
	// (401s) per source address; past them, the source's requests are
	// refused 429 before any token lookup, so guessing and floods of
	// unknown tokens cannot reach the store. Zero: the defaults.
	FailureRate  rate.Limit
	FailureBurst int
	// Metrics, if set, counts requests and their outcomes.
	Metrics *Metrics
	// DPoP configures the checking of DPoP proofs (RFC 9449, see proof.go)
	// for tokens bound to a key (cnf jkt). The zero value is the
	// defaults, with Now defaulting to the gateway's clock.
	DPoP dpop.Config
	// PublicURL is the gateway's base URL as clients call it
	// ("https://gw.example.com", optionally with a path prefix): a DPoP
	// proof's htu must be PublicURL followed by the request's path.
	// Empty: derived from each request (https if it came over TLS, and
	// its Host), which is right only when the gateway is reached
	// directly; serve sets it from --gateway-public-url or, by default,
	// from --gateway-addr when that names a host and port.
	PublicURL string
	// Now is the clock for usage times and rate limits. Default time.Now.
	// (Token expiry and engagement ends are judged by the Authority's own
	// clock.)
	Now func() time.Time
}

// Handler is the gateway: an http.Handler serving each service NAME at
// /NAME/..., as ../shared/CONTRACT.md ("The gateway") describes. For each
// request, in order:
//
//  1. the escaped path is checked with CheckPath (400 path_ambiguous);
//  2. a source that has failed authentication too often is refused (429
//     rate_limited) before anything else is looked up;
//  3. the "Authorization: Bearer TOKEN" or "Authorization: DPoP TOKEN"
//     header is required (401 token_missing) and the token is
//     authenticated against the request's source (see source:
//     X-Forwarded-For counts only from trusted proxies); refusals keep
//     Authenticate's reason (401 token_*, 403 contractor_disabled and
//     source_denied); a token bound to a DPoP key needs the DPoP scheme
//     and a valid proof, the DPoP scheme needs such a token (see
//     Handler.proven: 401 proof_invalid otherwise);
//  4. an admin token, an unregistered method, or a request no scope of the
//     token matches is 403 scope_denied;
//  5. a token over its rate is 429 rate_limited; a token with a use limit
//     counts the use in the store at once, and one that has used them all
//     is 401 token_expired;
//  6. an unknown service is 404 service_unknown;
//  7. the audit record is committed (503 audit_unavailable if it cannot
//     be, and nothing is forwarded), the use is noted, and the request is
//     forwarded (see [upstream.rewrite]) under a context that is cancelled
//     when the token expires or is revoked, so that streams and
//     WebSockets are cut then (see access.Authority.Hold).
//
// Every denial is also committed to the audit log before it is answered;
// a denial that cannot be recorded is answered 503 audit_unavailable
// instead. Denials are JSON {"error": REASON, "message": TEXT}; TEXT never
// contains the token or any credential. On a kubernetes service they are
// Kubernetes Status objects instead (kube.Status, with "error": REASON
// too), and a token with any scope on the service may also make the
// discovery reads kubectl needs (kube.Discovery); see kube.go.
//
// A token bound to a client certificate (store.Token.CnfX5T) passes step 3
// only over a TLS connection presenting that certificate (see checkMTLS),
// and a token bound to a DPoP key (CnfJKT) only with the DPoP scheme and a
// valid proof (see proof.go); else 401 proof_invalid.
type Handler struct {
	cfg      Config
	tokens   *limiters[string]
	failures *limiters[netip.Addr]
	dpop     *dpop.Verifier
	public   string // PublicURL without a trailing "/"

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
	if cfg.TokenRate < 0 || cfg.TokenBurst < 0 || cfg.FailureRate < 0 || cfg.FailureBurst < 0 {
		return nil, errors.New("gateway: negative rate limit")
	}
	if cfg.TokenRate == 0 {
		cfg.TokenRate = DefaultTokenRate
	}
	if cfg.TokenBurst == 0 {
		cfg.TokenBurst = DefaultTokenBurst
	}
	if cfg.FailureRate == 0 {
		cfg.FailureRate = DefaultFailureRate
	}
	if cfg.FailureBurst == 0 {
		cfg.FailureBurst = DefaultFailureBurst
	}
	for i, p := range cfg.TrustedProxies {
		cfg.TrustedProxies[i] = p.Masked()
	}
	if cfg.DPoP.Now == nil {
		cfg.DPoP.Now = cfg.Now
	}
	v, err := dpop.New(cfg.DPoP)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	public, err := publicURL(cfg.PublicURL)
	if err != nil {
		return nil, err
	}
	return &Handler{
		dpop:     v,
		public:   public,
		cfg:      cfg,
		tokens:   newLimiters[string](cfg.TokenRate, cfg.TokenBurst, maxTokenLimiters),
		failures: newLimiters[netip.Addr](cfg.FailureRate, cfg.FailureBurst, maxSourceLimiters),
		services: make(map[string]*upstream),
	}, nil
}

// ServeHTTP implements the steps listed on Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	raw := requestPath(r)
	name, rest := splitService(raw)
	src := source(r, h.cfg.TrustedProxies)
	rec := access.GatewayRequest{Service: name, Method: r.Method, Path: rest, Source: r.RemoteAddr}
	if src.IsValid() {
		rec.Source = src.String()
	} else if p := peer(r.RemoteAddr); p.IsValid() {
		rec.Source = p.String() // a trusted proxy that sent no readable client address
	}
	rw := &recorder{ResponseWriter: w}
	h.serve(rw, r, src, &rec)
	h.observe(rw, r, &rec, time.Since(start))
}

// serve runs the steps; rec ends up with the decision.
func (h *Handler) serve(w *recorder, r *http.Request, src netip.Addr, rec *access.GatewayRequest) {
	// Until the token is authenticated, the form of a denial follows the
	// request alone (a Kubernetes API path gets a Status), never the
	// service, which is not looked up before then: an unauthenticated
	// caller learns nothing of the services, and cannot make the gateway
	// read the store.
	w.kube = kube.APIPath(rec.Path)
	if err := CheckPath(requestPath(r)); err != nil {
		h.deny(w, r, rec, http.StatusBadRequest, ReasonPathAmbiguous, err.Error())
		return
	}
	if h.failures.exhausted(src, h.cfg.Now()) {
		h.deny(w, r, rec, http.StatusTooManyRequests, ReasonRateLimited, "too many failed authentications from this address: slow down")
		return
	}
	tok, matched, svc, ok := h.authorize(w, r, src, rec)
	if !ok {
		return
	}
	up, err := svc.up, svc.err
	switch {
	case access.ReasonOf(err) == access.ReasonNotFound:
		h.deny(w, r, rec, http.StatusNotFound, ReasonServiceUnknown, "no service named "+quote(rec.Service))
		return
	case err != nil:
		h.cfg.Log.Error("gateway: cannot load service", "service", rec.Service, "err", err)
		h.deny(w, r, rec, http.StatusInternalServerError, ReasonInternal, "internal error")
		return
	}
	counted, err := h.cfg.Authority.Use(r.Context(), tok)
	if err != nil {
		h.denyAuth(w, r, src, rec, err)
		return
	}
	ctx, release, err := h.cfg.Authority.Hold(r.Context(), tok.ID)
	if err != nil {
		h.denyAuth(w, r, src, rec, err)
		return
	}
	defer release()
	if err := h.cfg.Authority.RecordGatewayRequest(r.Context(), *rec); err != nil {
		h.cfg.Log.Error("gateway: audit append failed: request refused", "service", rec.Service, "token", tok.ID, "err", err)
		rec.Status, rec.Reason = http.StatusServiceUnavailable, access.ReasonAuditUnavailable
		writeDenialAs(w, w.kube, http.StatusServiceUnavailable, access.ReasonAuditUnavailable, "the audit log cannot be written: request refused")
		return
	}
	if h.cfg.Usage != nil && matched.Service() != "" { // a discovery read uses no scope
		if counted {
			h.cfg.Usage.RecordCounted(tok.ID, matched.String(), h.cfg.Now())
		} else {
			h.cfg.Usage.Record(tok.ID, matched.String(), h.cfg.Now())
		}
	}
	up.proxy.ServeHTTP(w, r.WithContext(withContractor(ctx, tok.Contractor)))
	if cause := context.Cause(ctx); cause == access.ErrTokenEnded || cause == access.ErrTokenCut {
		h.cfg.Log.Info("gateway: request cut: its token ended", "service", rec.Service, "token", tok.ID, "cause", cause)
	}
}

// looked is the service of a request, looked up once its token is
// authenticated: its upstream, or why there is none (told only to an
// authorized request, step 6).
type looked struct {
	up  *upstream
	err error
}

// authorize runs steps 3 to 5 of Handler, filling in rec. When it reports
// false the request has been denied and answered. Once the token is
// authenticated it looks the service up, so that the denials of a
// kubernetes service from then on are Status objects.
func (h *Handler) authorize(w *recorder, r *http.Request, src netip.Addr, rec *access.GatewayRequest) (store.Token, scope.Scope, looked, bool) {
	scheme, text, ok := credentials(r.Header)
	if !ok {
		h.failures.allow(src, h.cfg.Now())
		w.Header().Set("WWW-Authenticate", `Bearer realm="latchkey"`)
		h.deny(w, r, rec, http.StatusUnauthorized, ReasonTokenMissing, "an Authorization: Bearer token is required")
		return store.Token{}, scope.Scope{}, looked{}, false
	}
	if p, err := token.Parse(text); err == nil {
		rec.TokenID = p.ID // the claimed id, so denials are searchable by token
	}
	tok, set, err := h.cfg.Authority.Authenticate(r.Context(), text, src)
	if err != nil {
		h.denyAuth(w, r, src, rec, err)
		return store.Token{}, scope.Scope{}, looked{}, false
	}
	rec.Contractor = tok.Contractor
	if tok.CnfX5T != "" && scheme != schemeDPoP { // with DPoP: refused by proven
		// Bound to a client certificate (RFC 8705): see mtls.go.
		if err := checkMTLS(r, tok); err != nil {
			h.denyMTLS(w, r, src, rec, err)
			return store.Token{}, scope.Scope{}, looked{}, false
		}
	}
	proof, ok := h.proven(w, r, src, rec, tok, scheme, text)
	if !ok {
		return store.Token{}, scope.Scope{}, looked{}, false
	}
	var svc looked
	svc.up, svc.err = h.service(r.Context(), rec.Service)
	if svc.up != nil {
		w.kube = svc.up.kube
	}
	var msg string
	matched, ok := set.Match(rec.Service, r.Method, rec.Path)
	switch _, registered := scope.MethodBit(r.Method); {
	case tok.Admin:
		msg = "an admin token cannot call services"
	case !registered:
		msg = "method " + quote(r.Method) + " is not allowed through the gateway"
	case !ok && !(w.kube && discovery(set, rec.Service, r.Method, rec.Path)):
		msg = "no scope of token " + tok.ID + " allows " + r.Method + " " + quote(rec.Path) + " on service " + quote(rec.Service)
	case !h.tokens.allow(h.cfg.Authority.RateKey(tok.ID), h.cfg.Now()):
		h.deny(w, r, rec, http.StatusTooManyRequests, ReasonRateLimited, "token "+tok.ID+" is over its rate limit: slow down")
		return store.Token{}, scope.Scope{}, looked{}, false
	case !h.fresh(w, r, src, rec, tok, proof):
		return store.Token{}, scope.Scope{}, looked{}, false
	default:
		return tok, matched, svc, true
	}
	h.deny(w, r, rec, http.StatusForbidden, ReasonScopeDenied, msg)
	return store.Token{}, scope.Scope{}, looked{}, false
}

// denyAuth answers an Authenticate (or Use, or Hold) failure with its
// reason's status. A 401 counts against the source's failure budget.
func (h *Handler) denyAuth(w *recorder, r *http.Request, src netip.Addr, rec *access.GatewayRequest, err error) {
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
		h.failures.allow(src, h.cfg.Now()) // the key serve checks
		w.Header().Set("WWW-Authenticate", `Bearer realm="latchkey", error="invalid_token"`)
	}
	h.deny(w, r, rec, status, e.Reason, e.Msg)
}

// deny commits the denial's audit record, then answers it. If the record
// cannot be committed, it answers 503 audit_unavailable instead.
func (h *Handler) deny(w *recorder, r *http.Request, rec *access.GatewayRequest, status int, reason, msg string) {
	rec.Status, rec.Reason = status, reason
	if err := h.cfg.Authority.RecordGatewayRequest(r.Context(), *rec); err != nil {
		h.cfg.Log.Error("gateway: audit append failed: denial not recorded", "reason", reason, "err", err)
		w.Header().Del("WWW-Authenticate")
		status, reason, msg = http.StatusServiceUnavailable, access.ReasonAuditUnavailable, "the audit log cannot be written: request refused"
		rec.Status, rec.Reason = status, reason
	}
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	writeDenialAs(w, w.kube, status, reason, msg)
}

// observe writes the access log record and the metrics of a request.
func (h *Handler) observe(w *recorder, r *http.Request, rec *access.GatewayRequest, took time.Duration) {
	status := w.status
	if status == 0 {
		status = http.StatusOK // nothing written: net/http answers 200
	}
	decision, reason := "allow", rec.Reason
	if reason != "" {
		decision = "deny"
	}
	if m := h.cfg.Metrics; m != nil {
		label := "_other"
		if h.known(rec.Service) {
			label = rec.Service
		}
		m.observe(label, decision, reason, took)
	}
	if l := h.cfg.AccessLog; l != nil {
		l.LogAttrs(r.Context(), slog.LevelInfo, "gateway request",
			slog.String("service", rec.Service), slog.String("method", rec.Method),
			slog.String("path", rec.Path), slog.Int("status", status),
			slog.String("decision", decision), slog.String("reason", reason),
			slog.String("token", rec.TokenID), slog.String("contractor", rec.Contractor),
			slog.String("source", rec.Source), slog.Duration("duration", took),
			slog.Int64("bytes", w.bytes))
	}
}

// recorder notes the status and size of a response. It passes Flush,
// Hijack and the rest through http.ResponseController (Unwrap), which is
// how httputil.ReverseProxy reaches them.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	kube   bool // the request is for a kubernetes service: denials are Status objects
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

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

// credentials returns the scheme (schemeBearer or schemeDPoP) and token of
// the request's single "Authorization: Bearer TOKEN" or "Authorization:
// DPoP TOKEN" header. The scheme is case-insensitive (RFC 9110 11.1).
func credentials(h http.Header) (scheme, text string, ok bool) {
	vs := h["Authorization"]
	if len(vs) != 1 {
		return "", "", false
	}
	scheme, text, ok = strings.Cut(vs[0], " ")
	switch {
	case !ok:
		return "", "", false
	case strings.EqualFold(scheme, schemeBearer):
		scheme = schemeBearer
	case strings.EqualFold(scheme, schemeDPoP):
		scheme = schemeDPoP
	default:
		return "", "", false
	}
	text = strings.Trim(text, " ")
	return scheme, text, text != ""
}

// quote quotes client-controlled text for a message, cut to 128 bytes.
func quote(s string) string {
	if len(s) > 128 {
		s = s[:128] + "..."
	}
	b, _ := json.Marshal(s)
	return string(b)
}
