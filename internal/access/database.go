package access

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"latchkey/internal/audit"
	"latchkey/internal/scope"
	"latchkey/internal/store"
)

// Service kinds, derived from the upstream URL's scheme (see ServiceKind):
// no column of the store holds them.
const (
	KindHTTP     = "http"     // http:// and https:// upstreams, served by the HTTP gateway
	KindPostgres = "postgres" // postgres:// and postgresql:// upstreams, served by the PostgreSQL gateway
)

// ServiceKind returns the kind of a service with upstream URL upstream:
// KindPostgres for the postgres and postgresql schemes (any case),
// KindHTTP otherwise.
func ServiceKind(upstream string) string {
	scheme, _, _ := strings.Cut(upstream, "://")
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql":
		return KindPostgres
	}
	return KindHTTP
}

// DatabaseLogin is one upstream PostgreSQL login of a service.
type DatabaseLogin struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// DatabaseLogins are the two logins of a postgres service: Read must hold
// only read privileges in PostgreSQL (read-only is enforced by PostgreSQL
// itself, never by the gateway), Write the privileges a write scope gives.
type DatabaseLogins struct {
	Read  DatabaseLogin `json:"read"`
	Write DatabaseLogin `json:"write"`
}

// sealedLogins is the sealed credential of a postgres service: the JSON
// object {"kind":"postgres","read":{"user":U,"password":P},"write":{...}},
// sealed with the service name as associated data, like the credential
// headers of an HTTP service (a JSON array).
type sealedLogins struct {
	Kind string `json:"kind"`
	DatabaseLogins
}

// Limits on a database login.
const (
	maxRoleName = 63 // NAMEDATALEN - 1
	maxPassword = 1024
)

// AddDatabaseService registers a postgres service: upstream is
// postgres://HOST[:PORT][?sslmode=MODE] (no user, password or database: the
// client names the database, the logins are sealed) and logins are its two
// upstream logins. Audited as service.add, like AddService.
func (a *Authority) AddDatabaseService(ctx context.Context, by Actor, name, upstream string, logins DatabaseLogins) (svc store.Service, err error) {
	rec := a.event(by, "service.add")
	rec.Service = name
	err = a.act(ctx, rec, func(r *audit.Record) error {
		svc, err = a.newDatabaseService(ctx, by, name, upstream, logins)
		r.Reason = "postgres; read role " + logins.Read.User + ", write role " + logins.Write.User
		return err
	}, func() error {
		return storeErr(a.cfg.Store.CreateService(ctx, svc), fmt.Sprintf("service %q", name))
	})
	return svc, err
}

func (a *Authority) newDatabaseService(ctx context.Context, by Actor, name, upstream string, logins DatabaseLogins) (store.Service, error) {
	if !scope.ValidServiceName(name) {
		return store.Service{}, refuse(ReasonInvalid, "invalid service name %q: want lowercase letters, digits and '-', starting with a letter (and not \"admin\")", name)
	}
	if err := ValidDatabaseUpstream(upstream); err != nil {
		return store.Service{}, err
	}
	for _, l := range []struct {
		what  string
		login DatabaseLogin
	}{{"read", logins.Read}, {"write", logins.Write}} {
		if err := validLogin(l.what, l.login); err != nil {
			return store.Service{}, err
		}
	}
	if _, err := a.cfg.Store.Service(ctx, name); err == nil {
		return store.Service{}, refuse(ReasonConflict, "service %q already exists", name)
	}
	plain, err := json.Marshal(sealedLogins{Kind: KindPostgres, DatabaseLogins: logins})
	if err != nil {
		return store.Service{}, err
	}
	sealed, err := a.cfg.Box.Seal(plain, []byte(name))
	if err != nil {
		return store.Service{}, err
	}
	return store.Service{Name: name, Upstream: upstream, SealedCredential: sealed,
		CreatedAt: a.now(), CreatedBy: by.TokenID}, nil
}

// validLogin checks one login. Its messages never echo the password.
func validLogin(what string, l DatabaseLogin) error {
	switch {
	case l.User == "" || len(l.User) > maxRoleName || strings.ContainsFunc(l.User, unsafeRune) || strings.ContainsRune(l.User, 0):
		return refuse(ReasonInvalid, "invalid %s user: want 1 to %d bytes without control characters", what, maxRoleName)
	case l.Password == "" || len(l.Password) > maxPassword || strings.ContainsRune(l.Password, 0):
		return refuse(ReasonInvalid, "invalid %s password: empty, longer than %d bytes, or has a NUL", what, maxPassword)
	}
	return nil
}

