package pgwire_test

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"latchkey/internal/audit"
	"latchkey/internal/certtest"
	"latchkey/internal/pgwire"
)

// remoteListener makes every accepted connection seem to come from addr.
type remoteListener struct {
	net.Listener
	addr net.Addr
}

type remoteConn struct {
	net.Conn
	addr net.Addr
}

func (c remoteConn) RemoteAddr() net.Addr { return c.addr }

func (l remoteListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return remoteConn{c, l.addr}, nil
}

// TestTLSRequiredOffLoopback: without TLS, a client that is not on
// loopback is refused before it is asked for a password.
func TestTLSRequiredOffLoopback(t *testing.T) {
	listen = func(ln net.Listener) net.Listener {
		return remoteListener{ln, &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 5555}}
	}
	e := newBare(t)
	listen = nil
	tok, _ := e.issue(t, "pg:read:/app")
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, _ := (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "alice", "database": "pg/app"}}).Encode(nil)
	c.Write(b)
	c.SetReadDeadline(time.Now().Add(liveness))
	fe := pgproto3.NewFrontend(c, c)
	msg, err := fe.Receive()
	if err != nil {
		t.Fatal(err)
	}
	er, ok := msg.(*pgproto3.ErrorResponse)
	if !ok || er.Severity != "FATAL" || !hasReason(er.Message, pgwire.ReasonTLSRequired) {
		t.Fatalf("got %#v, want FATAL tls_required (and no password request)", msg)
	}
	opens := e.find(t, pgwire.ActionSessionOpen)
	if len(opens) != 1 || opens[0].Decision != audit.Deny || opens[0].Source != "192.0.2.7" {
		t.Fatalf("audit: %+v", opens)
	}
	_ = tok
}

// TestSSLRequestRefused: without TLS, SSLRequest and GSSENCRequest get
// 'N', and bytes sent after an SSLRequest end the connection.
func TestSSLRequestRefused(t *testing.T) {
	e := newBare(t)
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(liveness))
	ssl, _ := (&pgproto3.SSLRequest{}).Encode(nil)
	gss, _ := (&pgproto3.GSSEncRequest{}).Encode(nil)
	for _, req := range [][]byte{ssl, gss} {
		c.Write(req)
		var one [1]byte
		if _, err := io.ReadFull(c, one[:]); err != nil || one[0] != 'N' {
			t.Fatalf("answer %q, %v", one, err)
		}
	}
	// Pipelined bytes after an SSLRequest (CVE-2021-23222).
	c2, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(liveness))
	c2.Write(append(ssl, 'Q', 0, 0, 0, 4))
	if n, _ := io.ReadFull(c2, make([]byte, 1)); n != 0 {
		t.Fatal("answered an SSLRequest followed by data")
	}
}

// TestStartupTimeout: a client that sends nothing is dropped.
func TestStartupTimeout(t *testing.T) {
	e := newBare(t, func(c *pgwire.Config) { c.StartupTimeout = 100 * time.Millisecond })
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(liveness))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read: %v, want EOF", err)
	}
}

// TestBadStartup: malformed startup packets are refused.
func TestBadStartup(t *testing.T) {
	e := newBare(t)
	for name, b := range map[string][]byte{
		"huge":      binary.BigEndian.AppendUint32(nil, 1<<30),
		"version 2": append(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 9), 2<<16), 0),
	} {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(liveness))
		c.Write(b)
		out, _ := io.ReadAll(c)
		c.Close()
		if len(out) > 0 && !strings.Contains(string(out), "protocol_violation") {
			t.Errorf("%s: answered %q", name, out)
		}
	}
}

// selfSigned returns a TLS config with a certificate for 127.0.0.1.
func selfSigned(t *testing.T) *tls.Config {
	c, k := certtest.PEM(t, "test")
	pair, err := tls.X509KeyPair([]byte(c), []byte(k))
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
}

// TestTLS: with a certificate, the gateway speaks TLS to the client.
func TestTLS(t *testing.T) {
	e := newEnv(t, func(c *pgwire.Config) { c.TLS = selfSigned(t) })
	tok, _ := e.issue(t, "pg:read:/"+e.db.Name)
	ctx, cancel := context.WithTimeout(context.Background(), liveness)
	defer cancel()
	dsn := strings.Replace(e.dsn("alice", tok, "pg/"+e.db.Name), "sslmode=disable", "sslmode=require", 1)
	c, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, ok := c.Conn().(*tls.Conn); !ok {
		t.Fatalf("connection is %T, want TLS", c.Conn())
	}
	res, err := c.Exec(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").ReadAll()
	if err != nil || len(res[0].Rows) != 1 {
		t.Fatalf("%v %v", res, err)
	}
}

// TestMessageLimit: a client message over MaxMessage ends the session
// with a FATAL, unforwarded.
func TestMessageLimit(t *testing.T) {
	e := newEnv(t, func(c *pgwire.Config) { c.MaxMessage = 1024 })
	tok, _ := e.issue(t, "pg:write:/"+e.db.Name)
	c := e.mustConnect(t, tok, "pg/"+e.db.Name)
	_, err := c.Exec(context.Background(), "INSERT INTO items VALUES (9, '"+strings.Repeat("x", 2000)+"')")
	if pe := pgErr(t, err); pe.Code != "54000" || !hasReason(pe.Message, "message_too_large") {
		t.Fatalf("%v", err)
	}
	if got := e.db.Query(t, "SELECT count(*) FROM items WHERE id = 9"); got != "0" {
		t.Fatal("an oversized message was forwarded")
	}
}

// TestFailureLimit: a source that keeps presenting bad tokens is refused
// before its password is read, audited as rate_limited.
func TestFailureLimit(t *testing.T) {
	e := newBare(t, func(c *pgwire.Config) { c.FailureRate, c.FailureBurst = 0.001, 3 })
	ctx := context.Background()
	unknown := "lk_" + strings.Repeat("B", 50)
	for i := range 3 {
		_, err := pgconn.Connect(ctx, e.dsn("alice", unknown, "pg/app"))
		if pe := pgErr(t, err); pe.Code != "28P01" {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	good, _ := e.issue(t, "pg:read:/app")
	_, err := pgconn.Connect(ctx, e.dsn("alice", good, "pg/app"))
	if pe := pgErr(t, err); pe.Code != "53300" || !hasReason(pe.Message, pgwire.ReasonRateLimited) {
		t.Fatalf("after 3 failures: %v", err)
	}
	opens := e.find(t, pgwire.ActionSessionOpen)
	if last := opens[len(opens)-1]; last.Reason != pgwire.ReasonRateLimited || last.Decision != audit.Deny {
		t.Fatalf("audit: %+v", last)
	}
}

// TestTLSRefusal: a refusal after the TLS upgrade is sent over TLS.
func TestTLSRefusal(t *testing.T) {
	e := newBare(t, func(c *pgwire.Config) { c.TLS = selfSigned(t) })
	ctx, cancel := context.WithTimeout(context.Background(), liveness)
	defer cancel()
	dsn := strings.Replace(e.dsn("alice", "lk_bad", "pg/app"), "sslmode=disable", "sslmode=require", 1)
	_, err := pgconn.Connect(ctx, dsn)
	if pe := pgErr(t, err); pe.Code != "28P01" || !hasReason(pe.Message, "token_malformed") {
		t.Fatalf("%v", err)
	}
}
