package access

import (
	"context"
	"encoding/json"
	"fmt"
	"net/mail"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"latchkey/internal/audit"
	"latchkey/internal/scope"
	"latchkey/internal/store"
)

// Actor is who performs an operation: the admin token's id, scopes,
// expiry and source networks. What an actor creates can never be more
// than it holds: no broader scopes, no later expiry, no wider sources.
type Actor struct {
	TokenID   string
	Name      string // who is behind the token, for the audit log
	Source    string // client address, for the audit log
	Scopes    scope.Set
	ExpiresAt time.Time // zero: no limit (the init bootstrap only)
	CIDRs     []string  // empty: any source
}

// Header is one credential header the gateway injects into upstream requests.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Limits on free-text fields.
const (
	maxText    = 256
	maxHeaders = 16
)

// NewContractor is an onboarding request.
type NewContractor struct {
	Name    string
	Email   string
	Company string
	Sponsor string
	Until   time.Time
}

// AddContractor onboards a contractor.
func (a *Authority) AddContractor(ctx context.Context, by Actor, nc NewContractor) (c store.Contractor, err error) {
	rec := a.event(by, "contractor.add")
	rec.Contractor = nc.Name
	err = a.act(ctx, rec, func(r *audit.Record) error {
		c, err = a.newContractor(ctx, by, nc)
		r.Reason = "sponsor " + nc.Sponsor + ", until " + c.Until.Format(time.RFC3339)
		return err
	}, func() error {
		return storeErr(a.cfg.Store.CreateContractor(ctx, c), fmt.Sprintf("contractor %q", nc.Name))
	})
	return c, err
}

// newContractor validates an onboarding request without writing.
func (a *Authority) newContractor(ctx context.Context, by Actor, nc NewContractor) (store.Contractor, error) {
	now := a.now()
	if err := validName("contractor", nc.Name); err != nil {
		return store.Contractor{}, err
	}
	addr, err := mail.ParseAddress(nc.Email)
	if err != nil || addr.Address != nc.Email || len(nc.Email) > maxText {
		return store.Contractor{}, refuse(ReasonInvalid, "invalid email %q: want a bare address like name@example.com", nc.Email)
	}
	if err := validText("sponsor", nc.Sponsor, true); err != nil {
		return store.Contractor{}, err
	}
	if err := validText("company", nc.Company, false); err != nil {
		return store.Contractor{}, err
	}
	if !nc.Until.After(now) {
		return store.Contractor{}, refuse(ReasonInvalid, "engagement end %s is not in the future", nc.Until.UTC().Format(time.RFC3339))
	}
	if _, err := a.cfg.Store.Contractor(ctx, nc.Name); err == nil {
		return store.Contractor{}, refuse(ReasonConflict, "contractor %q already exists", nc.Name)
	}
	return store.Contractor{
		Name: nc.Name, Email: nc.Email, Company: nc.Company, Sponsor: nc.Sponsor,
		Until: nc.Until.UTC().Truncate(time.Millisecond), CreatedAt: now, CreatedBy: by.TokenID,
	}, nil
}

// Contractor returns one contractor.
func (a *Authority) Contractor(ctx context.Context, name string) (store.Contractor, error) {
	c, err := a.cfg.Store.Contractor(ctx, name)
	return c, storeErr(err, fmt.Sprintf("contractor %q", name))
}

// Contractors lists all contractors.
func (a *Authority) Contractors(ctx context.Context) ([]store.Contractor, error) {
	return a.cfg.Store.Contractors(ctx)
}

