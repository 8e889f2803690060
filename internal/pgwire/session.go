package pgwire

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"latchkey/internal/access"
	"latchkey/internal/audit"
	"latchkey/internal/scope"
	"latchkey/internal/store"
)

// record is an audit record of the PostgreSQL gateway.
type record = access.DatabaseEvent

// session is one client's session, from its start to its close record.
type session struct {
	srv     *Server
	client  *client
	tok     store.Token
	target  Target
	mode    string
	matched scope.Scope
	rec     record // identity fields shared by the session's records

	up      net.Conn
	upR     *bufio.Reader
	ctx     context.Context // held: ends with the token
	release func()
	key     uint32 // the client's cancel key's process id

	in, out    atomic.Int64 // bytes client to upstream, upstream to client
	statements int64
	stmts      statements

	terminated atomic.Bool // the client sent Terminate
	endOnce    sync.Once
	endReason  string
	endFatal   *pgproto3.ErrorResponse
}

// connect opens the session upstream: the service's login for the
// session's mode, committed as db.session.open first.
func (s *Server) connect(ctx context.Context, ss *session, sm *pgproto3.StartupMessage) error {
	a := s.cfg.Authority
	svc, err := a.Service(ctx, ss.target.Service)
	if access.ReasonOf(err) == access.ReasonNotFound || err == nil && access.ServiceKind(svc.Upstream) != access.KindPostgres {
		return s.deny(ctx, ss, refuse(codeInvalidCatalog, ReasonServiceUnknown, fmt.Sprintf("no postgres service named %q", ss.target.Service)))
	} else if err != nil {
		return err
	}
	logins, err := a.DatabaseCredential(svc)
	if err != nil {
		return err
	}
	login := logins.Read
	if ss.mode == ModeWrite {
		login = logins.Write
	}
	addr, query, err := access.DatabaseAddress(svc.Upstream)
	if err != nil {
		return err
	}
	counted, err := a.Use(ctx, ss.tok)
	if err != nil {
		return s.deny(ctx, ss, authRefusal(err))
	}
	held, release, err := a.Hold(s.ctx, ss.tok.ID)
	if err != nil {
		return s.deny(ctx, ss, authRefusal(err))
	}
	ss.ctx, ss.release = held, release
	open := ss.rec
	open.Reason = "upstream role " + login.User
	if err := s.commitRecord(ctx, ActionSessionOpen, open, false); err != nil {
		release()
		return refuse(codeSystemError, access.ReasonAuditUnavailable, "the audit log cannot be written: connection refused")
	}
	s.noteUse(ss, counted)
	hc, err := s.dial(ctx, addr, query, login, ss.target.Database, sm)
	if err != nil {
		r := upstreamRefusal(err)
		s.cfg.Log.Warn("pgwire: upstream connection failed", "service", ss.target.Service, "token", ss.tok.ID, "err", err)
		ss.endReason = r.reason
		s.closeRecord(ss, 0)
		release()
		return r
	}
	ss.up, ss.upR = hc.Conn, bufio.NewReaderSize(hc.Conn, 64<<10)
	ss.key = s.cancels.add(addr, hc.PID, hc.SecretKey)
	return ss.greet(hc)
}

// dial connects and logs in to the upstream, then hijacks the connection.
func (s *Server) dial(ctx context.Context, addr string, query map[string][]string, login access.DatabaseLogin, database string, sm *pgproto3.StartupMessage) (*pgconn.HijackedConn, error) {
	sslmode := "prefer"
	if v := query["sslmode"]; len(v) == 1 {
		sslmode = v[0]
	}
	cfg, err := pgconn.ParseConfig("postgres://" + addr + "/?sslmode=" + sslmode)
	if err != nil {
		return nil, err
	}
	cfg.User, cfg.Password, cfg.Database = login.User, login.Password, database
	cfg.RuntimeParams = map[string]string{}
	for k, v := range sm.Parameters {
		if forwardedParams[k] {
			cfg.RuntimeParams[k] = v
		}
	}
	for _, fb := range cfg.Fallbacks {
		fb.Host, fb.Port = cfg.Host, cfg.Port
	}
	cfg.ValidateConnect, cfg.AfterConnect = nil, nil
	dctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	pc, err := pgconn.ConnectConfig(dctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pc.SyncConn(dctx); err != nil {
		pc.Close(context.Background())
		return nil, err
	}
	return pc.Hijack()
}

// upstreamRefusal maps an upstream connection error to what the client is
// told: PostgreSQL's own error, except for login failures, which would
// speak of the service's login.
func upstreamRefusal(err error) *refusal {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		if len(pe.Code) == 5 && pe.Code[:2] == "28" {
			return refuse(codeConnectionFailure, ReasonUpstreamUnavailable, "the upstream refused the service's login; ask the service's owner")
		}
		return refuse(pe.Code, ReasonUpstreamUnavailable, "upstream: "+pe.Message)
	}
	return refuse(codeConnectionFailure, ReasonUpstreamUnavailable, "cannot reach the upstream database")
}

