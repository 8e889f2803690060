package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"latchkey/internal/access"
	"latchkey/internal/audit"
	"latchkey/internal/gateway"
	"latchkey/internal/seal"
	"latchkey/internal/store/sqlite"
	"latchkey/internal/usage"
)

// liveness bounds every wait for something that must happen (an event
// arriving, a stream being cut). It is never a timing assertion: a correct
// gateway does each of these things within milliseconds.
const liveness = 10 * time.Second

// newEnvWith is newEnv with service "billing" served by up instead of the
// canned upstream: same store, audit log, clock, contractor alice and
// grants. The upstream still counts hits and records each request's target
// and headers before up runs. It also returns the gateway handler, for
// tests that serve it on servers of their own (TLS, h2c, shutdown); e.gw
// serves it over plain HTTP/1.1. opts adjust the gateway's Config.
func newEnvWith(t *testing.T, up http.Handler, opts ...func(*gateway.Config)) (*env, http.Handler) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "latchkey.db"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := seal.LoadOrCreateKey(filepath.Join(dir, "seal.key"))
	if err != nil {
		t.Fatal(err)
	}
	box, err := seal.New(key)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{st: st, clock: &clock{t: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}}
	e.log = audit.New(st.Audit(sqlite.SyncNormal), audit.Config{})
	if e.a, err = access.New(access.Config{Store: st, Box: box, Now: e.clock.Now, Audit: e.log}); err != nil {
		t.Fatal(err)
	}
	e.use = usage.New(usage.Config{Store: st, Interval: time.Hour})
	upSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.hits.Add(1)
		e.last.Store(&seen{uri: r.RequestURI, header: r.Header.Clone()})
		up.ServeHTTP(w, r)
	}))
	e.upURL = upSrv.URL
	cfg := gateway.Config{Authority: e.a, Usage: e.use, Now: e.clock.Now}
	for _, o := range opts {
		o(&cfg)
	}
	h, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.gw = httptest.NewServer(h)
	t.Cleanup(func() {
		e.gw.Close()
		upSrv.Close()
		e.use.Close(ctx)
		e.log.Close()
		st.Close()
	})
	creds := []access.Header{{Name: "Authorization", Value: "Bearer up-secret"}, {Name: "x-api-key", Value: "k1"}}
	if _, err := e.a.AddService(ctx, root, "billing", upSrv.URL+"/base", creds); err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now()
	if _, err := e.a.AddContractor(ctx, root, access.NewContractor{Name: "alice", Email: "alice@example.com", Sponsor: "bob", Until: now.Add(60 * 24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.AddGrant(ctx, root, "alice", []string{"billing:*:/v1/**", "*:GET:/**"}, now.Add(20*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	return e, h
}

// checkUpstreamSaw fails unless the last request the upstream received
// was for uri and carried the service's credential and nothing of the
// contractor's token.
func checkUpstreamSaw(t *testing.T, e *env, uri, text string) {
	t.Helper()
	s := e.last.Load()
	if s == nil {
		t.Fatal("the upstream received no request")
	}
	if s.uri != uri {
		t.Errorf("upstream request-target %q, want %q", s.uri, uri)
	}
	if got := s.header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer up-secret" {
		t.Errorf("upstream Authorization %q, want the injected credential only", got)
	}
	if got := s.header.Values("X-Api-Key"); len(got) != 1 || got[0] != "k1" {
		t.Errorf("upstream X-Api-Key %q, want the injected credential", got)
	}
	for k, vs := range s.header {
		if strings.Contains(strings.Join(vs, " "), text) {
			t.Errorf("contractor token reached the upstream in %s", k)
		}
	}
}

// wsEcho is an upstream WebSocket server: it greets each connection with
// "welcome", then echoes every message back. ended receives once per
// connection when its handler returns (the upstream side is closed).
type wsEcho struct {
	ended chan struct{}
}

func newWSEcho() *wsEcho { return &wsEcho{ended: make(chan struct{}, 16)} }

func (s *wsEcho) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() { s.ended <- struct{}{} }()
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept has answered the request
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	ctx := context.Background() // a hijacked request's context is not tied to the connection
	if err := c.Write(ctx, websocket.MessageText, []byte("welcome")); err != nil {
		return
	}
	for {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		if err := c.Write(ctx, typ, msg); err != nil {
			return
		}
	}
}

// dialWS opens a WebSocket to path on the gateway with token text, reads
// the upstream's greeting and checks one echo, so the connection is known
// to work end to end.
func dialWS(t *testing.T, e *env, path, text string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), liveness)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.gw.URL, "http")+path,
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + text}}})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: status %d: %v", path, status, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	c.SetReadLimit(1 << 20)
	if _, msg, err := c.Read(ctx); err != nil || string(msg) != "welcome" {
		t.Fatalf("greeting: %q, %v; want welcome", msg, err)
	}
	echo(t, ctx, c, websocket.MessageText, "ping")
	return c
}

// echo sends msg and checks that the same message comes back.
func echo(t *testing.T, ctx context.Context, c *websocket.Conn, typ websocket.MessageType, msg string) {
	t.Helper()
	if err := c.Write(ctx, typ, []byte(msg)); err != nil {
		t.Fatalf("write %.40q (%d bytes): %v", msg, len(msg), err)
	}
	gotTyp, got, err := c.Read(ctx)
	if err != nil || gotTyp != typ || string(got) != msg {
		t.Fatalf("echo of %.40q (%d bytes): got %v %.40q (%d bytes), %v", msg, len(msg), gotTyp, got, len(got), err)
	}
}