// Offboard revokes every token and grant of a contractor and disables it,
// in one transaction.
func (a *Authority) Offboard(ctx context.Context, by Actor, name string) (res store.OffboardResult, err error) {
	rec := a.event(by, "contractor.offboard")
	rec.Contractor = name
	err = a.act(ctx, rec, func(*audit.Record) error {
		_, err := a.cfg.Store.Contractor(ctx, name)
		return storeErr(err, fmt.Sprintf("contractor %q", name))
	}, func() error {
		res, err = a.cfg.Store.Offboard(ctx, name, by.TokenID, a.now())
		return storeErr(err, fmt.Sprintf("contractor %q", name))
	})
	if err != nil {
		return res, err
	}
	a.cache.dropContractor(name)
	// Tell other caches about every token of the contractor, not only the
	// ones this process had cached. No token can be added after the
	// contractor is disabled, so this list is complete.
	toks, err := a.cfg.Store.Tokens(ctx, store.TokenFilter{Contractor: name})
	if err != nil {
		a.cfg.Log.Error("offboard: cannot list tokens to invalidate other caches", "contractor", name, "err", err)
		return res, nil
	}
	for _, t := range toks {
		a.invalidate(t.ID)
	}
	return res, nil
}

// AddService registers an upstream and seals its credential headers.
// private names request headers the gateway removes from every request it
// forwards to the service (hop-private: say, a Cookie or an internal
// identity header the upstream would otherwise trust).
func (a *Authority) AddService(ctx context.Context, by Actor, name, upstream string, headers []Header, private ...string) (svc store.Service, err error) {
	rec := a.event(by, "service.add")
	rec.Service = name
	err = a.act(ctx, rec, func(r *audit.Record) error {
		svc, err = a.newService(ctx, by, name, upstream, headers, private)
		r.Reason = fmt.Sprintf("%d credential header(s)", len(headers))
		if len(svc.PrivateHeaders) > 0 {
			r.Reason += "; private headers " + strings.Join(svc.PrivateHeaders, ", ")
		}
		return err
	}, func() error {
		return storeErr(a.cfg.Store.CreateService(ctx, svc), fmt.Sprintf("service %q", name))
	})
	return svc, err
}

// newService validates a service and seals its credential, without writing.
func (a *Authority) newService(ctx context.Context, by Actor, name, upstream string, headers []Header, private []string) (store.Service, error) {
	if !scope.ValidServiceName(name) {
		return store.Service{}, refuse(ReasonInvalid, "invalid service name %q: want lowercase letters, digits and '-', starting with a letter (and not \"admin\")", name)
	}
	if err := validUpstream(upstream); err != nil {
		return store.Service{}, err
	}
	if err := validHeaders(headers); err != nil {
		return store.Service{}, err
	}
	private, err := privateHeaders(private)
	if err != nil {
		return store.Service{}, err
	}
	if _, err := a.cfg.Store.Service(ctx, name); err == nil {
		return store.Service{}, refuse(ReasonConflict, "service %q already exists", name)
	}
	plain, err := json.Marshal(headers)
	if err != nil {
		return store.Service{}, err
	}
	sealed, err := a.cfg.Box.Seal(plain, []byte(name))
	if err != nil {
		return store.Service{}, err
	}
	return store.Service{Name: name, Upstream: upstream, SealedCredential: sealed, PrivateHeaders: private,
		CreatedAt: a.now(), CreatedBy: by.TokenID}, nil
}

