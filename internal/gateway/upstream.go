package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"

	"latchkey/internal/access"
	"latchkey/internal/scope"
)

// upstream is a service as the gateway forwards to it, loaded once with
// its credential opened and cached for the life of the Handler: services
// are immutable in this version, so the cache is never invalidated.
type upstream struct {
	target *url.URL
	base   string          // target's escaped path without a trailing "/"
	creds  []access.Header // credential headers, names in canonical form
	// private are the hop-private request headers the service names:
	// removed from every request forwarded to it.
	private []string
	// kube is set for a kubernetes service (see kube.go): requests are
	// forwarded with impersonation headers, SPDY upgrades pass, and
	// denials are Kubernetes Status objects.
	kube  bool
	proxy *httputil.ReverseProxy
}

// service returns the cached upstream of service name, loading it on first
// use. An unknown service is an *access.Error with reason not_found; it is
// not cached, so a service added later is found.
func (h *Handler) service(ctx context.Context, name string) (*upstream, error) {
	h.mu.RLock()
	up := h.services[name]
	h.mu.RUnlock()
	if up != nil {
		return up, nil
	}
	if !scope.ValidServiceName(name) {
		return nil, &access.Error{Reason: access.ReasonNotFound, Msg: "no such service"}
	}
	up, err := h.load(ctx, name)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if old := h.services[name]; old != nil {
		return old, nil
	}
	h.services[name] = up
	return up, nil
}

// buffers are the 32 KiB buffers ReverseProxy copies response bodies
// through. Without a pool it allocates one per request, which was most of
// the gateway's allocated bytes under load.
var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// bufferPool is an httputil.BufferPool over buffers.
type bufferPool struct{}

func (bufferPool) Get() []byte  { return *buffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }

// known reports whether service name has been loaded, i.e. exists.
func (h *Handler) known(name string) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.services[name] != nil
}

// load reads a service and opens its credential.
func (h *Handler) load(ctx context.Context, name string) (*upstream, error) {
	svc, err := h.cfg.Authority.Service(ctx, name)
	if err != nil {
		return nil, err
	}
	var creds []access.Header
	transport := h.cfg.Transport
	switch access.KindOf(svc) {
	case access.KindHTTP:
		if creds, err = h.cfg.Authority.Credential(svc); err != nil {
			return nil, err
		}
	case access.KindKubernetes:
		if creds, transport, err = h.kubeTransport(svc); err != nil {
			return nil, err
		}
	default:
		// A postgres service is reached through the PostgreSQL gateway only.
		return nil, &access.Error{Reason: access.ReasonNotFound, Msg: "no such HTTP service"}
	}
	target, err := url.Parse(svc.Upstream)
	if err != nil || target.Opaque != "" {
		return nil, fmt.Errorf("service %q: invalid upstream URL", name)
	}
	up := &upstream{target: target, base: strings.TrimSuffix(target.EscapedPath(), "/"), creds: creds,
		private: svc.PrivateHeaders, kube: access.KindOf(svc) == access.KindKubernetes}
	if strings.HasPrefix(up.base, "//") {
		return nil, fmt.Errorf("service %q: upstream path starts with //", name)
	}
	for i := range up.creds {
		up.creds[i].Name = http.CanonicalHeaderKey(up.creds[i].Name)
	}
	up.proxy = &httputil.ReverseProxy{
		Rewrite:        func(pr *httputil.ProxyRequest) { h.rewrite(up, pr) },
		ModifyResponse: h.scrub(up),
		Transport:      transport,
		ErrorHandler:   h.upstreamError(up),
		BufferPool:     bufferPool{},
		ErrorLog:       slog.NewLogLogger(h.cfg.Log.Handler(), slog.LevelWarn),
	}
	return up, nil
}

// clientIPHeaders are request headers some upstreams take as the
// client's address, or as the URL to route by. A client must not choose
// them: rewrite removes them from every request.
var clientIPHeaders = []string{
	"X-Real-Ip", "True-Client-Ip", "X-Client-Ip", "Cf-Connecting-Ip", "X-Cluster-Client-Ip",
	"Fastly-Client-Ip", "X-Original-Url", "X-Rewrite-Url",
}

