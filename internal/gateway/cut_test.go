package gateway_test

import (
	"context"
	"crypto/rand"
	"io"
	"testing"
	"time"

	"github.com/coder/websocket"

	"latchkey/internal/access"
	"latchkey/internal/store"
	"latchkey/internal/token"
)

// These tests check the requirement "a long-lived stream or WebSocket is
// cut when its token expires or is revoked": the gateway bounds each
// forwarded request by its token's end (expiry or engagement end, timed
// from the Authority's clock, which stays fixed here, by a real timer) and
// cuts every request in flight of a token at once when it is revoked,
// rotated out or its contractor offboarded. Each waits at most liveness
// for the cut; none asserts how soon it came.

// waitWSCut fails unless the gateway closes c, and the upstream side of
// it, within liveness. why says what should have cut it.
func waitWSCut(t *testing.T, c *websocket.Conn, up *wsEcho, why string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), liveness)
	defer cancel()
	_, msg, err := c.Read(ctx)
	if err == nil {
		t.Fatalf("got message %q, want the WebSocket cut after %s", msg, why)
	}
	if ctx.Err() != nil {
		t.Fatalf("WebSocket still open %v after %s: not cut", liveness, why)
	}
	select {
	case <-up.ended:
	case <-ctx.Done():
		t.Fatalf("upstream side of the WebSocket still open %v after %s", liveness, why)
	}
}

func TestCutWebSocketOnExpiry(t *testing.T) {
	t.Parallel()
	up := newWSEcho()
	e, _ := newEnvWith(t, up)
	text, _ := e.issue(t, access.IssueRequest{Scopes: []string{"billing:GET:/v1/ws"}, TTL: 2 * time.Second})
	c := dialWS(t, e, "/billing/v1/ws", text)
	waitWSCut(t, c, up, "its token expired")
}

// TestCutWebSocketOnEngagementEnd uses a token stored directly with an
// expiry past its contractor's engagement end (Issue never creates one):
// the engagement end, not the token's expiry, must cut the stream.
func TestCutWebSocketOnEngagementEnd(t *testing.T) {
	t.Parallel()
	up := newWSEcho()
	e, _ := newEnvWith(t, up)
	ctx := context.Background()
	now := e.clock.Now()
	if _, err := e.a.AddContractor(ctx, root, access.NewContractor{Name: "carol", Email: "carol@example.com", Sponsor: "bob", Until: now.Add(2 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	text, p, err := token.Generate(token.Contractor, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	st := store.Token{ID: p.ID, Contractor: "carol", Scopes: []string{"billing:GET:/v1/ws"}, Hash: p.Hash(),
		ExpiresAt: now.Add(time.Hour), CreatedAt: now, CreatedBy: "root"}
	if err := e.st.CreateToken(ctx, st); err != nil {
		t.Fatal(err)
	}
	c := dialWS(t, e, "/billing/v1/ws", text)
	waitWSCut(t, c, up, "its contractor's engagement ended")
}

// TestCutWebSocketOnRevoke also checks that a revocation cuts only the
// revoked token's streams: another token's WebSocket stays up.
func TestCutWebSocketOnRevoke(t *testing.T) {
	t.Parallel()
	up := newWSEcho()
	e, _ := newEnvWith(t, up)
	text, tok := e.issue(t, access.IssueRequest{Scopes: []string{"billing:GET:/v1/ws"}})
	other, _ := e.issue(t, access.IssueRequest{Scopes: []string{"billing:GET:/v1/ws"}})
	c := dialWS(t, e, "/billing/v1/ws", text)
	kept := dialWS(t, e, "/billing/v1/ws", other)
	if err := e.a.Revoke(context.Background(), root, tok.ID); err != nil {
		t.Fatal(err)
	}
	waitWSCut(t, c, up, "its token was revoked")
	ctx, cancel := context.WithTimeout(context.Background(), liveness)
	defer cancel()
	echo(t, ctx, kept, websocket.MessageText, "still here")
}

func TestCutWebSocketOnRotate(t *testing.T) {
	t.Parallel()
	up := newWSEcho()
	e, _ := newEnvWith(t, up)
	text, tok := e.issue(t, access.IssueRequest{Scopes: []string{"billing:GET:/v1/ws"}})
	c := dialWS(t, e, "/billing/v1/ws", text)
	if _, err := e.a.Rotate(context.Background(), root, tok.ID, 0); err != nil {
		t.Fatal(err)
	}
	waitWSCut(t, c, up, "its token was rotated with no grace")
}

// TestCutWebSocketOnRotateGrace checks that a rotation with a grace
// re-times the old token's streams to the end of the grace.
func TestCutWebSocketOnRotateGrace(t *testing.T) {
	t.Parallel()
	up := newWSEcho()
	e, _ := newEnvWith(t, up)
	text, tok := e.issue(t, access.IssueRequest{Scopes: []string{"billing:GET:/v1/ws"}})
	c := dialWS(t, e, "/billing/v1/ws", text)
	if _, err := e.a.Rotate(context.Background(), root, tok.ID, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	waitWSCut(t, c, up, "its token was rotated with a 2s grace")
}

func TestCutWebSocketOnOffboard(t *testing.T) {
	t.Parallel()
	up := newWSEcho()
	e, _ := newEnvWith(t, up)
	text, _ := e.issue(t, access.IssueRequest{Scopes: []string{"billing:GET:/v1/ws"}})
	c := dialWS(t, e, "/billing/v1/ws", text)
	if _, err := e.a.Offboard(context.Background(), root, "alice"); err != nil {
		t.Fatal(err)
	}
	waitWSCut(t, c, up, "its contractor was offboarded")
}

// TestCutStreamOnRevoke checks that a streamed (SSE) response is cut, on
// the client's side and the upstream's, when its token is revoked.
func TestCutStreamOnRevoke(t *testing.T) {
	t.Parallel()
	s := newStepper("text/event-stream", 0) // one event, then open until cut
	e, _ := newEnvWith(t, s)
	text, tok := e.issue(t, access.IssueRequest{Scopes: []string{"billing:GET:/v1/events"}})
	ctx, cancel := context.WithTimeout(context.Background(), liveness)
	defer cancel()
	resp := getStream(t, ctx, e.gw.Client(), e.gw.URL, "/billing/v1/events", text)
	want := s.event(0)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(resp.Body, got); err != nil || string(got) != want {
		t.Fatalf("first event %q, %v; want %q", got, err, want)
	}
	if err := e.a.Revoke(context.Background(), root, tok.ID); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(resp.Body)
	if ctx.Err() != nil {
		t.Fatalf("stream still open %v after its token was revoked: not cut", liveness)
	}
	if len(rest) != 0 {
		t.Fatalf("got %q after the revocation, want the stream cut", rest)
	}
	t.Logf("stream ended with %v", err) // an abort (unexpected EOF) or a clean end: either way cut
	select {
	case <-s.done:
	case <-ctx.Done():
		t.Fatalf("upstream request still open %v after its token was revoked", liveness)
	}
}
