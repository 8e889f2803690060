package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"latchkey/internal/access"
	"latchkey/internal/adminapi"
	"latchkey/internal/store"
	"latchkey/internal/store/sqlite"
	"latchkey/internal/token"
)

// The tests here start real servers on 127.0.0.1:0 and wait for them to
// stop; none of them runs in parallel, so that TestRunAddressInUse can
// count the usage loops left running.

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// newDir returns a data directory path that does not exist yet.
func newDir(t *testing.T) string { return filepath.Join(t.TempDir(), "data") }

// testConfig is a Config for dir on any free port, logging to log.
func testConfig(dir string, log io.Writer) Config {
	return Config{DataDir: dir, AdminAddr: "127.0.0.1:0", GatewayAddr: "127.0.0.1:0", Log: slog.New(slog.NewTextHandler(log, nil))}
}

// poll calls cond until it returns "" or 5 seconds pass, and then fails
// with its last answer.
func poll(t *testing.T, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5s: %s", msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// running is a Run in progress.
type running struct {
	t      *testing.T
	url    string // admin API base URL, read from admin.url
	dir    string // data directory
	stdout *syncBuffer
	cancel context.CancelFunc
	errc   chan error
	once   sync.Once
	err    error
}

// start runs Run(cfg) and returns once admin.url holds the URL it listens
// on. The server is stopped when the test ends if the test did not.
func start(t *testing.T, cfg Config) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{t: t, dir: cfg.DataDir, stdout: &syncBuffer{}, cancel: cancel, errc: make(chan error, 1)}
	go func() { r.errc <- Run(ctx, cfg, r.stdout) }()
	t.Cleanup(func() { r.stop() })
	addrPath := filepath.Join(cfg.DataDir, addrFile)
	poll(t, func() string {
		select {
		case err := <-r.errc:
			r.errc <- err
			t.Fatalf("Run returned before listening: %v", err)
		default:
		}
		b, err := os.ReadFile(addrPath)
		if err != nil || !bytes.HasSuffix(b, []byte("\n")) {
			return fmt.Sprintf("%s not written (%v)", addrPath, err)
		}
		// The gateway listens too: its URL file is written just after.
		gwPath := filepath.Join(cfg.DataDir, gatewayFile)
		if g, err := os.ReadFile(gwPath); err != nil || !bytes.HasSuffix(g, []byte("\n")) {
			return fmt.Sprintf("%s not written (%v)", gwPath, err)
		}
		r.url = strings.TrimSuffix(string(b), "\n")
		return ""
	})
	return r
}

// stop cancels Run's context and returns what Run returned.
func (r *running) stop() error {
	r.once.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.errc:
		case <-time.After(20 * time.Second):
			r.t.Fatal("Run did not return within 20s of its context being cancelled")
		}
	})
	return r.err
}

// adminToken returns the one admin token Run printed.
func adminToken(t *testing.T, stdout string) string {
	t.Helper()
	found := regexp.MustCompile(token.Pattern).FindAllString(stdout, -1)
	if len(found) != 1 {
		t.Fatalf("stdout holds %d tokens, want 1:\n%s", len(found), stdout)
	}
	return found[0]
}

// secretOf is the SECRET part of a token's text (see package token).
func secretOf(t *testing.T, text string) string {
	t.Helper()
	p, err := token.Parse(text)
	if err != nil {
		t.Fatalf("token.Parse: %v", err)
	}
	s := strings.TrimPrefix(text, p.Kind.Prefix()+p.ID)
	return s[:32]
}

// whoami calls GET /v1/whoami with tok.
func whoami(t *testing.T, baseURL, tok string) (int, adminapi.Whoami) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", baseURL+"/v1/whoami", nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET /v1/whoami: %v", err)
	}
	defer resp.Body.Close()
	var w adminapi.Whoami
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&w); err != nil {
			t.Fatalf("decode whoami: %v", err)
		}
	}
	return resp.StatusCode, w
}

