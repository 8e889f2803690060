package adminapi

import (
	"time"

	"latchkey/internal/access"
	"latchkey/internal/kube"
	"latchkey/internal/store"
)

// Wire types of the admin API. Times are RFC 3339 in UTC; a time that has
// not happened (never used, not revoked) is omitted. No type here carries a
// token secret except IssuedToken, returned once by issue and rotate, and
// none ever carries a service credential value.

// Problem is every error body: Error is a stable reason word, Message one
// line for humans.
type Problem struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// Contractor is an onboarded identity.
type Contractor struct {
	Name      string    `json:"name"`
	Email     string    `json:"email"`
	Company   string    `json:"company,omitempty"`
	Sponsor   string    `json:"sponsor"`
	Until     time.Time `json:"until"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
}

// NewContractor is the body of POST /v1/contractors. Until is RFC 3339 or
// relative (30d).
type NewContractor struct {
	Name    string `json:"name"`
	Email   string `json:"email"`
	Company string `json:"company,omitempty"`
	Sponsor string `json:"sponsor"`
	Until   string `json:"until"`
}

// Offboarded is the reply to POST /v1/contractors/{name}/offboard.
type Offboarded struct {
	Contractor    string `json:"contractor"`
	TokensRevoked int    `json:"tokens_revoked"`
	GrantsRevoked int    `json:"grants_revoked"`
}

// Service is a registered upstream. CredentialHeaders lists only the names
// of the injected headers, never their values.
type Service struct {
	Name              string    `json:"name"`
	Upstream          string    `json:"upstream"`
	CredentialHeaders []string  `json:"credential_headers"`
	PrivateHeaders    []string  `json:"private_headers"`
	CreatedAt         time.Time `json:"created_at"`
	CreatedBy         string    `json:"created_by"`
	// Kind is "http", "postgres" or "kubernetes". A kubernetes service's
	// CredentialHeaders is ["token"] or ["client-certificate"]: how the
	// gateway authenticates to the API server, never the secret.
	Kind string `json:"kind"`
}

// NewService is the body of POST /v1/services.
type NewService struct {
	Name              string          `json:"name"`
	Upstream          string          `json:"upstream"`
	CredentialHeaders []access.Header `json:"credential_headers,omitempty"`
	// PrivateHeaders are request headers the gateway removes from every
	// request it forwards to the service.
	PrivateHeaders []string `json:"private_headers,omitempty"`
	// DatabaseLogins are the read and write logins of a postgres service
	// (upstream postgres://...): sealed like credential headers, never
	// returned. Required for a postgres service, refused for others.
	DatabaseLogins *access.DatabaseLogins `json:"database_logins,omitempty"`
	// Kubernetes registers a Kubernetes API server (upstream its https
	// URL): the CA bundle that verifies it and the gateway's own token or
	// client certificate, sealed, never returned. Refused with any other
	// field but name and upstream.
	Kubernetes *access.KubernetesCredential `json:"kubernetes,omitempty"`
}

// Grant allows a contractor scopes until ExpiresAt.
type Grant struct {
	ID         int64      `json:"id"`
	Contractor string     `json:"contractor"`
	Scopes     []string   `json:"scopes"`
	ExpiresAt  time.Time  `json:"expires_at"`
	State      string     `json:"state"`
	CreatedAt  time.Time  `json:"created_at"`
	CreatedBy  string     `json:"created_by"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	RevokedBy  string     `json:"revoked_by,omitempty"`
}

// NewGrant is the body of POST /v1/grants. Until is optional (default: the
// engagement end), RFC 3339 or relative.
type NewGrant struct {
	Contractor string   `json:"contractor"`
	Scopes     []string `json:"scopes"`
	Until      string   `json:"until,omitempty"`
}

