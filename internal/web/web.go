// Package web implements latchkey's web console: server-rendered HTML
// pages (html/template, embedded with embed.FS) under /ui/ on the admin
// listener, for admins signed in with an admin (lka_) token.
//
// Signing in posts an admin token to /ui/login; the console keeps a
// random session id in the latchkey_session cookie (HttpOnly,
// SameSite=Strict, Secure over TLS, Path=/ui/) and, in memory, the
// token's id and scopes, never its text. Sessions are per process. Every
// request re-reads the token record, so revoking or expiring the admin
// token ends its sessions. Every page and action checks the token's own
// admin scopes (admin:RESOURCE:ACTION), exactly as the admin API does;
// every action goes through access.Authority and so is audited, and every
// page read is recorded like an admin API GET. Forms are protected
// against cross-site request forgery by http.CrossOriginProtection and by
// the SameSite=Strict cookie.
package web

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"latchkey/internal/access"
	"latchkey/internal/audit"
	"latchkey/internal/store"
)

//go:embed templates static
var files embed.FS

// Config configures the console.
type Config struct {
	// Authority applies the rules. Required.
	Authority *access.Authority
	// Audit searches the audit log for the audit and overview pages
	// (those parts are absent if nil).
	Audit audit.Searcher
	// AuditLog is the audit log, and Checkpoints signs a checkpoint of it
	// now (force: even if it did not grow), for inclusion proofs on
	// demand (absent if either is nil).
	AuditLog    *audit.Log
	Checkpoints func(ctx context.Context, force bool) ([]byte, error)
	// LatestCheckpoint returns the latest signed checkpoint of AuditLog
	// and when it was signed, nil if none yet, for the audit page (absent
	// if nil).
	LatestCheckpoint func(ctx context.Context) ([]byte, time.Time, error)
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Log is the application log. Default slog.Default().
	Log *slog.Logger
}

// Handler serves the console under /ui/.
type Handler struct {
	cfg      Config
	sessions sessions
	pages    map[string]*template.Template
	h        http.Handler
	verifies verifications      // of the audit log, one at a time
	base     context.Context    // of background work, ended by Close
	stop     context.CancelFunc // ends base
	bg       sync.WaitGroup     // background work
}

// New returns the console's handler, to be mounted at /ui/. Close it to
// stop its background work.
func New(cfg Config) (*Handler, error) {
	if cfg.Authority == nil {
		return nil, errors.New("web: Authority is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	h := &Handler{cfg: cfg}
	h.base, h.stop = context.WithCancel(context.Background())
	if err := h.parse(); err != nil {
		return nil, err
	}
	static, err := fs.Sub(files, "static")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /ui/login", h.loginPage)
	mux.HandleFunc("POST /ui/login", h.login)
	mux.HandleFunc("POST /ui/logout", h.logout)
	mux.Handle("GET /ui/{$}", h.read("", h.overview))
	mux.Handle("GET /ui/contractors", h.read("contractors", h.contractors))
	mux.Handle("POST /ui/contractors", h.write("contractors", h.onboard))
	mux.Handle("GET /ui/contractors/{name}", h.read("contractors", h.contractor))
	mux.Handle("GET /ui/contractors/{name}/offboard", h.view("contractors", "write", h.confirmOffboard))
	mux.Handle("POST /ui/contractors/{name}/offboard", h.write("contractors", h.offboard))
	mux.Handle("POST /ui/contractors/{name}/grants", h.write("grants", h.grant))
	mux.Handle("POST /ui/grants/{id}/revoke", h.write("grants", h.revokeGrant))
	mux.Handle("GET /ui/tokens", h.read("tokens", h.tokens))
	mux.Handle("POST /ui/tokens", h.write("tokens", h.issue))
	mux.Handle("POST /ui/tokens/{id}/revoke", h.write("tokens", h.revoke))
	mux.Handle("POST /ui/tokens/{id}/rotate", h.write("tokens", h.rotate))
	mux.Handle("GET /ui/audit", h.read("audit", h.auditPage))
	mux.Handle("GET /ui/audit/{index}/proof", h.read("audit", h.proof))
	mux.Handle("POST /ui/audit/verify", h.guard("audit", "read", h.verify))
	mux.Handle("GET /ui/reports", h.read("reports", h.reports))
	mux.Handle("POST /ui/reports/revoke", h.write("tokens", h.revokeSelected))
	mux.Handle("GET /ui/requests", h.read("requests", h.requests))
	mux.Handle("POST /ui/requests/{id}/approve", h.write("requests", h.approve))
	mux.Handle("POST /ui/requests/{id}/deny", h.write("requests", h.deny))
	mux.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		h.problem(w, r, nil, http.StatusNotFound, "No such page.")
	})
	h.h = http.NewCrossOriginProtection().Handler(mux)
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.h.ServeHTTP(w, r)
}

// source is the peer address: the console trusts no proxy header.
func source(r *http.Request) netip.Addr {
	ap, _ := netip.ParseAddrPort(r.RemoteAddr)
	return ap.Addr()
}

// user is a signed-in admin making one request.
type user struct {
	id string // session id
	s  *session
	r  *http.Request
}

