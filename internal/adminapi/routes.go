package adminapi

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"latchkey/internal/access"
	"latchkey/internal/kube"
	"latchkey/internal/scope"
	"latchkey/internal/store"
	"latchkey/internal/timespec"
)

// route is one endpoint: its pattern, the admin scope it needs
// (admin:Resource:Action; Resource "" means any valid admin token, and
// Resource selfService an endpoint for contractor tokens only, whose
// handler checks what the caller may do), the OpenAPI description, and
// the handler.
type route struct {
	Method, Path     string
	Resource, Action string
	Summary          string
	Body, Reply      any // zero values of the wire types, for the OpenAPI document
	Query            []string
	Status           int
	handle           handler
}

// selfService is the Resource of routes that contractors call with their
// own token (access requests, narrowing); admin tokens are refused there.
const selfService = "self"

// streamer is a reply that writes itself (a stream), returned by a handler
// in place of a value to encode.
type streamer func(w http.ResponseWriter)

func (s *Server) routes() []route {
	rs := append(append(s.coreRoutes(), s.requestRoutes()...), s.policyRoutes()...)
	if s.cfg.Audit != nil {
		rs = append(rs, s.auditRoutes()...)
	}
	if s.cfg.Webhooks != nil {
		rs = append(rs, s.webhookRoutes()...)
	}
	return rs
}

func (s *Server) coreRoutes() []route {
	return []route{
		{"GET", "/v1/whoami", "", "", "Describe the calling admin token", nil, Whoami{}, nil, 200, s.whoami},
		{"POST", "/v1/contractors", "contractors", "write", "Onboard a contractor", NewContractor{}, Contractor{}, nil, 201, s.addContractor},
		{"GET", "/v1/contractors", "contractors", "read", "List contractors", nil, []Contractor{}, nil, 200, s.listContractors},
		{"GET", "/v1/contractors/{name}", "contractors", "read", "Show a contractor", nil, Contractor{}, nil, 200, s.getContractor},
		{"POST", "/v1/contractors/{name}/offboard", "contractors", "write", "Revoke every token and grant of a contractor and disable it, at once", nil, Offboarded{}, nil, 200, s.offboard},
		{"POST", "/v1/services", "services", "write", "Register an upstream service", NewService{}, Service{}, nil, 201, s.addService},
		{"GET", "/v1/services", "services", "read", "List services", nil, []Service{}, nil, 200, s.listServices},
		{"GET", "/v1/services/{name}", "services", "read", "Show a service", nil, Service{}, nil, 200, s.getService},
		{"POST", "/v1/grants", "grants", "write", "Grant scopes to a contractor", NewGrant{}, Grant{}, nil, 201, s.addGrant},
		{"GET", "/v1/grants", "grants", "read", "List grants", nil, []Grant{}, []string{"contractor", "live"}, 200, s.listGrants},
		{"POST", "/v1/grants/{id}/revoke", "grants", "write", "Revoke a grant", nil, Revoked{}, nil, 200, s.revokeGrant},
		{"POST", "/v1/tokens", "tokens", "write", "Issue a token (its text is returned once)", NewToken{}, IssuedToken{}, nil, 201, s.issue},
		{"GET", "/v1/tokens", "tokens", "read", "List tokens", nil, []Token{}, []string{"contractor", "active"}, 200, s.listTokens},
		{"GET", "/v1/tokens/{id}", "tokens", "read", "Show a token", nil, Token{}, nil, 200, s.getToken},
		{"POST", "/v1/tokens/{id}/revoke", "tokens", "write", "Revoke a token", nil, Revoked{}, nil, 200, s.revoke},
		{"POST", "/v1/tokens/leaked", "tokens", "write", "Revoke a token whose text was found in the wild, and everything derived from it, and notify its sponsor", LeakedToken{}, LeakOutcome{}, nil, 200, s.reportLeak},
		{"POST", "/v1/self/tokens", selfService, "derive", "Derive a narrower token from the calling contractor token (its text is returned once)", NewDerived{}, IssuedToken{}, nil, 201, s.derive},
		{"POST", "/v1/tokens/{id}/rotate", "tokens", "write", "Issue a successor with the same scopes; the old token ends after the grace", Rotation{}, IssuedToken{}, nil, 201, s.rotate},
		{"GET", "/v1/reports/active", "reports", "read", "Who holds live tokens, and until when", nil, []ActiveRow{}, nil, 200, s.reportActive},
		{"GET", "/v1/reports/access", "reports", "read", "What each contractor can touch, per service and operation", nil, []AccessRow{}, []string{"contractor"}, 200, s.reportAccess},
		{"GET", "/v1/reports/unused", "reports", "read", "Live tokens and granted scopes unused for the idle window", nil, UnusedReport{}, []string{"idle"}, 200, s.reportUnused},
	}
}