// openStore opens the store of a data directory no server is using.
func openStore(t *testing.T, dir string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(dir, dbFile))
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func perm(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// within fails unless got is within a minute of want.
func within(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if d := got.Sub(want).Abs(); d > time.Minute {
		t.Errorf("%s = %v, want %v ± 1m (off by %v)", what, got, want, d)
	}
}

func TestInit(t *testing.T) {
	tests := []struct {
		name string
		ttl  time.Duration
		want time.Duration // lifetime of the token
	}{
		{"default ttl", 0, 30 * 24 * time.Hour},
		{"ttl 2h", 2 * time.Hour, 2 * time.Hour},
		{"ttl 30d", 30 * 24 * time.Hour, 30 * 24 * time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := newDir(t)
			text, exp, err := Init(t.Context(), dir, "", tc.ttl)
			if err != nil {
				t.Fatalf("Init: %v", err)
			}
			if got := perm(t, dir); got != 0o700 {
				t.Errorf("data directory mode = %v, want 0700", got)
			}
			if got := perm(t, filepath.Join(dir, keyFile)); got != 0o600 {
				t.Errorf("seal.key mode = %v, want 0600", got)
			}
			p, err := token.Parse(text)
			if err != nil || p.Kind != token.Admin || !strings.HasPrefix(text, "lka_") {
				t.Fatalf("Init returned %q (parse error %v), want an lka_ token", text, err)
			}
			within(t, "expiry", exp, time.Now().Add(tc.want))

			// The store holds the token by its hash, as returned.
			tok, err := openStore(t, dir).Token(t.Context(), p.ID)
			if err != nil {
				t.Fatalf("Token %s: %v", p.ID, err)
			}
			want := store.Token{ID: p.ID, Admin: true, Scopes: []string{"admin:*"}, Hash: p.Hash(), ExpiresAt: exp}
			got := store.Token{ID: tok.ID, Admin: tok.Admin, Scopes: tok.Scopes, Hash: tok.Hash, ExpiresAt: tok.ExpiresAt}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("stored token (-want +got):\n%s", diff)
			}
		})
	}
}

func TestInitTwice(t *testing.T) {
	dir := newDir(t)
	if _, _, err := Init(t.Context(), dir, "", 0); err != nil {
		t.Fatalf("Init: %v", err)
	}
	text, _, err := Init(t.Context(), dir, "", 0)
	if !errors.Is(err, ErrInitialized) {
		t.Fatalf("second Init: got (%q, %v), want ErrInitialized", text, err)
	}
	if text != "" {
		t.Errorf("second Init returned a token")
	}
	toks, err := openStore(t, dir).Tokens(t.Context(), store.TokenFilter{})
	if err != nil || len(toks) != 1 {
		t.Errorf("after a second Init the store holds %d tokens (%v), want 1", len(toks), err)
	}
}

// TestInitRefusedTTL checks that an Init refused for its ttl leaves no
// store behind: the directory can then be initialised, and has a token.
func TestInitRefusedTTL(t *testing.T) {
	tests := []struct {
		name   string
		ttl    time.Duration
		reason string
	}{
		{"longer than the maximum", 31 * 24 * time.Hour, access.ReasonTTLTooLong},
		{"negative", -time.Hour, access.ReasonInvalid},
		{"under a second", time.Millisecond, access.ReasonInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := newDir(t)
			_, _, err := Init(t.Context(), dir, "", tc.ttl)
			var refused *access.Error
			if !errors.As(err, &refused) || refused.Reason != tc.reason {
				t.Fatalf("Init(ttl %v): got %v, want an access.Error %s", tc.ttl, err, tc.reason)
			}
			if _, err := os.Stat(filepath.Join(dir, dbFile)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("refused Init left %s behind (stat: %v)", dbFile, err)
			}
			if _, _, err := Init(t.Context(), dir, "", time.Hour); err != nil {
				t.Errorf("Init after a refused Init: %v", err)
			}
		})
	}
}

func TestRunRequiresDataDir(t *testing.T) {
	var out bytes.Buffer
	if err := Run(t.Context(), Config{AdminAddr: "127.0.0.1:0"}, &out); err == nil {
		t.Error("Run without a data directory: got nil error")
	}
}