func (u user) actor() access.Actor {
	return access.Actor{TokenID: u.s.tokenID, Name: u.s.name, Source: source(u.r).String(),
		Scopes: u.s.scopes, ExpiresAt: u.s.tokExpiry, CIDRs: u.s.cidrs}
}

// signedIn returns the request's live session, re-checking that its admin
// token is still valid; an ended session is removed.
func (h *Handler) signedIn(r *http.Request) (user, bool) {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return user{}, false
	}
	now := h.cfg.Now()
	s := h.sessions.get(c.Value, now)
	if s == nil {
		return user{}, false
	}
	tok, err := h.cfg.Authority.Token(r.Context(), s.tokenID)
	if err != nil || !tokenValid(tok, source(r), now) {
		if err != nil {
			h.cfg.Log.Warn("web: session token check failed", "token", s.tokenID, "err", err)
		}
		h.sessions.removeToken(s.tokenID)
		return user{}, false
	}
	return user{c.Value, s, r}, true
}

// tokenValid reports whether an admin token may still act from src at now.
func tokenValid(t store.Token, src netip.Addr, now time.Time) bool {
	if !t.Admin || t.Bound() || !t.RevokedAt.IsZero() || !now.Before(t.ExpiresAt) {
		return false
	}
	if len(t.CIDRs) == 0 {
		return true
	}
	return slices.ContainsFunc(t.CIDRs, func(c string) bool {
		p, err := netip.ParsePrefix(c)
		return err == nil && p.Contains(src.Unmap())
	})
}

type pageFunc func(ctx context.Context, w http.ResponseWriter, u user) error

// read serves a page needing admin:RESOURCE:read ("" for any signed-in
// admin), and records the read in the audit log first.
func (h *Handler) read(resource string, fn pageFunc) http.Handler {
	return h.view(resource, "read", fn)
}

// view serves a page that changes nothing but needs admin:RESOURCE:ACTION
// (a confirmation step needs the scope of its action), and records the
// read in the audit log first.
func (h *Handler) view(resource, action string, fn pageFunc) http.Handler {
	return h.guard(resource, action, func(ctx context.Context, w http.ResponseWriter, u user) error {
		req := access.Request{Method: u.r.Method, Path: u.r.URL.Path, Status: http.StatusOK}
		if err := h.cfg.Authority.RecordRequest(ctx, u.actor(), req); err != nil {
			return err
		}
		return fn(ctx, w, u)
	})
}

// write serves an action needing admin:RESOURCE:write; the operation it
// calls on the Authority records itself.
func (h *Handler) write(resource string, fn pageFunc) http.Handler {
	return h.guard(resource, "write", func(ctx context.Context, w http.ResponseWriter, u user) error {
		u.r.Body = http.MaxBytesReader(w, u.r.Body, maxForm)
		if err := u.r.ParseForm(); err != nil {
			return &access.Error{Reason: access.ReasonInvalid, Msg: "the form could not be read"}
		}
		return fn(ctx, w, u)
	})
}

// maxForm caps a form's body.
const maxForm = 64 << 10

func (h *Handler) guard(resource, action string, fn pageFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := h.signedIn(r)
		if !ok {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
				return
			}
			h.problem(w, r, nil, http.StatusUnauthorized, "Your session has ended: sign in again.")
			return
		}
		if resource != "" && !u.s.can(resource, action) {
			req := access.Request{Method: r.Method, Path: r.URL.Path, Status: http.StatusForbidden, Reason: access.ReasonForbidden}
			if err := h.cfg.Authority.RecordRequest(r.Context(), u.actor(), req); err != nil {
				h.fail(w, r, &u, err)
				return
			}
			h.problem(w, r, &u, http.StatusForbidden, "Your admin token lacks scope admin:"+resource+":"+action+".")
			return
		}
		if err := fn(r.Context(), w, u); err != nil {
			h.fail(w, r, &u, err)
		}
	})
}

// statusOf maps refusal reasons to HTTP statuses; others are 400.
var statusOf = map[string]int{
	access.ReasonNotFound:         http.StatusNotFound,
	access.ReasonConflict:         http.StatusConflict,
	access.ReasonRevoked:          http.StatusConflict,
	access.ReasonForbidden:        http.StatusForbidden,
	access.ReasonScopeNotCovered:  http.StatusForbidden,
	access.ReasonAuditUnavailable: http.StatusServiceUnavailable,
}

// fail shows a refusal's message; an internal error is logged and shown
// without detail.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, u *user, err error) {
	var e *access.Error
	if !errors.As(err, &e) {
		h.cfg.Log.Error("web console internal error", "method", r.Method, "path", r.URL.Path, "err", err)
		h.problem(w, r, u, http.StatusInternalServerError, "Internal error; see the server log.")
		return
	}
	status := statusOf[e.Reason]
	if status == 0 {
		status = http.StatusBadRequest
	}
	h.problem(w, r, u, status, e.Msg)
}

// search searches the audit log once it holds every record acknowledged
// before the call (see audit.Log.Sync).
func (h *Handler) search(ctx context.Context, f audit.Filter) ([]audit.Entry, error) {
	if h.cfg.AuditLog != nil {
		if err := h.cfg.AuditLog.Sync(ctx); err != nil {
			return nil, err
		}
	}
	return h.cfg.Audit.Search(ctx, f)
}