func (s *Server) now() time.Time { return s.cfg.Now().UTC() }

func invalid(format string, args ...any) error {
	return &access.Error{Reason: access.ReasonInvalid, Msg: fmt.Sprintf(format, args...)}
}

func (s *Server) whoami(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	return 200, Whoami{c.tok.ID, c.tok.Scopes, c.tok.ExpiresAt, c.tok.Note}, nil
}

func (s *Server) addContractor(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	var in NewContractor
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	until, err := s.parseTime("until", in.Until, true)
	if err != nil {
		return 0, nil, err
	}
	ct, err := s.cfg.Authority.AddContractor(ctx, c.actor(), access.NewContractor{
		Name: in.Name, Email: in.Email, Company: in.Company, Sponsor: in.Sponsor, Until: until,
	})
	return 201, toContractor(ct), err
}

func (s *Server) listContractors(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	cs, err := s.cfg.Authority.Contractors(ctx)
	out := make([]Contractor, 0, len(cs))
	for _, ct := range cs {
		out = append(out, toContractor(ct))
	}
	return 200, out, err
}

func (s *Server) getContractor(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	ct, err := s.cfg.Authority.Contractor(ctx, r.PathValue("name"))
	return 200, toContractor(ct), err
}

func (s *Server) offboard(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	name := r.PathValue("name")
	res, err := s.cfg.Authority.Offboard(ctx, c.actor(), name)
	return 200, Offboarded{name, res.TokensRevoked, res.GrantsRevoked}, err
}

func (s *Server) addService(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	var in NewService
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	if in.Kubernetes != nil {
		return s.addKubernetesService(ctx, c, in)
	}
	if in.DatabaseLogins != nil || access.ServiceKind(in.Upstream) == access.KindPostgres {
		return s.addDatabaseService(ctx, c, in)
	}
	svc, err := s.cfg.Authority.AddService(ctx, c.actor(), in.Name, in.Upstream, in.CredentialHeaders, in.PrivateHeaders...)
	if err != nil {
		return 0, nil, err
	}
	names := make([]string, len(in.CredentialHeaders))
	for i, h := range in.CredentialHeaders {
		names[i] = h.Name
	}
	return 201, Service{svc.Name, svc.Upstream, names, nonNil(svc.PrivateHeaders), svc.CreatedAt, svc.CreatedBy, access.KindOf(svc)}, nil
}

// addKubernetesService registers a Kubernetes API server (see
// NewService.Kubernetes).
func (s *Server) addKubernetesService(ctx context.Context, c caller, in NewService) (int, any, error) {
	if len(in.CredentialHeaders) > 0 || len(in.PrivateHeaders) > 0 || in.DatabaseLogins != nil {
		return 0, nil, &access.Error{Reason: access.ReasonInvalid, Msg: "a kubernetes service takes kubernetes (ca and token or client certificate) only"}
	}
	svc, err := s.cfg.Authority.AddKubernetesService(ctx, c.actor(), in.Name, in.Upstream, *in.Kubernetes)
	if err != nil {
		return 0, nil, err
	}
	o, err := s.toService(svc)
	return 201, o, err
}

// addDatabaseService registers a postgres service (see NewService.DatabaseLogins).
func (s *Server) addDatabaseService(ctx context.Context, c caller, in NewService) (int, any, error) {
	if len(in.CredentialHeaders) > 0 || len(in.PrivateHeaders) > 0 {
		return 0, nil, &access.Error{Reason: access.ReasonInvalid, Msg: "a postgres service takes database_logins, not credential or private headers"}
	}
	if in.DatabaseLogins == nil {
		return 0, nil, &access.Error{Reason: access.ReasonInvalid, Msg: "a postgres service needs database_logins (read and write)"}
	}
	svc, err := s.cfg.Authority.AddDatabaseService(ctx, c.actor(), in.Name, in.Upstream, *in.DatabaseLogins)
	if err != nil {
		return 0, nil, err
	}
	o, err := s.toService(svc)
	return 201, o, err
}