// TestRunServes initialises an empty directory with Run, uses the admin
// API, stops, starts again and checks that no secret reached the disk or
// the log.
func TestRunServes(t *testing.T) {
	dir := newDir(t)
	var log syncBuffer
	before := time.Now()
	srv := start(t, testConfig(dir, &log))
	out := srv.stdout.String()
	tok := adminToken(t, out)
	if !strings.Contains(out, "latchkey: admin API listening on "+srv.url+"\n") {
		t.Errorf("stdout does not announce %s:\n%s", srv.url, out)
	}
	if got := perm(t, dir); got != 0o700 {
		t.Errorf("data directory mode = %v, want 0700", got)
	}
	if got := perm(t, filepath.Join(dir, keyFile)); got != 0o600 {
		t.Errorf("seal.key mode = %v, want 0600", got)
	}

	code, who := whoami(t, srv.url, tok)
	if code != http.StatusOK {
		t.Fatalf("GET /v1/whoami with the admin token: status %d, want 200", code)
	}
	p, _ := token.Parse(tok)
	if who.ID != p.ID || !cmp.Equal(who.Scopes, []string{"admin:*"}) {
		t.Errorf("whoami = %+v, want id %s with scopes [admin:*]", who, p.ID)
	}
	within(t, "token expiry", who.ExpiresAt, before.Add(access.DefaultMaxTTL))
	if code, _ := whoami(t, srv.url, ""); code != http.StatusUnauthorized {
		t.Errorf("GET /v1/whoami without a token: status %d, want 401", code)
	}
	noSecret(t, "data directory while serving", dir, tok)

	if err := srv.stop(); err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, addrFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("admin.url left after Run returned (stat: %v)", err)
	}
	// The use of the token was flushed before Run returned.
	stored, err := openStore(t, dir).Token(t.Context(), p.ID)
	if err != nil || stored.Uses != 1 {
		t.Errorf("admin token after Run: Uses %d (%v), want 1", stored.Uses, err)
	}

	// A second start prints no token; the first one still works.
	again := start(t, testConfig(dir, &log))
	if found := regexp.MustCompile(token.Pattern).FindString(again.stdout.String()); found != "" {
		t.Errorf("second start printed a token:\n%s", again.stdout)
	}
	if code, _ := whoami(t, again.url, tok); code != http.StatusOK {
		t.Errorf("GET /v1/whoami after restart: status %d, want 200", code)
	}
	if err := again.stop(); err != nil {
		t.Fatalf("second Run after cancel: %v", err)
	}

	noSecret(t, "data directory after Run", dir, tok)
	for _, s := range []string{tok, secretOf(t, tok)} {
		if strings.Contains(log.String(), s) {
			t.Errorf("application log holds %q:\n%s", s, log.String())
		}
	}
}

// noSecret fails if any file under dir holds the token text or its secret.
func noSecret(t *testing.T, what, dir, tok string) {
	t.Helper()
	secret := secretOf(t, tok)
	var files int
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for _, s := range []string{tok, secret} {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s: %s holds %q", what, path, s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if files < 2 {
		t.Fatalf("%s: read only %d files, want the store and seal.key at least", what, files)
	}
}

// TestRunFirstTokenMaxTTL checks that the token Run prints on first start
// lives no longer than the server's MaxTTL.
func TestRunFirstTokenMaxTTL(t *testing.T) {
	tests := []struct {
		name   string
		maxTTL time.Duration
		want   time.Duration
	}{
		{"shorter than the default", time.Hour, time.Hour},
		{"longer than the default", 90 * 24 * time.Hour, access.DefaultMaxTTL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(newDir(t), io.Discard)
			cfg.MaxTTL = tc.maxTTL
			before := time.Now()
			srv := start(t, cfg)
			code, who := whoami(t, srv.url, adminToken(t, srv.stdout.String()))
			if code != http.StatusOK {
				t.Fatalf("GET /v1/whoami: status %d", code)
			}
			within(t, "first token expiry", who.ExpiresAt, before.Add(tc.want))
			if err := srv.stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
		})
	}
}