// allowedPostgresQuery are the query parameters a postgres upstream URL
// may carry: how to reach the server, never who to log in as.
var allowedPostgresQuery = map[string]bool{"sslmode": true, "connect_timeout": true}

// ValidDatabaseUpstream checks a postgres upstream URL:
// postgres://HOST[:PORT][/][?sslmode=MODE&connect_timeout=SECONDS]. No
// user, password, database or other parameter. Messages never echo the URL.
func ValidDatabaseUpstream(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || len(raw) > 2048 || ServiceKind(raw) != KindPostgres {
		return refuse(ReasonInvalid, "invalid upstream URL: want postgres://HOST[:PORT][?sslmode=MODE]")
	}
	switch {
	case u.User != nil:
		return refuse(ReasonInvalid, "invalid upstream URL: credentials in the URL are not allowed; give the read and write logins")
	case u.Hostname() == "" || u.Opaque != "":
		return refuse(ReasonInvalid, "invalid upstream URL: no host")
	case u.Path != "" && u.Path != "/", u.Fragment != "":
		return refuse(ReasonInvalid, "invalid upstream URL: no database or fragment allowed (the client names the database)")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return refuse(ReasonInvalid, "invalid upstream URL: bad port")
		}
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return refuse(ReasonInvalid, "invalid upstream URL: bad query")
	}
	for k, vs := range q {
		if !allowedPostgresQuery[k] || len(vs) != 1 {
			return refuse(ReasonInvalid, "invalid upstream URL: only sslmode and connect_timeout are allowed, once each")
		}
	}
	switch q.Get("sslmode") {
	case "", "disable", "allow", "prefer", "require", "verify-ca", "verify-full":
	default:
		return refuse(ReasonInvalid, "invalid upstream URL: unknown sslmode")
	}
	if t := q.Get("connect_timeout"); t != "" {
		if n, err := strconv.Atoi(t); err != nil || n < 0 || n > 600 {
			return refuse(ReasonInvalid, "invalid upstream URL: connect_timeout must be 0 to 600 seconds")
		}
	}
	return nil
}

// DatabaseAddress returns the host:port of a postgres upstream (port 5432
// by default) and its query (sslmode, connect_timeout).
func DatabaseAddress(upstream string) (hostport string, query url.Values, err error) {
	if err := ValidDatabaseUpstream(upstream); err != nil {
		return "", nil, err
	}
	u, _ := url.Parse(upstream)
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	q, _ := url.ParseQuery(u.RawQuery)
	return net.JoinHostPort(u.Hostname(), port), q, nil
}

// DatabaseCredential opens the sealed logins of a postgres service. Only
// the PostgreSQL gateway may call it; nothing it returns is ever shown to a
// client or logged.
func (a *Authority) DatabaseCredential(s store.Service) (DatabaseLogins, error) {
	if ServiceKind(s.Upstream) != KindPostgres {
		return DatabaseLogins{}, fmt.Errorf("service %q is not a postgres service", s.Name)
	}
	plain, err := a.cfg.Box.Open(s.SealedCredential, []byte(s.Name))
	if err != nil {
		return DatabaseLogins{}, fmt.Errorf("failed to open credential of service %q: %w", s.Name, err)
	}
	var sl sealedLogins
	if err := json.Unmarshal(plain, &sl); err != nil || sl.Kind != KindPostgres {
		return DatabaseLogins{}, fmt.Errorf("failed to decode credential of service %q", s.Name)
	}
	return sl.DatabaseLogins, nil
}

// DatabaseEvent is one audit record of the PostgreSQL gateway (package
// pgwire). No field may hold a secret: the token appears only by its id,
// parameter values only as hashes.
type DatabaseEvent struct {
	Action     string // db.session.open, db.statement or db.session.close
	TokenID    string // token presented, if its id could be read
	Contractor string
	Service    string
	Method     string // the session's mode (read, write) or the statement's protocol message
	Path       string // "/DATABASE"
	Source     string // client address
	Decision   string // audit.Allow, audit.Deny, or "" (a close)
	Reason     string // a denial reason, or what the record says
}

// RecordDatabaseEvent commits a PostgreSQL gateway record. The gateway
// calls it before it acts; an error (reason audit_unavailable) means it
// must refuse and forward nothing.
func (a *Authority) RecordDatabaseEvent(ctx context.Context, ev DatabaseEvent) error {
	return a.commit(ctx, audit.Record{
		Actor: ev.TokenID, ActorName: ev.Contractor, Action: ev.Action,
		Contractor: ev.Contractor, TokenID: ev.TokenID, Service: ev.Service,
		Method: ev.Method, Path: ev.Path, Decision: ev.Decision, Reason: ev.Reason, Source: ev.Source,
	})
}
