package web_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"latchkey/internal/adminapi"
	"latchkey/internal/server"
	"latchkey/internal/token"
)

// chromium returns the path of a Chromium or Chrome binary, or "".
func chromium() string {
	if p := os.Getenv("LATCHKEY_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// outDir is where the browser test saves screenshots (ignored by git).
var outDir = filepath.Join("testdata", "output")

// live is a running latchkey serve: admin and gateway base URLs and the
// first admin token.
type live struct {
	admin, gateway, token string
	dir                   string // the data directory
}

// serve runs server.Run on free loopback ports until the test ends,
// with its Config changed by each of opts.
func serve(t *testing.T, opts ...func(*server.Config)) live {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithCancel(context.Background())
	var stdout syncBuffer
	errc := make(chan error, 1)
	cfg := server.Config{DataDir: dir, AdminAddr: "127.0.0.1:0", GatewayAddr: "127.0.0.1:0",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, o := range opts {
		o(&cfg)
	}
	go func() { errc <- server.Run(ctx, cfg, &stdout) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-errc:
		case <-time.After(20 * time.Second):
			t.Error("Run did not return within 20s")
		}
	})
	read := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		if !bytes.HasSuffix(b, []byte("\n")) {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	deadline := time.Now().Add(10 * time.Second)
	for read("admin.url") == "" || read("gateway.url") == "" {
		select {
		case err := <-errc:
			t.Fatalf("Run returned before listening: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the server did not listen within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	tok := regexp.MustCompile(token.Pattern).FindString(stdout.String())
	if tok == "" {
		t.Fatalf("no admin token printed:\n%s", stdout.String())
	}
	return live{read("admin.url"), read("gateway.url"), tok, dir}
}

// echo is an upstream on 127.0.0.1, registered as service "echo".
func echo(t *testing.T, l live) {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from upstream: %s", r.URL.Path)
	}))
	t.Cleanup(up.Close)
	cl := &adminapi.Client{Addr: l.admin, Token: l.token}
	if _, err := cl.AddService(t.Context(), adminapi.NewService{Name: "echo", Upstream: up.URL}); err != nil {
		t.Fatal(err)
	}
}

// call makes a gateway request with tok and returns its status and body.
func call(t *testing.T, l live, tok, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", l.gateway+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestBrowserFlow drives real headless Chromium through the console: sign
// in, onboard, grant, issue (and copy the token from the page), use the
// token at the gateway, find the request in the audit page, offboard with
// a confirmation, and see the next gateway request refused.
func TestBrowserFlow(t *testing.T) {
	exe := chromium()
	if exe == "" && os.Getenv("LATCHKEY_BROWSER_REQUIRED") != "" {
		t.Fatal("no Chromium binary found (looked for LATCHKEY_CHROMIUM, chromium, chromium-browser, google-chrome, headless-shell), and LATCHKEY_BROWSER_REQUIRED is set (test.sh installs chromium)")
	}
	if exe == "" {
		t.Skip("no Chromium binary found (looked for LATCHKEY_CHROMIUM, chromium, chromium-browser, google-chrome, headless-shell): browser test skipped")
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	l := serve(t)
	echo(t, l)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 900))
	actx, cancel := chromedp.NewExecAllocator(t.Context(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			buf, err := chromedp.FullScreenshot(100)(ctx, tg) // quality 100: PNG
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(outDir, name+".png"), buf, 0o644)
		})
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel chromedp.CSS) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	start := time.Now()

	do("sign in",
		chromedp.Navigate(l.admin+"/ui/login"),
		chromedp.WaitVisible(chromedp.ID("token")),
		shot("login"),
		// By keyboard: type the token and press Enter.
		chromedp.SendKeys(chromedp.ID("token"), l.token+kb.Enter),
		chromedp.WaitVisible(chromedp.ID("live")),
		shot("overview"),
	)
	do("onboard",
		chromedp.Navigate(l.admin+"/ui/contractors"),
		chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.SendKeys(chromedp.ID("name"), "alice"),
		chromedp.SendKeys(chromedp.ID("email"), "alice@example.com"),
		chromedp.SendKeys(chromedp.ID("sponsor"), "bob"),
		chromedp.SendKeys(chromedp.ID("until"), "10d"),
		shot("contractors"),
		chromedp.Submit(chromedp.ID("until")),
		chromedp.WaitVisible(chromedp.ID("state")),
	)
	do("grant",
		chromedp.SendKeys(chromedp.ID("scopes"), "echo:GET:/hello/**"),
		chromedp.Submit(chromedp.ID("scopes")),
		chromedp.WaitVisible(chromedp.CSS("td.scopes code")),
		shot("contractor"),
	)
	if got := text("#state"); got != "active" {
		t.Fatalf("state = %q, want active", got)
	}
	do("issue",
		chromedp.Click(chromedp.ID("issue-link")),
		chromedp.WaitVisible(chromedp.ID("ttl")),
		chromedp.SendKeys(chromedp.ID("scopes"), "echo:GET:/hello/**"),
		chromedp.SendKeys(chromedp.ID("ttl"), "1h"),
		chromedp.Submit(chromedp.ID("ttl")),
		chromedp.WaitVisible(chromedp.ID("token-text")),
		chromedp.Click(chromedp.ID("copy")),
		shot("issued"),
	)
	tok := text("#token-text")
	if !regexp.MustCompile(`^(?:`+token.Pattern+`)$`).MatchString(tok) || !strings.HasPrefix(tok, "lk_") {
		t.Fatalf("issued page shows %q, want a contractor token", tok)
	}
	if got := text("#copy"); got == "Copy token" {
		t.Errorf("the copy button did not react to a click")
	}
	if code, body := call(t, l, tok, "/echo/hello/world"); code != http.StatusOK || !strings.Contains(body, "/hello/world") {
		t.Fatalf("gateway with the issued token: %d %s", code, body)
	}

	do("audit",
		chromedp.Navigate(l.admin+"/ui/audit?contractor=alice&action=gateway.request"),
		chromedp.WaitVisible(chromedp.ID("records")),
		shot("audit"),
	)
	if rec := text("#records tbody"); !strings.Contains(rec, "/hello/world") || !strings.Contains(rec, "allow") {
		t.Fatalf("audit page does not show the gateway request:\n%s", rec)
	}
	do("proof",
		chromedp.Click(chromedp.CSS("#records tbody a")),
		chromedp.WaitVisible(chromedp.ID("checked")),
		shot("proof"),
	)
	if got := text("#checked"); !strings.HasPrefix(got, "The proof checks") {
		t.Errorf("proof page says %q", got)
	}
	do("verify",
		chromedp.Navigate(l.admin+"/ui/audit"),
		chromedp.WaitVisible(chromedp.ID("checkpoint")),
		chromedp.Click(chromedp.ID("verify-now")),
		chromedp.WaitVisible(chromedp.ID("verified")),
		shot("verified"),
	)
	if got := text("#verified"); !strings.HasPrefix(got, "Verified OK") {
		t.Errorf("after Verify now the audit page says %q", got)
	}

	do("offboard",
		chromedp.Navigate(l.admin+"/ui/contractors/alice"),
		chromedp.WaitVisible(chromedp.ID("offboard")),
		chromedp.Click(chromedp.ID("offboard")),
		chromedp.WaitVisible(chromedp.ID("confirm-offboard")),
		shot("offboard-confirm"),
		chromedp.Click(chromedp.ID("confirm-offboard")),
		chromedp.WaitVisible(chromedp.ID("offboarded")),
		shot("offboarded"),
	)
	if got := text("#state"); got != "offboarded" {
		t.Fatalf("state after offboarding = %q", got)
	}
	if code, body := call(t, l, tok, "/echo/hello/world"); code != http.StatusUnauthorized || !strings.Contains(body, "token_revoked") {
		t.Fatalf("gateway after offboarding: %d %s, want 401 token_revoked", code, body)
	}
	do("overview after",
		chromedp.Navigate(l.admin+"/ui/"),
		chromedp.WaitVisible(chromedp.ID("chart")),
		shot("overview-after"),
	)
	if got := text("#chart-desc"); !strings.Contains(got, "1 allowed and 1 denied") {
		t.Errorf("chart description = %q, want 1 allowed and 1 denied", got)
	}
	if got := text("#denials"); got != "1" {
		t.Errorf("denials in the last 24h = %q, want 1", got)
	}
	t.Logf("browser flow took %s; screenshots in %s", time.Since(start).Round(time.Millisecond), outDir)
}
