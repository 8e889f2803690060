package pgwire

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"latchkey/internal/access"
	"latchkey/internal/scope"
	"latchkey/internal/store"
	"latchkey/internal/token"
)

// forwardedParams are the startup parameters passed on to the upstream;
// any other is dropped (options could set server parameters the service's
// owner did not choose).
var forwardedParams = map[string]bool{
	"application_name": true, "client_encoding": true, "DateStyle": true, "TimeZone": true,
	"IntervalStyle": true, "extra_float_digits": true, "search_path": true,
}

// refusal is a session start refused: audited with reason, answered with
// a FATAL ErrorResponse of code and msg.
type refusal struct {
	code, reason, msg string
}

func (r *refusal) Error() string { return r.reason + ": " + r.msg }

func refuse(code, reason, msg string) *refusal { return &refusal{code, reason, msg} }

// client is one accepted connection during its start.
type client struct {
	conn   net.Conn
	r      *bufio.Reader
	tls    bool
	source netip.Addr
}

// handle runs one connection: its start, then the session.
func (s *Server) handle(c net.Conn) {
	start := s.cfg.Now()
	c.SetDeadline(start.Add(s.cfg.StartupTimeout))
	cl := &client{conn: c, r: bufio.NewReaderSize(c, 8<<10)}
	defer func() { cl.conn.Close() }() // the TLS connection after an upgrade
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		cl.source = ap.Addr().Unmap()
	}
	sm, err := s.negotiate(cl)
	if err != nil || sm == nil {
		if err != nil && !errors.Is(err, errQuiet) {
			s.cfg.Log.Debug("pgwire: start failed", "source", cl.source, "err", err)
		}
		return
	}
	sess, err := s.open(cl, sm)
	if err != nil {
		var r *refusal
		if !errors.As(err, &r) {
			s.cfg.Log.Error("pgwire: cannot open a session", "source", cl.source, "err", err)
			r = refuse(codeSystemError, ReasonInternal, "internal error")
		}
		cl.conn.Write(encode(nil, fatal(r.code, r.reason, r.msg)))
		return
	}
	sess.run(start)
}

// errQuiet ends a connection that needs no log line (a cancel request).
var errQuiet = errors.New("pgwire: done")

// negotiate reads startup packets until the StartupMessage, upgrading to
// TLS when asked and offered. A cancel request is served and ends the
// connection (nil, errQuiet).
func (s *Server) negotiate(cl *client) (*pgproto3.StartupMessage, error) {
	for range 3 { // at most SSLRequest, GSSENCRequest, StartupMessage
		msg, err := readStartup(cl.r)
		if err != nil {
			if errors.Is(err, errProtocol) {
				cl.conn.Write(encode(nil, fatal(codeProtocolViolation, "protocol_violation", "invalid startup packet")))
			}
			return nil, err
		}
		switch m := msg.(type) {
		case *pgproto3.StartupMessage:
			return m, nil
		case *pgproto3.CancelRequest:
			s.cancel(m)
			return nil, errQuiet
		case *pgproto3.GSSEncRequest:
			if _, err := cl.conn.Write([]byte{'N'}); err != nil {
				return nil, err
			}
		case *pgproto3.SSLRequest:
			if err := s.upgrade(cl); err != nil {
				return nil, err
			}
		}
	}
	return nil, fmt.Errorf("%w: too many startup packets", errProtocol)
}

// upgrade answers an SSLRequest: 'S' and a TLS handshake when the server
// has a certificate, 'N' otherwise.
func (s *Server) upgrade(cl *client) error {
	if cl.r.Buffered() > 0 {
		// Bytes after SSLRequest would be read as if they came over TLS.
		return fmt.Errorf("%w: data after SSLRequest", errProtocol)
	}
	if cl.tls || s.cfg.TLS == nil {
		_, err := cl.conn.Write([]byte{'N'})
		return err
	}
	if _, err := cl.conn.Write([]byte{'S'}); err != nil {
		return err
	}
	tc := tls.Server(cl.conn, s.cfg.TLS)
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	cl.conn, cl.r, cl.tls = tc, bufio.NewReaderSize(tc, 8<<10), true
	return nil
}

