package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/coder/websocket"

	"latchkey/internal/access"
)

// stepper is an upstream that streams events one at a time: it writes an
// event, flushes it, and writes the next only after the test has sent on
// next (that is, after the client has received the event). A gateway that
// buffered the response would deadlock it, which the tests' liveness bound
// turns into a failure.
type stepper struct {
	ctype   string // Content-Type of the stream
	n       int    // events to write; 0: no end (the stream is open until cut)
	next    chan struct{}
	written atomic.Int64  // events written so far
	done    chan struct{} // closed when the handler returns
}

func newStepper(ctype string, n int) *stepper {
	return &stepper{ctype: ctype, n: n, next: make(chan struct{}), done: make(chan struct{})}
}

// event is the text of event i.
func (s *stepper) event(i int) string {
	if s.ctype == "text/event-stream" {
		return fmt.Sprintf("id: %d\ndata: event %d\n\n", i, i)
	}
	return fmt.Sprintf("{\"event\":%d}\n", i)
}

func (s *stepper) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer close(s.done)
	w.Header().Set("Content-Type", s.ctype)
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	for i := 0; s.n == 0 || i < s.n; i++ {
		s.written.Add(1)
		if _, err := io.WriteString(w, s.event(i)); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-s.next:
		case <-r.Context().Done():
			return
		}
	}
}

// readSteps reads s's events from body one at a time, checking that each
// arrives while the upstream is still waiting to write the next one, and
// then that the stream ends cleanly.
func readSteps(t *testing.T, ctx context.Context, s *stepper, body io.Reader) {
	t.Helper()
	for i := range s.n {
		want := s.event(i)
		got := make([]byte, len(want))
		if _, err := io.ReadFull(body, got); err != nil {
			t.Fatalf("event %d not received while the upstream waited for it to arrive (held back by the gateway?): %v", i, err)
		}
		if string(got) != want {
			t.Fatalf("event %d = %q, want %q", i, got, want)
		}
		if n := s.written.Load(); n != int64(i+1) {
			t.Fatalf("after event %d the upstream had written %d events, want %d", i, n, i+1)
		}
		select {
		case s.next <- struct{}{}:
		case <-ctx.Done():
			t.Fatalf("upstream gone after event %d", i)
		}
	}
	if rest, err := io.ReadAll(body); err != nil || len(rest) != 0 {
		t.Fatalf("after the last event: %q, %v; want a clean end", rest, err)
	}
}

// getStream starts a streaming GET of path on the gateway at base with
// client, and checks the response head.
func getStream(t *testing.T, ctx context.Context, client *http.Client, base, path, text string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+text)
	resp, err := client.Do(req)
	if err != nil && ctx.Err() != nil {
		t.Fatalf("no response head within %v (held back by the gateway?): %v", liveness, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d %s", resp.StatusCode, b)
	}
	return resp
}

// TestStream checks that each event of a streamed response reaches the
// client as soon as the upstream flushes it: the upstream writes the next
// event only after the client has the previous one.
func TestStream(t *testing.T) {
	for _, ctype := range []string{"text/event-stream", "application/x-ndjson"} {
		t.Run(ctype, func(t *testing.T) {
			s := newStepper(ctype, 5)
			e, _ := newEnvWith(t, s)
			text, _ := e.issue(t, access.IssueRequest{Scopes: []string{"billing:GET:/v1/events"}})
			ctx, cancel := context.WithTimeout(context.Background(), liveness)
			defer cancel()
			resp := getStream(t, ctx, e.gw.Client(), e.gw.URL, "/billing/v1/events", text)
			if got := resp.Header.Get("Content-Type"); got != ctype {
				t.Errorf("Content-Type %q, want %q", got, ctype)
			}
			readSteps(t, ctx, s, resp.Body)
			checkUpstreamSaw(t, e, "/base/v1/events", text)
		})
	}
}

// helloUpstream answers "upstream says hi", echoing any request body after it.
var helloUpstream = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	io.WriteString(w, "upstream says hi")
	io.Copy(w, r.Body)
})