// TestRunDrainsInFlight stops the server while a request is in its
// handler and checks that the request completes and Run returns nil.
func TestRunDrainsInFlight(t *testing.T) {
	dir := newDir(t)
	srv := start(t, testConfig(dir, io.Discard))
	tok := adminToken(t, srv.stdout.String())
	host := strings.TrimPrefix(srv.url, "http://")

	// With Expect: 100-continue the server answers 100 only when the
	// handler first reads the body: then the request is in flight.
	body := fmt.Sprintf(`{"name":"carol","email":"carol@example.com","sponsor":"sam","until":%q}`,
		time.Now().Add(48*time.Hour).UTC().Format(time.RFC3339))
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(conn, "POST /v1/contractors HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", host, tok, len(body))
	br := bufio.NewReader(conn)
	status, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(status, "HTTP/1.1 100 ") {
		t.Fatalf("want 100 Continue, got %q (%v)", status, err)
	}
	if blank, err := br.ReadString('\n'); blank != "\r\n" || err != nil {
		t.Fatalf("want the end of the 100 response, got %q (%v)", blank, err)
	}

	// Cancel, and wait for the listener to close: shutdown has begun.
	srv.cancel()
	poll(t, func() string {
		c, err := net.Dial("tcp", host)
		if err != nil {
			return ""
		}
		c.Close()
		return "the listener still accepts connections after cancel"
	})
	select {
	case err := <-srv.errc:
		srv.errc <- err
		t.Fatalf("Run returned (%v) with a request in flight", err)
	default:
	}

	if _, err := io.WriteString(conn, body); err != nil {
		t.Fatalf("write body: %v", err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("in-flight POST /v1/contractors: status %d, want 201: %s", resp.StatusCode, got)
	}
	if err := srv.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, addrFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("admin.url left after Run returned (stat: %v)", err)
	}
	if _, err := openStore(t, dir).Contractor(t.Context(), "carol"); err != nil {
		t.Errorf("contractor created by the in-flight request: %v", err)
	}
}

// recorderLoops counts the usage flush loops running in this process:
// the goroutines usage.New started. (A goroutine not yet scheduled shows
// only a wrapper frame, so its creator is what is counted.)
func recorderLoops() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "created by latchkey/internal/usage.New ")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// TestRunAddressInUse starts a second server on the address and data
// directory of a running one: it fails without disturbing the first and
// leaves nothing running.
func TestRunAddressInUse(t *testing.T) {
	dir := newDir(t)
	first := start(t, testConfig(dir, io.Discard))
	tok := adminToken(t, first.stdout.String())
	loops := recorderLoops()

	addr := strings.TrimPrefix(first.url, "http://")
	var out bytes.Buffer
	err := Run(t.Context(), Config{DataDir: dir, AdminAddr: addr, GatewayAddr: "127.0.0.1:0", Log: slog.New(slog.DiscardHandler)}, &out)
	if err == nil || !strings.Contains(err.Error(), "failed to listen on "+addr) {
		t.Fatalf("Run on an address in use: got %v, want a failure to listen on %s", err, addr)
	}
	if out.Len() != 0 {
		t.Errorf("failed Run wrote to stdout: %q", out.String())
	}
	poll(t, func() string {
		if n := recorderLoops(); n != loops {
			return fmt.Sprintf("%d usage loops running after the failed Run, want %d", n, loops)
		}
		return ""
	})
	b, err := os.ReadFile(filepath.Join(dir, addrFile))
	if err != nil || string(b) != first.url+"\n" {
		t.Errorf("admin.url after the failed Run: %q (%v), want %s", b, err, first.url)
	}
	if code, _ := whoami(t, first.url, tok); code != http.StatusOK {
		t.Errorf("first server after the failed Run: status %d, want 200", code)
	}
	if err := first.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestRunRefusesOpenKey checks that Run will not start with a seal.key
// readable by others.
func TestRunRefusesOpenKey(t *testing.T) {
	dir := newDir(t)
	if _, _, err := Init(t.Context(), dir, "", 0); err != nil {
		t.Fatalf("Init: %v", err)
	}
	if err := os.Chmod(filepath.Join(dir, keyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := Run(t.Context(), testConfig(dir, io.Discard), &out)
	if err == nil || !strings.Contains(err.Error(), "chmod") {
		t.Fatalf("Run with seal.key mode 0644: got %v, want an error mentioning chmod", err)
	}
	if out.Len() != 0 {
		t.Errorf("refused Run wrote to stdout: %q", out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, addrFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("refused Run wrote admin.url (stat: %v)", err)
	}
}
