// Package pgwire implements latchkey's PostgreSQL gateway: a listener that
// speaks the PostgreSQL wire protocol (version 3.0) to ordinary clients
// (psql, pgx, JDBC), authenticates them with a latchkey token given as the
// password, and relays their session to a postgres service's upstream,
// logged in with one of the service's own sealed logins, which the
// contractor never sees.
//
// # Session start
//
//  1. The client may ask for TLS (SSLRequest): it gets 'S' and a TLS
//     handshake when Config.TLS is set, 'N' otherwise; GSSENCRequest always
//     gets 'N'. Bytes sent after an SSLRequest before the handshake are a
//     protocol violation (CVE-2021-23222).
//  2. The StartupMessage names user (the contractor) and database,
//     "SERVICE/DATABASE" (see ParseDatabase). replication connections are
//     refused.
//  3. Without TLS, a client whose address is not loopback is refused
//     before any password is asked for: a token never crosses the network
//     in clear.
//  4. The client is asked for a cleartext password (its token) and the
//     token is checked by access.Authority.Authenticate, exactly as the
//     HTTP gateway does: checksum, hash, expiry, revocation, contractor
//     state, source CIDRs. The user must be the token's contractor. An
//     admin token, a token bound to a DPoP key or to a certificate, and a
//     token without a scope for the database (see Mode) are refused.
//  5. The session's audit record (db.session.open) is committed; then the
//     upstream is dialled (github.com/jackc/pgx/v5/pgconn: TLS and SCRAM as
//     the upstream asks) with the read login for a read session and the
//     write login for a write session.
//
// Every refusal is a FATAL ErrorResponse "latchkey: REASON: MESSAGE"
// (REASON as the HTTP gateway's: token_unknown, scope_denied, ...) and is
// audited first (db.session.open, decision deny). The whole start is
// bounded by Config.StartupTimeout.
//
// # Relay
//
// Client messages are read one by one, at most Config.MaxMessage bytes
// each, and forwarded byte for byte. Before a simple Query, an Execute
// (extended protocol) or a FunctionCall is forwarded, its db.statement
// record is committed: the statement's text (for Execute, the text of the
// Parse its portal was bound from), and the Bind's parameter values only
// as a SHA-256 hash (see statementReason). If the record cannot be
// committed, the client gets a FATAL ErrorResponse (audit_unavailable),
// the statement is not forwarded, and the session ends. Server messages
// are relayed unread, except ReadyForQuery, which tells when portals end.
//
// A session runs under access.Authority.Hold: when its token is revoked,
// rotated out or expires, or its contractor is offboarded, the upstream
// connection is closed at once (rolling back any open transaction) and the
// client gets a FATAL ErrorResponse (57P01). The session's end is audited
// as db.session.close with the bytes relayed each way and the duration.
//
// # Cancel requests
//
// The client gets a BackendKeyData of the gateway's own (a random process
// id and key). A CancelRequest carrying it (compared in constant time) is
// sent on to the upstream with the upstream's key; any other is ignored,
// as PostgreSQL does.
package pgwire

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"latchkey/internal/access"
	"latchkey/internal/usage"
)

// Audit actions of the PostgreSQL gateway.
const (
	ActionSessionOpen  = "db.session.open"
	ActionStatement    = "db.statement"
	ActionSessionClose = "db.session.close"
)

// Denial reasons beyond the token reasons of access.Authority.Authenticate.
const (
	ReasonScopeDenied         = "scope_denied"
	ReasonProofInvalid        = "proof_invalid"
	ReasonServiceUnknown      = "service_unknown"
	ReasonDatabaseInvalid     = "database_invalid"
	ReasonUserMismatch        = "user_mismatch"
	ReasonTLSRequired         = "tls_required"
	ReasonUpstreamUnavailable = "upstream_unavailable"
	ReasonInternal            = "internal_error"
	ReasonRateLimited         = "rate_limited"
)

// Defaults of Config.
const (
	DefaultStartupTimeout = 10 * time.Second
	DefaultDialTimeout    = 10 * time.Second
)

// Config configures a Server. Only Authority is required.
type Config struct {
	// Authority authenticates tokens, holds the services and their sealed
	// logins, and commits the audit records. Required.
	Authority *access.Authority
	// Usage receives one use at each session start and each statement.
	// nil: usage is not tracked.
	Usage *usage.Recorder
	// TLS, if set, is offered to clients that send an SSLRequest. Without
	// it, SSLRequest is answered 'N' and only loopback clients may log in.
	TLS *tls.Config
	// Log is the application log (never the audit log). Default slog.Default().
	Log *slog.Logger
	// StartupTimeout bounds a session's start, from accept to the
	// upstream's ReadyForQuery. Default DefaultStartupTimeout.
	StartupTimeout time.Duration
	// DialTimeout bounds the upstream connection and login. Default
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// MaxMessage is the largest client message body relayed, in bytes.
	// Default DefaultMaxMessage.
	MaxMessage int
	// FailureRate and FailureBurst bound the failed authentications
	// (wrong, unknown, expired or revoked tokens) per source address; past
	// them, the source is refused (rate_limited) before its password is
	// read. Zero: DefaultFailureRate, DefaultFailureBurst.
	FailureRate  rate.Limit
	FailureBurst int
	// Now is the clock for usage times, durations and the failure limit.
	// Default time.Now.
	Now func() time.Time
}

// Server is the PostgreSQL gateway. It is safe for concurrent use.
type Server struct {
	cfg     Config
	ctx     context.Context // cancelled by Close: sessions end
	stop    context.CancelFunc
	cancels cancelKeys
	fails   *failures

	mu       sync.Mutex
	lns      map[net.Listener]struct{}
	sessions sync.WaitGroup
	closed   bool
}

// New validates cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Authority == nil {
		return nil, errors.New("pgwire: Authority is required")
	}
	if cfg.StartupTimeout < 0 || cfg.DialTimeout < 0 || cfg.MaxMessage < 0 {
		return nil, errors.New("pgwire: negative limit")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.StartupTimeout == 0 {
		cfg.StartupTimeout = DefaultStartupTimeout
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.MaxMessage == 0 {
		cfg.MaxMessage = DefaultMaxMessage
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.FailureRate < 0 || cfg.FailureBurst < 0 {
		return nil, errors.New("pgwire: negative failure limit")
	}
	if cfg.FailureRate == 0 {
		cfg.FailureRate = DefaultFailureRate
	}
	if cfg.FailureBurst == 0 {
		cfg.FailureBurst = DefaultFailureBurst
	}
	ctx, stop := context.WithCancel(context.Background())
	return &Server{cfg: cfg, ctx: ctx, stop: stop, lns: make(map[net.Listener]struct{}),
		fails: newFailures(cfg.FailureRate, cfg.FailureBurst)}, nil
}

// Serve accepts connections on ln until Close; it returns nil after Close,
// or the error that stopped it.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("pgwire: server closed")
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() { // e.g. out of file descriptors: back off
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return nil
		}
		s.sessions.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.sessions.Done()
			s.handle(c)
		}()
	}
}

// Close stops the listeners and ends every session (the clients get a
// FATAL ErrorResponse), waiting until their close records are written.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for ln := range s.lns {
		ln.Close()
	}
	s.mu.Unlock()
	s.stop()
	s.sessions.Wait()
	return nil
}