// TestHTTP2 checks requests reaching the gateway over HTTP/2, with TLS
// (negotiated by ALPN) and without (h2c, prior knowledge): each is
// forwarded with the credential injected and the token removed, with its
// body, and a streamed response arrives event by event.
func TestHTTP2(t *testing.T) {
	tests := []struct {
		name  string
		start func(h http.Handler) (*httptest.Server, *http.Client)
	}{
		{"tls", func(h http.Handler) (*httptest.Server, *http.Client) {
			srv := httptest.NewUnstartedServer(h)
			srv.EnableHTTP2 = true
			srv.StartTLS()
			return srv, srv.Client()
		}},
		{"h2c", func(h http.Handler) (*httptest.Server, *http.Client) {
			srv := httptest.NewUnstartedServer(h)
			srv.Config.Protocols = new(http.Protocols)
			srv.Config.Protocols.SetHTTP1(true)
			srv.Config.Protocols.SetUnencryptedHTTP2(true)
			srv.Start()
			tr := &http.Transport{Protocols: new(http.Protocols)}
			tr.Protocols.SetUnencryptedHTTP2(true) // and nothing else: prior knowledge
			return srv, &http.Client{Transport: tr}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStepper("text/event-stream", 3)
			e, h := newEnvWith(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/base/v1/events" {
					s.ServeHTTP(w, r)
					return
				}
				helloUpstream(w, r)
			}))
			srv, client := tt.start(h)
			defer srv.Close()
			defer client.CloseIdleConnections()
			text, _ := e.issue(t, access.IssueRequest{Scopes: []string{"billing:*:/v1/**"}})
			ctx, cancel := context.WithTimeout(context.Background(), liveness)
			defer cancel()

			req, err := http.NewRequestWithContext(ctx, "POST", srv.URL+"/billing/v1/notes", strings.NewReader(" and the body came through"))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+text)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || string(body) != "upstream says hi and the body came through" {
				t.Fatalf("got %d %q (%v), want 200 with the upstream's answer", resp.StatusCode, body, err)
			}
			if resp.ProtoMajor != 2 {
				t.Fatalf("client spoke %s to the gateway, want HTTP/2", resp.Proto)
			}
			checkUpstreamSaw(t, e, "/base/v1/notes", text)

			resp = getStream(t, ctx, client, srv.URL, "/billing/v1/events", text)
			if resp.ProtoMajor != 2 {
				t.Fatalf("stream over %s, want HTTP/2", resp.Proto)
			}
			readSteps(t, ctx, s, resp.Body)
		})
	}
}

// TestWebSocket checks a WebSocket upgrade through the gateway: messages
// flow both ways, and the upstream sees the credential, not the token.
func TestWebSocket(t *testing.T) {
	up := newWSEcho()
	e, _ := newEnvWith(t, up)
	text, _ := e.issue(t, access.IssueRequest{Scopes: []string{"billing:GET:/v1/ws"}})
	c := dialWS(t, e, "/billing/v1/ws", text) // greeting from the upstream, one echo
	ctx, cancel := context.WithTimeout(context.Background(), liveness)
	defer cancel()
	for i := range 5 {
		echo(t, ctx, c, websocket.MessageText, fmt.Sprintf("message %d", i))
	}
	echo(t, ctx, c, websocket.MessageBinary, "\x00\x01\xff binary")
	echo(t, ctx, c, websocket.MessageText, strings.Repeat("large ", 50000)) // many frames and TCP segments
	checkUpstreamSaw(t, e, "/base/v1/ws", text)
	if got := e.last.Load().header.Get("Upgrade"); got != "websocket" {
		t.Errorf("upstream Upgrade header %q, want websocket", got)
	}
	if err := c.Close(websocket.StatusNormalClosure, "done"); err != nil {
		t.Fatalf("close handshake: %v", err)
	}
	select {
	case <-up.ended:
	case <-ctx.Done():
		t.Fatal("the upstream WebSocket stayed open after the client closed it")
	}
}