// nonNil returns l, or an empty list for nil (JSON [] rather than null).
func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func (s *Server) toService(svc store.Service) (Service, error) {
	names, err := s.cfg.Authority.CredentialNames(svc)
	return Service{svc.Name, svc.Upstream, nonNil(names), nonNil(svc.PrivateHeaders), svc.CreatedAt, svc.CreatedBy, access.KindOf(svc)}, err
}

func (s *Server) listServices(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	svcs, err := s.cfg.Authority.Services(ctx)
	if err != nil {
		return 0, nil, err
	}
	out := make([]Service, 0, len(svcs))
	for _, svc := range svcs {
		o, err := s.toService(svc)
		if err != nil {
			return 0, nil, err
		}
		out = append(out, o)
	}
	return 200, out, nil
}

func (s *Server) getService(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	svc, err := s.cfg.Authority.Service(ctx, r.PathValue("name"))
	if err != nil {
		return 0, nil, err
	}
	o, err := s.toService(svc)
	return 200, o, err
}

func (s *Server) addGrant(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	var in NewGrant
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	until, err := s.parseTime("until", in.Until, false)
	if err != nil {
		return 0, nil, err
	}
	g, err := s.cfg.Authority.AddGrant(ctx, c.actor(), in.Contractor, in.Scopes, until)
	return 201, toGrant(g, s.now()), err
}

func (s *Server) listGrants(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	live, err := boolParam(r, "live")
	if err != nil {
		return 0, nil, err
	}
	gs, err := s.cfg.Authority.Grants(ctx, r.URL.Query().Get("contractor"), live)
	now := s.now()
	out := make([]Grant, 0, len(gs))
	for _, g := range gs {
		out = append(out, toGrant(g, now))
	}
	return 200, out, err
}

func (s *Server) revokeGrant(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	raw := r.PathValue("id")
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		return 0, nil, invalid("invalid grant id %q", raw)
	}
	return 200, Revoked{raw, true}, s.cfg.Authority.RevokeGrant(ctx, c.actor(), id)
}

// optionalTTL parses a request's optional ttl field: zero when absent
// (the policy's default applies, or ttl_missing).
func optionalTTL(raw string) (time.Duration, error) {
	if raw == "" {
		return 0, nil
	}
	d, err := timespec.ParseDuration(raw)
	if err != nil {
		return 0, invalid("invalid ttl: %v", err)
	}
	return d, nil
}

// thumbprint returns the thumbprint that goes with a new token's binding:
// jkt for dpop, x5t for mtls, and neither field for the other binding.
func thumbprint(in NewToken) (string, error) {
	switch {
	case in.JKT != "" && in.X5T != "":
		return "", invalid("give jkt (bind dpop) or x5t (bind mtls), not both")
	case in.JKT != "" && in.Bind != access.BindDPoP:
		return "", invalid("jkt is the thumbprint of a DPoP key: it needs bind dpop")
	case in.X5T != "" && in.Bind != access.BindMTLS:
		return "", invalid("x5t is the thumbprint of a client certificate: it needs bind mtls")
	}
	return in.JKT + in.X5T, nil
}

func (s *Server) issue(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	var in NewToken
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	ttl, err := optionalTTL(in.TTL)
	if err != nil {
		return 0, nil, err
	}
	thumb, err := thumbprint(in)
	if err != nil {
		return 0, nil, err
	}
	iss, err := s.cfg.Authority.Issue(ctx, c.actor(), access.IssueRequest{
		Contractor: in.Contractor, Admin: in.Admin, Scopes: in.Scopes, TTL: ttl,
		CIDRs: in.CIDRs, MaxUses: in.Uses, Note: in.Note, Bind: in.Bind, Thumbprint: thumb,
	})
	return 201, toIssued(iss), err
}

func (s *Server) listTokens(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	active, err := boolParam(r, "active")
	if err != nil {
		return 0, nil, err
	}
	ts, err := s.cfg.Authority.Tokens(ctx, r.URL.Query().Get("contractor"), active)
	now := s.now()
	out := make([]Token, 0, len(ts))
	for _, t := range ts {
		out = append(out, toToken(t, now))
	}
	return 200, out, err
}