// privateHeaders checks hop-private header names and returns them in
// canonical form, sorted, without duplicates.
func privateHeaders(names []string) ([]string, error) {
	if len(names) > maxHeaders {
		return nil, refuse(ReasonInvalid, "too many private headers (max %d)", maxHeaders)
	}
	var out []string
	for _, n := range names {
		if n == "" || !isToken(n) || len(n) > maxText {
			return nil, refuse(ReasonInvalid, "invalid private header name %q", n)
		}
		out = append(out, textproto.CanonicalMIMEHeaderKey(n))
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Service returns one service.
func (a *Authority) Service(ctx context.Context, name string) (store.Service, error) {
	s, err := a.cfg.Store.Service(ctx, name)
	return s, storeErr(err, fmt.Sprintf("service %q", name))
}

// Services lists all services.
func (a *Authority) Services(ctx context.Context) ([]store.Service, error) {
	return a.cfg.Store.Services(ctx)
}

// Credential opens a service's sealed credential headers. Only the gateway
// may call it; nothing it returns is ever shown to a client.
func (a *Authority) Credential(s store.Service) ([]Header, error) {
	if KindOf(s) != KindHTTP {
		return nil, fmt.Errorf("service %q is not an HTTP service", s.Name)
	}
	plain, err := a.cfg.Box.Open(s.SealedCredential, []byte(s.Name))
	if err != nil {
		return nil, fmt.Errorf("failed to open credential of service %q: %w", s.Name, err)
	}
	var hs []Header
	if err := json.Unmarshal(plain, &hs); err != nil {
		return nil, fmt.Errorf("failed to decode credential of service %q: %w", s.Name, err)
	}
	return hs, nil
}

// CredentialNames returns the names (never the values) of a service's
// injected headers; for a postgres service, "read:ROLE" and "write:ROLE"
// (role names are not secret; passwords never appear); for a kubernetes
// service, "token" or "client-certificate".
func (a *Authority) CredentialNames(s store.Service) ([]string, error) {
	if KindOf(s) == KindKubernetes {
		c, err := a.KubernetesCredential(s)
		if err != nil {
			return nil, err
		}
		return []string{kubernetesAuth(c)}, nil
	}
	if ServiceKind(s.Upstream) == KindPostgres {
		l, err := a.DatabaseCredential(s)
		if err != nil {
			return nil, err
		}
		return []string{"read:" + l.Read.User, "write:" + l.Write.User}, nil
	}
	hs, err := a.Credential(s)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(hs))
	for i, h := range hs {
		names[i] = h.Name
	}
	return names, nil
}

func validName(kind, name string) error {
	if !scope.ValidServiceName(name) {
		return refuse(ReasonInvalid, "invalid %s name %q: want lowercase letters, digits and '-', starting with a letter", kind, name)
	}
	return nil
}

func validText(field, v string, required bool) error {
	switch {
	case required && strings.TrimSpace(v) == "":
		return refuse(ReasonInvalid, "%s is required", field)
	case len(v) > maxText:
		return refuse(ReasonInvalid, "%s is longer than %d bytes", field, maxText)
	case strings.ContainsFunc(v, unsafeRune):
		return refuse(ReasonInvalid, "%s contains control or bidirectional-override characters", field)
	}
	return nil
}

// validUpstream checks an upstream URL. Its messages never echo the URL:
// a query or userinfo may hold a secret.
func validUpstream(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || len(raw) > 2048:
		return refuse(ReasonInvalid, "invalid upstream URL: want an absolute http or https URL")
	case u.User != nil:
		return refuse(ReasonInvalid, "invalid upstream URL: credentials in the URL are not allowed; use --credential-header")
	case ServiceKind(raw) == KindPostgres:
		return refuse(ReasonInvalid, "invalid upstream URL: a postgres service needs its read and write logins (service add --read-user ... --write-user ...)")
	case u.Scheme != "http" && u.Scheme != "https":
		return refuse(ReasonInvalid, "invalid upstream URL: scheme must be http or https")
	case u.Host == "":
		return refuse(ReasonInvalid, "invalid upstream URL: no host")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return refuse(ReasonInvalid, "invalid upstream URL: no query or fragment allowed (credentials belong in --credential-header)")
	}
	return nil
}

// unsafeRune reports control characters (C0, DEL, C1) and the
// bidirectional overrides and isolates that can disguise text on a terminal.
func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 || r == 0x200e || r == 0x200f
}

func validHeaders(hs []Header) error {
	if len(hs) > maxHeaders {
		return refuse(ReasonInvalid, "too many credential headers (max %d)", maxHeaders)
	}
	for _, h := range hs {
		if h.Name == "" || !isToken(h.Name) || len(h.Name) > maxText {
			return refuse(ReasonInvalid, "invalid credential header name %q", h.Name)
		}
		if len(h.Value) > 8192 || strings.ContainsAny(h.Value, "\r\n\x00") || h.Value == "" {
			// The value is a secret: never echo it.
			return refuse(ReasonInvalid, "invalid value for credential header %q: empty, too long or has control characters", h.Name)
		}
	}
	return nil
}

// isToken reports whether s is an RFC 9110 token (a valid header name).
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
		if !ok {
			return false
		}
	}
	return true
}