// TestWebSocketDenied checks that a WebSocket upgrade is authorized like
// any request: refused with the JSON denial, never reaching the upstream.
func TestWebSocketDenied(t *testing.T) {
	e, _ := newEnvWith(t, newWSEcho())
	narrow, _ := e.issue(t, access.IssueRequest{Scopes: []string{"billing:GET:/v1/invoices/**"}})
	post, _ := e.issue(t, access.IssueRequest{Scopes: []string{"billing:POST:/v1/ws"}})
	revoked, tok := e.issue(t, access.IssueRequest{Scopes: []string{"billing:GET:/v1/ws"}})
	if err := e.a.Revoke(context.Background(), root, tok.ID); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, auth string
		status     int
		reason     string
	}{
		{"no token", "", 401, "token_missing"},
		{"path not in scope", "Bearer " + narrow, 403, "scope_denied"},
		{"method not in scope", "Bearer " + post, 403, "scope_denied"},
		{"revoked", "Bearer " + revoked, 401, "token_revoked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), liveness)
			defer cancel()
			opts := &websocket.DialOptions{HTTPHeader: http.Header{}}
			if tt.auth != "" {
				opts.HTTPHeader.Set("Authorization", tt.auth)
			}
			c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.gw.URL, "http")+"/billing/v1/ws", opts)
			if err == nil {
				c.CloseNow()
				t.Fatal("upgrade succeeded")
			}
			if resp == nil {
				t.Fatalf("no response: %v", err)
			}
			var d struct{ Error, Message string }
			body, _ := io.ReadAll(resp.Body)
			if jerr := json.Unmarshal(body, &d); jerr != nil || resp.StatusCode != tt.status || d.Error != tt.reason {
				t.Fatalf("got %d %s, want %d %s", resp.StatusCode, body, tt.status, tt.reason)
			}
			if n := e.hits.Load(); n != 0 {
				t.Fatalf("a refused upgrade reached the upstream (%d requests)", n)
			}
		})
	}
}

// TestShutdownDrains checks that http.Server.Shutdown in front of the
// gateway lets a request in flight finish, and that no new connection is
// accepted once shutdown has begun.
func TestShutdownDrains(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	e, h := newEnvWith(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "finished")
	}))
	text, _ := e.issue(t, access.IssueRequest{Scopes: []string{"billing:GET:/v1/slow"}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	srv := &http.Server{Handler: h}
	shuttingDown := make(chan struct{})
	srv.RegisterOnShutdown(func() { close(shuttingDown) }) // runs once the listeners are closed
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	ctx, cancel := context.WithTimeout(context.Background(), liveness)
	defer cancel()

	type result struct {
		status int
		body   string
		err    error
	}
	got := make(chan result, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/billing/v1/slow", nil)
		req.Header.Set("Authorization", "Bearer "+text)
		resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{resp.StatusCode, string(b), err}
	}()
	wait(t, ctx, entered, "the request to reach the upstream")

	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(ctx) }()
	wait(t, ctx, shuttingDown, "Shutdown to begin")
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("a new connection was accepted during shutdown")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) with a request in flight", err)
	default:
	}

	close(release)
	var r result
	select {
	case r = <-got:
	case <-ctx.Done():
		t.Fatal("the request in flight did not finish")
	}
	if r.err != nil || r.status != 200 || r.body != "finished" {
		t.Fatalf("request in flight: %d %q, %v; want 200 finished", r.status, r.body, r.err)
	}
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Shutdown did not return after the last request finished")
	}
	if err := <-served; err != http.ErrServerClosed {
		t.Fatalf("Serve returned %v, want ErrServerClosed", err)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("a new connection was accepted after shutdown")
	}
}

// wait waits for ch to be closed, failing the test if ctx ends first.
func wait(t *testing.T, ctx context.Context, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-ctx.Done():
		t.Fatalf("timed out waiting for %s", what)
	}
}