func (s *Server) getToken(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	t, err := s.cfg.Authority.Token(ctx, r.PathValue("id"))
	return 200, toToken(t, s.now()), err
}

func (s *Server) revoke(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	id := r.PathValue("id")
	return 200, Revoked{id, true}, s.cfg.Authority.Revoke(ctx, c.actor(), id)
}

func (s *Server) rotate(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	var in Rotation
	if r.ContentLength != 0 {
		if err := decode(r, &in); err != nil {
			return 0, nil, err
		}
	}
	var grace time.Duration
	if in.Grace != "" {
		d, err := timespec.ParseDuration(in.Grace)
		if err != nil {
			return 0, nil, invalid("invalid grace: %v", err)
		}
		grace = d
	}
	iss, err := s.cfg.Authority.Rotate(ctx, c.actor(), r.PathValue("id"), grace)
	return 201, toIssued(iss), err
}

func (s *Server) reportActive(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	rows, err := s.cfg.Authority.ActiveReport(ctx)
	out := make([]ActiveRow, 0, len(rows))
	for _, a := range rows {
		out = append(out, ActiveRow{a.Contractor, a.Email, a.Sponsor, a.Until, a.Tokens, a.NextExpiry, a.LatestExpiry, optTime(a.LastUsedAt)})
	}
	return 200, out, err
}

func (s *Server) reportAccess(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	rows, err := s.cfg.Authority.AccessReport(ctx, r.URL.Query().Get("contractor"))
	if err != nil {
		return 0, nil, err
	}
	kubernetes, err := s.kubernetesServices(ctx)
	if err != nil {
		return 0, nil, err
	}
	out := make([]AccessRow, 0, len(rows))
	parsed := map[string]AccessRow{} // few distinct scopes among many rows: split each once
	for _, a := range rows {
		p, ok := parsed[a.Scope]
		if !ok {
			sc, err := scope.Parse(a.Scope)
			if err != nil {
				return 0, nil, fmt.Errorf("stored scope %q: %w", a.Scope, err)
			}
			p = AccessRow{Service: sc.Service(), Methods: sc.Methods().String(), Path: sc.Path()}
			if k, ok := kube.Describe(sc); ok && kubernetes[sc.Service()] {
				p.Kubernetes = &k
			}
			parsed[a.Scope] = p
		}
		out = append(out, AccessRow{a.Contractor, p.Service, p.Methods, p.Path, a.Scope, a.Source, a.ID, a.Until, p.Kubernetes})
	}
	return 200, out, nil
}

// kubernetesServices returns the set of the kubernetes services' names.
func (s *Server) kubernetesServices(ctx context.Context) (map[string]bool, error) {
	svcs, err := s.cfg.Authority.Services(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, svc := range svcs {
		if access.KindOf(svc) == access.KindKubernetes {
			out[svc.Name] = true
		}
	}
	return out, nil
}

func (s *Server) reportUnused(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	raw := r.URL.Query().Get("idle")
	idle, err := timespec.ParseDuration(raw)
	if err != nil {
		return 0, nil, invalid("invalid idle: %v", err)
	}
	toks, scopes, err := s.cfg.Authority.Unused(ctx, idle)
	if err != nil {
		return 0, nil, err
	}
	out := UnusedReport{Idle: timespec.Format(idle), Tokens: make([]UnusedToken, 0, len(toks)), Scopes: make([]UnusedScope, 0, len(scopes))}
	for _, t := range toks {
		out.Tokens = append(out.Tokens, UnusedToken{t.ID, t.Contractor, t.Scopes, t.ExpiresAt, t.CreatedAt, optTime(t.LastUsedAt), t.Note})
	}
	for _, u := range scopes {
		out.Scopes = append(out.Scopes, UnusedScope{u.Contractor, u.GrantID, u.Scope})
	}
	return 200, out, nil
}

func (s *Server) parseTime(field, raw string, required bool) (time.Time, error) {
	if raw == "" {
		if required {
			return time.Time{}, invalid("%s is required", field)
		}
		return time.Time{}, nil
	}
	t, err := timespec.ParseTime(raw, s.now())
	if err != nil {
		return time.Time{}, invalid("invalid %s: %v", field, err)
	}
	return t, nil
}

func boolParam(r *http.Request, name string) (bool, error) {
	switch v := r.URL.Query().Get(name); v {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	default:
		return false, invalid("invalid %s=%q: want true or false", name, v)
	}
}