// greet finishes the client's start: AuthenticationOk, the upstream's
// parameters, the gateway's cancel key and ReadyForQuery.
func (ss *session) greet(hc *pgconn.HijackedConn) error {
	b := encode(nil, &pgproto3.AuthenticationOk{})
	for k, v := range hc.ParameterStatuses {
		b = encode(b, &pgproto3.ParameterStatus{Name: k, Value: v})
	}
	secret := ss.srv.cancels.secret(ss.key)
	b = encode(b, &pgproto3.BackendKeyData{ProcessID: ss.key, SecretKey: secret[:]})
	b = encode(b, &pgproto3.ReadyForQuery{TxStatus: hc.TxStatus})
	if _, err := ss.client.conn.Write(b); err != nil {
		ss.abort("client_closed")
		return errQuiet
	}
	return nil
}

// abort ends a session that never ran.
func (ss *session) abort(reason string) {
	ss.endReason = reason
	ss.up.Close()
	ss.srv.cancels.remove(ss.key)
	ss.srv.closeRecord(ss, 0)
	ss.release()
}

// run relays the session until either side ends, or its token does.
func (ss *session) run(start time.Time) {
	s := ss.srv
	ss.client.conn.SetDeadline(time.Time{})
	done := make(chan struct{})
	go ss.downstream(done)
	stop := make(chan struct{})
	go func() {
		select {
		case <-ss.ctx.Done():
			ss.end(endOf(ss.ctx, ss.tok.ID))
		case <-stop:
		}
	}()
	reason, msg := ss.upstream()
	ss.end(reason, msg)
	<-done
	close(stop)
	s.cancels.remove(ss.key)
	ss.release()
	s.closeRecord(ss, s.cfg.Now().Sub(start))
}

// endOf returns why a held context ended, and the FATAL to send.
func endOf(ctx context.Context, id string) (string, *pgproto3.ErrorResponse) {
	switch context.Cause(ctx) {
	case access.ErrTokenCut:
		return access.ReasonRevoked, fatal(codeAdminShutdown, access.ReasonRevoked, "token "+id+" was revoked or its contractor offboarded: session closed")
	case access.ErrTokenEnded:
		return access.ReasonExpired, fatal(codeAdminShutdown, access.ReasonExpired, "token "+id+" has ended: session closed")
	}
	return "shutdown", fatal(codeAdminShutdown, "shutdown", "the gateway is shutting down")
}

// end ends the session once: it notes why, closes the upstream (which ends
// downstream, which then sends msg to the client, if any, and closes it).
// Unless the upstream ended the session, or the client did with Terminate,
// the statement the upstream may still be running is cancelled: a backend
// busy with a long statement would not notice its closed connection.
func (ss *session) end(reason string, msg *pgproto3.ErrorResponse) {
	ss.endOnce.Do(func() {
		ss.endReason, ss.endFatal = reason, msg
		ss.client.conn.SetWriteDeadline(time.Now().Add(time.Second))
		ss.up.Close()
		if reason != "upstream_closed" && !ss.terminated.Load() {
			if k := ss.srv.cancels.get(ss.key); k != nil {
				go ss.srv.cancelUpstream(k)
			}
		}
	})
}

// downstream relays upstream messages to the client, unread but for their
// framing and ReadyForQuery, until the upstream connection ends; then it
// sends the session's FATAL, if any, and closes the client connection.
func (ss *session) downstream(done chan<- struct{}) {
	defer close(done)
	w := bufio.NewWriterSize(ss.client.conn, 64<<10)
	r := ss.upR
	boundary := true
	var rfq int64
	for {
		hdr, err := r.Peek(5)
		if err != nil {
			break
		}
		n := int(binary.BigEndian.Uint32(hdr[1:5])) + 1
		if n < 5 {
			break
		}
		if hdr[0] == 'Z' && n == 6 {
			b, err := r.Peek(6)
			if err != nil {
				break
			}
			rfq++
			if b[5] == 'I' { // transaction over: every portal is gone
				ss.stmts.idleBelow.Store(rfq)
			}
		}
		boundary = false
		if n <= r.Size() {
			b, err := r.Peek(n)
			if err != nil {
				break
			}
			if _, err := w.Write(b); err != nil {
				break
			}
			r.Discard(n)
		} else if _, err := w.ReadFrom(limit(r, n)); err != nil {
			break
		}
		boundary = true
		ss.out.Add(int64(n))
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				break
			}
		}
	}
	ss.end("upstream_closed", nil)
	if ss.endFatal != nil && boundary {
		w.Write(encode(nil, ss.endFatal))
	}
	w.Flush()
	ss.client.conn.Close()
}