// rewrite prepares the outgoing request. Before it runs, ReverseProxy has
// removed the hop-by-hop headers and every Forwarded and X-Forwarded-*
// header the client sent. It then:
//
//   - points the request at the upstream, with the path set so that the
//     request line carries exactly the upstream's base path followed by
//     the escaped path that was checked and authorized, byte for byte
//     (URL.Opaque; Path and RawPath agree with it). The query is passed
//     through exactly as sent (ReverseProxy would drop parameters it
//     cannot parse; scopes do not cover queries, and the upstream should
//     read what the client wrote);
//   - removes the contractor's Authorization and DPoP headers, so neither
//     the token nor its proof reaches the upstream, the service's hop-private headers, and the
//     client-address headers some upstreams trust (clientIPHeaders);
//   - refuses any protocol upgrade but WebSocket (and, to a kubernetes
//     service, SPDY/3.1, which kubectl exec, attach and port-forward
//     use): the Upgrade header of another (h2c, say) is removed, so the
//     upstream answers plain HTTP and no tunnel escapes the scope check;
//   - to a kubernetes service, removes every Impersonate-* and
//     X-Remote-* header the client sent and sets Impersonate-User and
//     Impersonate-Group to the token's contractor (see impersonate);
//   - sets the service's credential headers, replacing any the client sent;
//   - sets X-Forwarded-For, -Host and -Proto afresh from the connection;
//     when the peer is a trusted proxy, X-Forwarded-For keeps the chain
//     the proxies sent, with the peer appended.
//
// The credential is only ever a request header: nothing of it is in the
// URL, so neither a redirect nor an error message can carry it back.
func (h *Handler) rewrite(u *upstream, pr *httputil.ProxyRequest) {
	_, rest := splitService(requestPath(pr.In))
	pr.SetURL(u.target)
	p := u.base + rest
	out := pr.Out.URL
	out.Opaque, out.RawPath = p, p
	out.Path, _ = url.PathUnescape(p) // CheckPath accepted every escape
	out.RawQuery = pr.In.URL.RawQuery
	hd := pr.Out.Header
	hd.Del("Authorization")
	hd.Del("DPoP")
	for _, name := range u.private {
		hd.Del(name)
	}
	for _, name := range clientIPHeaders {
		hd.Del(name)
	}
	if up := hd.Get("Upgrade"); up != "" && !strings.EqualFold(up, "websocket") && !(u.kube && strings.EqualFold(up, spdy)) {
		hd.Del("Upgrade")
		hd.Del("Connection")
	}
	if u.kube {
		impersonate(hd, contractorOf(pr.In.Context()))
	}
	for _, c := range u.creds {
		hd[c.Name] = []string{c.Value}
	}
	if len(h.cfg.TrustedProxies) > 0 && isTrusted(peer(pr.In.RemoteAddr), h.cfg.TrustedProxies) {
		pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
	}
	pr.SetXForwarded()
}

// scrub returns the ModifyResponse of up's proxy: it removes any response
// header that carries one of the service's credential values (an upstream
// that echoes request headers, or puts its key in a redirect), so the
// credential never reaches the contractor through the gateway's headers.
// Bodies are the upstream's own and pass as they are.
func (h *Handler) scrub(up *upstream) func(*http.Response) error {
	return func(resp *http.Response) error {
		for name, vs := range resp.Header {
			for _, v := range vs {
				if up.leaks(v) {
					h.cfg.Log.Warn("gateway: removed a response header that carried the service's credential",
						"service", up.target.Host, "header", name)
					delete(resp.Header, name)
					break
				}
			}
		}
		return nil
	}
}

// minLeak is the shortest credential value (or secret part) that leaks
// looks for: a shorter one would match innocent headers by chance (a
// WebSocket handshake's random Sec-WebSocket-Accept, a Date), and is too
// short to be a secret worth hiding anyway.
const minLeak = 8

// leaks reports whether v contains a credential value of up, or the
// secret part of one ("Bearer SECRET", "Basic SECRET").
func (u *upstream) leaks(v string) bool {
	for _, c := range u.creds {
		if len(c.Value) >= minLeak && strings.Contains(v, c.Value) {
			return true
		}
		if _, secret, ok := strings.Cut(c.Value, " "); ok && len(secret) >= minLeak && strings.Contains(v, secret) {
			return true
		}
	}
	return false
}

// upstreamError returns the ErrorHandler of up's proxy: it answers a
// failed forward with a generic 502 (a Status for a kubernetes service);
// the error (which names the upstream address) goes to the application
// log only.
func (h *Handler) upstreamError(up *upstream) func(http.ResponseWriter, *http.Request, error) {
	return func(w http.ResponseWriter, r *http.Request, err error) {
		level := slog.LevelWarn
		if errors.Is(err, context.Canceled) {
			level = slog.LevelDebug // the client went away
		}
		h.cfg.Log.Log(r.Context(), level, "gateway: upstream request failed", "method", r.Method, "err", err)
		writeDenialAs(w, up.kube, http.StatusBadGateway, ReasonUpstreamUnavailable, "the upstream service is unavailable")
	}
}