// open checks a client's start and opens its upstream session, auditing
// the decision first. The returned error is a *refusal or an internal
// error.
func (s *Server) open(cl *client, sm *pgproto3.StartupMessage) (*session, error) {
	user, database := sm.Parameters["user"], sm.Parameters["database"]
	if database == "" {
		database = user // libpq's default
	}
	ss := &session{srv: s, client: cl, rec: record{Contractor: user, Source: cl.source.String()}}
	t, err := ParseDatabase(database)
	if err == nil {
		ss.target = t
		ss.rec.Service, ss.rec.Path = t.Service, t.Path()
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.StartupTimeout)
	defer cancel()
	// Before the password: these need no secret and refuse early.
	var r *refusal
	switch {
	case !cl.tls && !cl.source.IsLoopback():
		r = refuse(codeInvalidAuthSpec, ReasonTLSRequired, "the gateway takes a token only over TLS from this address: connect with sslmode=require")
	case err != nil:
		r = refuse(codeInvalidCatalog, ReasonDatabaseInvalid, `database must be "SERVICE/DATABASE", e.g. "billing/invoices"`)
	case sm.Parameters["replication"] != "" && sm.Parameters["replication"] != "false" && sm.Parameters["replication"] != "0":
		r = refuse(codeInvalidAuthSpec, ReasonScopeDenied, "replication connections are not allowed")
	case s.fails.exhausted(cl.source, s.cfg.Now()):
		r = refuse(codeTooManyConnections, ReasonRateLimited, "too many failed authentications from this address: slow down")
	}
	if r != nil {
		return nil, s.deny(ctx, ss, r)
	}
	if sm.ProtocolVersion != pgproto3.ProtocolVersion30 {
		// Speak 3.0: the upstream session is 3.0 (pgconn's default).
		if _, err := cl.conn.Write(encode(nil, &pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: protocolOptions(sm)})); err != nil {
			return nil, err
		}
	}
	text, err := s.password(cl)
	if err != nil {
		return nil, err
	}
	tok, set, err := s.cfg.Authority.Authenticate(ctx, text, cl.source)
	if p, perr := token.Parse(text); perr == nil {
		ss.rec.TokenID = p.ID
	}
	if err != nil {
		r := authRefusal(err)
		if r.code == codeInvalidPassword {
			s.fails.fail(cl.source, s.cfg.Now())
		}
		return nil, s.deny(ctx, ss, r)
	}
	ss.tok = tok
	if r := s.check(ss, tok, set, user); r != nil {
		return nil, s.deny(ctx, ss, r)
	}
	return ss, s.connect(ctx, ss, sm)
}

// protocolOptions lists the _pq_ options of a startup message, which this
// gateway does not know.
func protocolOptions(sm *pgproto3.StartupMessage) []string {
	var out []string
	for k := range sm.Parameters {
		if strings.HasPrefix(k, "_pq_.") {
			out = append(out, k)
		}
	}
	return out
}

// password asks for and reads the cleartext password.
func (s *Server) password(cl *client) (string, error) {
	if _, err := cl.conn.Write(encode(nil, &pgproto3.AuthenticationCleartextPassword{})); err != nil {
		return "", err
	}
	f, _, err := readFrame(cl.r, maxPassword, nil)
	if err != nil {
		return "", err
	}
	if f.typ != 'p' {
		return "", refuse(codeProtocolViolation, "protocol_violation", "expected a password message")
	}
	var pm pgproto3.PasswordMessage
	if err := pm.Decode(f.body); err != nil {
		return "", refuse(codeProtocolViolation, "protocol_violation", "invalid password message")
	}
	return pm.Password, nil
}

// authRefusal maps an Authenticate error to a refusal.
func authRefusal(err error) *refusal {
	var e *access.Error
	if !errors.As(err, &e) {
		return &refusal{codeSystemError, ReasonInternal, "internal error"}
	}
	switch e.Reason {
	case access.ReasonMalformed, access.ReasonUnknown, access.ReasonExpired, access.ReasonRevoked:
		return refuse(codeInvalidPassword, e.Reason, e.Msg)
	case access.ReasonAuditUnavailable:
		return refuse(codeSystemError, e.Reason, "the audit log cannot be written: connection refused")
	}
	return refuse(codeInvalidAuthSpec, e.Reason, e.Msg)
}

// check applies the rules after authentication: the user is the token's
// contractor, the token is a plain contractor bearer token, and one of its
// scopes opens the database. It sets the session's mode.
func (s *Server) check(ss *session, tok store.Token, set scope.Set, user string) *refusal {
	ss.rec.Contractor = tok.Contractor
	switch {
	case tok.Admin:
		return refuse(codeInvalidAuthSpec, ReasonScopeDenied, "an admin token cannot open database sessions")
	case tok.CnfJKT != "" || tok.CnfX5T != "":
		return refuse(codeInvalidAuthSpec, ReasonProofInvalid, "token "+tok.ID+" is bound to a key or certificate, which the PostgreSQL gateway cannot check: use an unbound token")
	case user != tok.Contractor:
		return refuse(codeInvalidAuthSpec, ReasonUserMismatch, fmt.Sprintf("user %q is not the contractor of token %s", cut(user), tok.ID))
	}
	mode, matched, ok := Mode(set, ss.target)
	if !ok {
		return refuse(codeInvalidAuthSpec, ReasonScopeDenied, fmt.Sprintf("no scope of token %s allows read or write on database %q of service %q", tok.ID, ss.target.Database, ss.target.Service))
	}
	ss.mode, ss.matched, ss.rec.Method = mode, matched, mode
	return nil
}

// deny audits a refused start, then returns the refusal to answer. If the
// record cannot be committed, the answer is audit_unavailable instead.
func (s *Server) deny(ctx context.Context, ss *session, r *refusal) error {
	rec := ss.rec
	rec.Reason = r.reason
	if err := s.commitRecord(ctx, ActionSessionOpen, rec, true); err != nil {
		return refuse(codeSystemError, access.ReasonAuditUnavailable, "the audit log cannot be written: connection refused")
	}
	return r
}

// cut shortens client-controlled text for a message.
func cut(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// timeout returns the deadline for the upstream login.
func (s *Server) timeout() time.Duration { return s.cfg.DialTimeout }