// upstream relays client messages to the upstream, auditing statements
// before they are forwarded, until the client ends or a message is
// refused. It returns the session's end reason and the FATAL to send.
func (ss *session) upstream() (string, *pgproto3.ErrorResponse) {
	w := bufio.NewWriterSize(ss.up, 64<<10)
	r := ss.client.r
	var buf []byte
	for {
		f, b, err := readFrame(r, ss.srv.cfg.MaxMessage, buf)
		buf = b
		switch {
		case errors.Is(err, errTooLarge):
			return "message_too_large", fatal(codeLimitExceeded, "message_too_large", err.Error())
		case errors.Is(err, errProtocol):
			return "protocol_violation", fatal(codeProtocolViolation, "protocol_violation", err.Error())
		case err != nil:
			return "client_closed", nil
		}
		stmt, err := ss.stmts.observe(f)
		if err != nil {
			return "protocol_violation", fatal(codeProtocolViolation, "protocol_violation", err.Error())
		}
		if stmt != nil {
			if err := ss.audit(stmt); err != nil {
				return access.ReasonAuditUnavailable, fatal(codeSystemError, access.ReasonAuditUnavailable, "the audit log cannot be written: statement refused, session closed")
			}
		}
		if _, err := w.Write(appendHeader(f)); err != nil {
			return "upstream_closed", nil
		}
		if _, err := w.Write(f.body); err != nil {
			return "upstream_closed", nil
		}
		ss.in.Add(int64(5 + len(f.body)))
		if f.typ == 'X' {
			ss.terminated.Store(true)
			w.Flush()
			return "client_closed", nil
		}
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return "upstream_closed", nil
			}
		}
	}
}

// appendHeader returns the 5-byte header of f.
func appendHeader(f frame) []byte {
	var h [5]byte
	h[0] = f.typ
	binary.BigEndian.PutUint32(h[1:], uint32(len(f.body)+4))
	return h[:]
}

// audit commits a statement's record before it is forwarded.
func (ss *session) audit(st *statement) error {
	rec := ss.rec
	rec.Method = st.kind
	rec.Reason = st.reason()
	ss.statements++
	if err := ss.srv.commitRecord(ss.ctx, ActionStatement, rec, false); err != nil {
		return err
	}
	ss.srv.noteUse(ss, false)
	return nil
}

// commitRecord commits one record of the gateway.
func (s *Server) commitRecord(ctx context.Context, action string, rec record, deny bool) error {
	rec.Action = action
	rec.Decision = audit.Allow
	if deny {
		rec.Decision = audit.Deny
	}
	if action == ActionSessionClose {
		rec.Decision = ""
	}
	return s.cfg.Authority.RecordDatabaseEvent(ctx, rec)
}

// closeRecord commits the session's close record; it can no longer refuse
// anything, so a failure is only logged.
func (s *Server) closeRecord(ss *session, took time.Duration) {
	rec := ss.rec
	rec.Reason = fmt.Sprintf("end=%s client_bytes=%d server_bytes=%d statements=%d duration=%s",
		ss.endReason, ss.in.Load(), ss.out.Load(), ss.statements, took.Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.commitRecord(ctx, ActionSessionClose, rec, false); err != nil {
		s.cfg.Log.Error("pgwire: cannot record a session's close", "token", ss.tok.ID, "err", err)
	}
}

// noteUse records a use of the session's token for usage tracking.
func (s *Server) noteUse(ss *session, counted bool) {
	if s.cfg.Usage == nil {
		return
	}
	if counted {
		s.cfg.Usage.RecordCounted(ss.tok.ID, ss.matched.String(), s.cfg.Now())
	} else {
		s.cfg.Usage.Record(ss.tok.ID, ss.matched.String(), s.cfg.Now())
	}
}