// Token is a token record; it never holds the secret.
type Token struct {
	ID         string     `json:"id"`
	Kind       string     `json:"kind"`
	Contractor string     `json:"contractor,omitempty"`
	Scopes     []string   `json:"scopes"`
	ExpiresAt  time.Time  `json:"expires_at"`
	State      string     `json:"state"`
	CIDRs      []string   `json:"cidrs,omitempty"`
	MaxUses    int64      `json:"max_uses,omitempty"`
	Uses       int64      `json:"uses"`
	Note       string     `json:"note,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	CreatedBy  string     `json:"created_by"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	RevokedBy  string     `json:"revoked_by,omitempty"`
	// RevokedReason is why it was revoked: manual, idle,
	// engagement_ended, leaked, offboarded or parent_revoked.
	RevokedReason string `json:"revoked_reason,omitempty"`
	Parent        string `json:"parent,omitempty"`
	// DerivedFrom is the token its contractor narrowed this one from.
	DerivedFrom string `json:"derived_from,omitempty"`
	// Cnf is the token's proof-of-possession binding, as a confirmation
	// claim (RFC 7800) carries it; absent for a bearer token.
	Cnf *Cnf `json:"cnf,omitempty"`
}

// Cnf is a token's binding: the DPoP key's RFC 7638 thumbprint (jkt, RFC
// 9449) or the client certificate's SHA-256 thumbprint (x5t#S256, RFC 8705).
type Cnf struct {
	JKT string `json:"jkt,omitempty"`
	X5T string `json:"x5t#S256,omitempty"`
}

func toCnf(t store.Token) *Cnf {
	if !t.Bound() {
		return nil
	}
	return &Cnf{JKT: t.CnfJKT, X5T: t.CnfX5T}
}

// NewToken is the body of POST /v1/tokens. TTL is mandatory (e.g. 8h, 30d).
type NewToken struct {
	Contractor string   `json:"contractor,omitempty"`
	Admin      bool     `json:"admin,omitempty"`
	Scopes     []string `json:"scopes"`
	TTL        string   `json:"ttl"`
	CIDRs      []string `json:"cidrs,omitempty"`
	Uses       int64    `json:"uses,omitempty"`
	// Note is free text; on an admin token it names the holder (the
	// approver of access requests). Empty there: the caller's own note;
	// another name needs admin:approvers:write (forbidden otherwise).
	Note string `json:"note,omitempty"`
	// Bind binds the token to a key the contractor holds: "dpop" with JKT
	// (the RFC 7638 thumbprint of the DPoP public key) or "mtls" with X5T
	// (the client certificate's x5t#S256); both base64url, no padding.
	Bind string `json:"bind,omitempty"`
	JKT  string `json:"jkt,omitempty"`
	X5T  string `json:"x5t,omitempty"`
}

// Rotation is the body of POST /v1/tokens/{id}/rotate.
type Rotation struct {
	Grace string `json:"grace,omitempty"`
}

// IssuedToken is returned once by issue and rotate: Token is the secret
// text, shown this one time and never again.
type IssuedToken struct {
	ID         string    `json:"id"`
	Token      string    `json:"token"`
	Kind       string    `json:"kind"`
	Contractor string    `json:"contractor,omitempty"`
	Scopes     []string  `json:"scopes"`
	ExpiresAt  time.Time `json:"expires_at"`
	Parent     string    `json:"parent,omitempty"`
	// DerivedFrom is the caller's token, for a derived token.
	DerivedFrom string `json:"derived_from,omitempty"`
	Cnf         *Cnf   `json:"cnf,omitempty"`
}

// Revoked is the reply to POST /v1/tokens/{id}/revoke and
// POST /v1/grants/{id}/revoke.
type Revoked struct {
	ID      string `json:"id"`
	Revoked bool   `json:"revoked"`
}

// Whoami describes the calling admin token.
type Whoami struct {
	ID        string    `json:"id"`
	Scopes    []string  `json:"scopes"`
	ExpiresAt time.Time `json:"expires_at"`
	Note      string    `json:"note,omitempty"`
}

