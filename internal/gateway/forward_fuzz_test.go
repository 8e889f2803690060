package gateway_test

import (
	"bufio"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"latchkey/internal/gateway"
)

// fuzzScopes are the token's scopes in FuzzForwardedPath: wildcards,
// literals with escapes, the root and several methods, so that allowed and
// refused paths lie close together.
var fuzzScopes = []string{
	"billing:GET,POST:/v1/public/**",
	"billing:DELETE:/v1/items/*",
	"billing:read:/v1/items/*/notes",
	"billing:PATCH:/v1/%41/*/caf%C3%A9",
	"billing:PUT:/",
}

// FuzzForwardedPath sends "METHOD TARGET HTTP/1.1" with a valid token to a
// running gateway and checks that whatever reaches the upstream is what
// was authorized: one request, with the same method, whose path is the
// service's base path followed by the request path after "/billing", byte
// for byte, which CheckPath accepts and one of the token's scopes matches;
// and with the query as sent (unless it has parameters that ReverseProxy
// drops, see TestHostile).
func FuzzForwardedPath(f *testing.F) {
	for _, tc := range hostileCases() {
		if tc.raw == "" && len(tc.target) < 8<<10 {
			f.Add(tc.method, tc.target)
		}
	}
	for _, s := range []struct{ method, target string }{
		{"DELETE", "/billing/v1/items/42"},
		{"HEAD", "/billing/v1/items/42/notes"},
		{"PATCH", "/billing/v1/%41/x/caf%C3%A9"},
		{"PATCH", "/billing/v1/A/x/café"},
		{"PUT", "/billing"},
		{"PUT", "/billing/"},
		{"PUT", "/billing/?"},
		{"GET", "/billing/v1/public/?a=b&c=%41"},
	} {
		f.Add(s.method, s.target)
	}
	r := newRig(f, fuzzScopes...)
	c := &fuzzConn{addr: r.gw.Listener.Addr().String()}
	f.Cleanup(c.close)
	f.Fuzz(func(t *testing.T, method, target string) {
		if method == "" || strings.ContainsAny(method, " \r\n") || strings.ContainsAny(target, "\r\n") || len(target) > 8<<10 {
			return // not one request line
		}
		raw := method + " " + target + " HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer " + r.token + "\r\n\r\n"
		a, reset, err := c.roundTrip(raw, method)
		if err != nil {
			t.Fatalf("%s %q: %v", method, target, err)
		}
		got, errs := r.up.take()
		for _, e := range errs {
			t.Errorf("upstream received bytes it could not parse: %s", e)
		}
		if len(got) == 0 {
			if a.body == "upstream says hi" {
				t.Fatalf("%s %q: answered by the upstream, which saw no request", method, target)
			}
			return
		}
		if len(got) > 1 {
			t.Fatalf("%s %q: upstream received %d requests", method, target, len(got))
		}
		r.check(t, got)
		checkForwarded(t, method, target, got[0])
		if !reset && a.status != 200 {
			t.Errorf("%s %q: forwarded, but answered %d %s", method, target, a.status, a.body)
		}
	})
}

// checkForwarded checks that g is exactly the request METHOD TARGET as
// the gateway must forward it.
func checkForwarded(t *testing.T, method, target string, g received) {
	t.Helper()
	p, q, hasQuery := strings.Cut(target, "?")
	if err := gateway.CheckPath(p); err != nil {
		t.Errorf("%s %q forwarded as %q, but CheckPath refuses it: %v", method, target, g.uri, err)
	}
	rest, ok := strings.CutPrefix(p, "/billing")
	switch {
	case !ok || (rest != "" && rest[0] != '/'):
		t.Fatalf("%s %q forwarded as %q, but it does not name service billing", method, target, g.uri)
	case rest == "":
		rest = "/"
	}
	want := "/base" + rest
	gp, gq, gotQuery := strings.Cut(g.uri, "?")
	if gp != want {
		t.Errorf("%s %q forwarded with path %q, want %q", method, target, gp, want)
	}
	if hasQuery && !dropsParams(q) && (gq != q || !gotQuery) {
		t.Errorf("%s %q forwarded with query %q, want %q", method, target, g.uri, q)
	}
	if !hasQuery && gotQuery {
		t.Errorf("%s %q forwarded with a query: %q", method, target, g.uri)
	}
	if g.method != method {
		t.Errorf("%s %q forwarded as method %q", method, target, g.method)
	}
}

// dropsParams reports whether ReverseProxy rewrites query q, dropping
// parameters it cannot parse: those with ";" or an invalid escape.
func dropsParams(q string) bool {
	for i := 0; i < len(q); i++ {
		switch q[i] {
		case ';':
			return true
		case '%':
			if i+2 >= len(q) || !isHex(q[i+1]) || !isHex(q[i+2]) {
				return true
			}
		}
	}
	return false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// fuzzConn is a keep-alive client connection to the gateway, redialled
// after the gateway closes it.
type fuzzConn struct {
	addr string
	c    net.Conn
	br   *bufio.Reader
}

// roundTrip writes one request and reads its response. When net/http
// refuses a malformed request it closes the connection at once, and bytes
// of the request it had not read yet make the kernel reset it, which can
// discard the 400 before the client reads it: roundTrip then reports
// reset, and no answer.
func (f *fuzzConn) roundTrip(raw, method string) (a answer, reset bool, err error) {
	if f.c == nil {
		c, err := net.Dial("tcp", f.addr)
		if err != nil {
			return answer{}, false, err
		}
		f.c, f.br = c, bufio.NewReader(c)
	}
	f.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err = f.c.Write([]byte(raw)); err == nil {
		a, err = readAnswer(f.br, method)
	}
	if err != nil || a.close {
		f.close()
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return answer{}, true, nil
	}
	return a, false, err
}

func (f *fuzzConn) close() {
	if f.c != nil {
		f.c.Close()
		f.c, f.br = nil, nil
	}
}