// ActiveRow is one line of GET /v1/reports/active.
type ActiveRow struct {
	Contractor   string     `json:"contractor"`
	Email        string     `json:"email"`
	Sponsor      string     `json:"sponsor"`
	Until        time.Time  `json:"until"`
	Tokens       int        `json:"tokens"`
	NextExpiry   time.Time  `json:"next_expiry"`
	LatestExpiry time.Time  `json:"latest_expiry"`
	LastUsedAt   *time.Time `json:"last_used_at,omitempty"`
}

// AccessRow is one line of GET /v1/reports/access: Contractor can perform
// Methods on Path of Service through a grant or a token (Source, ID).
type AccessRow struct {
	Contractor string    `json:"contractor"`
	Service    string    `json:"service"`
	Methods    string    `json:"methods"`
	Path       string    `json:"path"`
	Scope      string    `json:"scope"`
	Source     string    `json:"source"`
	ID         string    `json:"id"`
	Until      time.Time `json:"until"`
	// Kubernetes is the scope in Kubernetes terms (namespace, resource,
	// verbs) when Service is a kubernetes service and the scope has a
	// shape that "grant add --k8s" writes (see kube.Describe); else absent.
	Kubernetes *kube.Access `json:"kubernetes,omitempty"`
}

// UnusedScope is a granted scope no token of the contractor used within
// the idle window.
type UnusedScope struct {
	Contractor string `json:"contractor"`
	GrantID    int64  `json:"grant_id"`
	Scope      string `json:"scope"`
}

// UnusedReport is the reply to GET /v1/reports/unused.
type UnusedReport struct {
	Idle   string        `json:"idle"`
	Tokens []UnusedToken `json:"tokens"`
	Scopes []UnusedScope `json:"scopes"`
}

// UnusedToken is a live token no request used within the idle window.
type UnusedToken struct {
	ID         string     `json:"id"`
	Contractor string     `json:"contractor"`
	Scopes     []string   `json:"scopes"`
	ExpiresAt  time.Time  `json:"expires_at"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	Note       string     `json:"note,omitempty"`
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func tokenState(t store.Token, now time.Time) string {
	switch {
	case !t.RevokedAt.IsZero():
		return "revoked"
	case !now.Before(t.ExpiresAt):
		return "expired"
	}
	return "active"
}

func kind(admin bool) string {
	if admin {
		return "admin"
	}
	return "contractor"
}

func toContractor(c store.Contractor) Contractor {
	return Contractor{c.Name, c.Email, c.Company, c.Sponsor, c.Until, c.Disabled, c.CreatedAt, c.CreatedBy}
}

func toGrant(g store.Grant, now time.Time) Grant {
	state := "active"
	switch {
	case !g.RevokedAt.IsZero():
		state = "revoked"
	case !now.Before(g.ExpiresAt):
		state = "expired"
	}
	return Grant{g.ID, g.Contractor, g.Scopes, g.ExpiresAt, state, g.CreatedAt, g.CreatedBy, optTime(g.RevokedAt), g.RevokedBy}
}

func toToken(t store.Token, now time.Time) Token {
	return Token{
		ID: t.ID, Kind: kind(t.Admin), Contractor: t.Contractor, Scopes: t.Scopes, ExpiresAt: t.ExpiresAt,
		State: tokenState(t, now), CIDRs: t.CIDRs, MaxUses: t.MaxUses, Uses: t.Uses, Note: t.Note,
		CreatedAt: t.CreatedAt, CreatedBy: t.CreatedBy, LastUsedAt: optTime(t.LastUsedAt),
		RevokedAt: optTime(t.RevokedAt), RevokedBy: t.RevokedBy, RevokedReason: t.RevokedReason, Parent: t.Parent,
		DerivedFrom: t.DerivedFrom, Cnf: toCnf(t),
	}
}

func toIssued(iss access.Issued) IssuedToken {
	t := iss.Token
	return IssuedToken{t.ID, iss.Text, kind(t.Admin), t.Contractor, t.Scopes, t.ExpiresAt, t.Parent, t.DerivedFrom, toCnf(t)}
}
