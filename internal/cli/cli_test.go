package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"latchkey/internal/access"
	"latchkey/internal/adminapi"
)

func TestExitCode(t *testing.T) {
	apiErr := &adminapi.APIError{Status: 403, Problem: adminapi.Problem{Error: "forbidden", Message: "no"}}
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, ExitOK},
		{"usage", usagef("--ttl: bad"), ExitUsage},
		{"wrapped usage", fmt.Errorf("x: %w", usagef("bad")), ExitUsage},
		{"api error", apiErr, ExitFailed},
		{"wrapped api error", fmt.Errorf("x: %w", apiErr), ExitFailed},
		{"operation", &opError{errors.New("cannot reach latchkey")}, ExitFailed},
		{"cobra parse error", errors.New(`unknown command "x" for "latchkey"`), ExitUsage},
	}
	for _, tt := range tests {
		if got := ExitCode(tt.err); got != tt.want {
			t.Errorf("%s: ExitCode(%v) = %d, want %d", tt.name, tt.err, got, tt.want)
		}
	}
}

func TestMessage(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&adminapi.APIError{Status: 400, Problem: adminapi.Problem{Error: "ttl_missing", Message: "a --ttl is required"}},
			"a --ttl is required (ttl_missing)"},
		{&opError{&adminapi.APIError{Status: 500, Problem: adminapi.Problem{Error: "internal"}}},
			"internal (HTTP 500) (internal)"},
		{errors.New("two\nlines\tand a tab\r"), "two lines and a tab"},
		{usagef("--ttl: bad"), "--ttl: bad"},
		{errors.New(`unknown command "lka_0123456789ABabcdefghijklmnopqrstuvwxyzABCDEF000000" for "latchkey"`),
			`unknown command "lka_0123456789AB…" for "latchkey"`},
	}
	for _, tt := range tests {
		if got := Message(tt.err); got != tt.want {
			t.Errorf("Message(%q) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestParseHeader(t *testing.T) {
	good := []struct {
		in   string
		want access.Header
	}{
		{"Authorization: Bearer abc", access.Header{Name: "Authorization", Value: "Bearer abc"}},
		{"  X-Api-Key :  k:e:y  ", access.Header{Name: "X-Api-Key", Value: "k:e:y"}},
		{"X-A:b\tc", access.Header{Name: "X-A", Value: "b\tc"}},
	}
	for _, tt := range good {
		got, err := parseHeader(tt.in)
		if err != nil {
			t.Errorf("parseHeader(%q): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("parseHeader(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
	const secret = "s3cr3t-VALUE"
	bad := []string{
		"Authorization Bearer " + secret, // no colon: all of it may be secret
		": " + secret,                    // no name
		"Bad Name: " + secret,            // space in name
		"X-Key:   ",                      // empty value
		"X-Key: " + secret + "\r\nX-Evil: 1",
		"X-Key: " + secret + "\x00",
		"",
	}
	for _, in := range bad {
		_, err := parseHeader(in)
		if err == nil {
			t.Errorf("parseHeader(%q) succeeded, want an error", in)
			continue
		}
		if ExitCode(err) != ExitUsage {
			t.Errorf("parseHeader(%q): exit code %d, want %d", in, ExitCode(err), ExitUsage)
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("parseHeader(%q): error %q echoes the value", in, err)
		}
	}
}

func TestOutputFlag(t *testing.T) {
	o := &output{value: formatTable, allowed: []string{formatTable, formatJSON}}
	for _, ok := range []string{"json", "table"} {
		if err := o.Set(ok); err != nil || o.String() != ok {
			t.Errorf("Set(%q) = %v, value %q", ok, err, o.String())
		}
	}
	for _, bad := range []string{"", "JSON", "text", "yaml", "json "} {
		if err := o.Set(bad); err == nil {
			t.Errorf("Set(%q) succeeded, want an error", bad)
		}
	}
	if o.String() != "table" {
		t.Errorf("a refused Set changed the value to %q", o.String())
	}
}

func TestTokenID(t *testing.T) {
	const text = "lk_0123456789ABsecretsecretsecretsecretsecretse000000"
	if _, err := tokenID(text); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("tokenID(bad checksum) = %v, want an error without the text", err)
	}
	for _, bad := range []string{"", "short", "0123456789AB!", "0123456789ABC"} {
		if _, err := tokenID(bad); ExitCode(err) != ExitUsage {
			t.Errorf("tokenID(%q) = %v, want a usage error", bad, err)
		}
	}
	if id, err := tokenID("0123456789AB"); err != nil || id != "0123456789AB" {
		t.Errorf("tokenID(valid id) = %q, %v", id, err)
	}
}

// run runs the command line against addr with a token and returns the
// exit code, stdout and stderr.
func run(t *testing.T, addr string, args ...string) (int, string, string) {
	t.Helper()
	t.Setenv(envAddr, addr)
	t.Setenv(envToken, "lka_test")
	var stdout, stderr bytes.Buffer
	err := Run(context.Background(), args, &stdout, &stderr)
	return ExitCode(err), stdout.String(), stderr.String()
}

// closedAddr returns the URL of a port nobody listens on.
func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + ln.Addr().String()
	ln.Close()
	return addr
}

// fakeAPI answers every request with status and body, and records the
// requests' paths and Authorization headers.
func fakeAPI(t *testing.T, status int, body string) (*httptest.Server, *[]string) {
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, &seen
}

func TestRunExitCodes(t *testing.T) {
	closed := closedAddr(t)
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string // regexp
	}{
		{"help", []string{}, ExitOK, `\A\z`},
		{"unknown command", []string{"bogus"}, ExitUsage, `\Alatchkey: unknown command "bogus" for "latchkey"\n\z`},
		{"unknown subcommand", []string{"grant", "bogus"}, ExitUsage, `unknown command "bogus" for "latchkey grant"\n\z`},
		{"unknown flag", []string{"token", "list", "--nope"}, ExitUsage, `\Alatchkey: unknown flag: --nope\n\z`},
		{"missing arg", []string{"token", "revoke"}, ExitUsage, `accepts 1 arg\(s\), received 0\n\z`},
		{"missing required flag", []string{"report", "unused"}, ExitUsage, `required flag\(s\) "idle" not set\n\z`},
		{"bad output", []string{"token", "list", "-o", "xml"}, ExitUsage, `want table or json\n\z`},
		{"bad ttl", []string{"token", "issue", "alice", "--scope", "s:GET:/", "--ttl", "abc"}, ExitUsage, `\Alatchkey: --ttl: `},
		{"bad uses", []string{"token", "issue", "alice", "--scope", "s:GET:/", "--ttl", "1h", "--uses", "-1"}, ExitUsage, `--uses -1`},
		{"bad grace", []string{"token", "rotate", "0123456789AB", "--grace", "1x"}, ExitUsage, `\Alatchkey: --grace: `},
		{"bad idle", []string{"report", "unused", "--idle", "1"}, ExitUsage, `\Alatchkey: --idle: `},
		{"bad until", []string{"grant", "add", "a", "--scope", "s:GET:/", "--until", "later"}, ExitUsage, `\Alatchkey: --until: `},
		{"bad grant id", []string{"grant", "revoke", "x1"}, ExitUsage, `invalid grant id "x1"`},
		{"completion shell", []string{"completion", "ksh"}, ExitUsage, `unknown command "ksh"`},
		{"unreachable", []string{"token", "list"}, ExitFailed, `\Alatchkey: cannot reach latchkey at ` + regexp.QuoteMeta(closed) + `: .*\n\z`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, closed, tt.args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tt.code, stderr)
			}
			if !regexp.MustCompile(tt.stderr).MatchString(stderr) {
				t.Errorf("stderr %q does not match %s", stderr, tt.stderr)
			}
			if code != ExitOK && stdout != "" {
				t.Errorf("stdout %q, want nothing on failure", stdout)
			}
		})
	}
}

func TestRunRefusal(t *testing.T) {
	srv, seen := fakeAPI(t, http.StatusForbidden, `{"error":"forbidden","message":"this token lacks scope admin:contractors:write"}`)
	code, stdout, stderr := run(t, srv.URL, "contractor", "add", "bob", "--email", "b@example.com", "--sponsor", "s", "--until", "1d")
	if code != ExitFailed || stdout != "" {
		t.Errorf("exit code %d, stdout %q; want %d and nothing", code, stdout, ExitFailed)
	}
	if want := "latchkey: this token lacks scope admin:contractors:write (forbidden)\n"; stderr != want {
		t.Errorf("stderr %q, want %q", stderr, want)
	}
	if want := []string{"POST /v1/contractors Bearer lka_test"}; !cmp.Equal(*seen, want) {
		t.Errorf("requests %q, want %q", *seen, want)
	}

	srv, _ = fakeAPI(t, http.StatusBadGateway, "<html>oops</html>")
	code, _, stderr = run(t, srv.URL, "whoami")
	if code != ExitFailed || stderr != "latchkey: server answered 502 Bad Gateway (http_error)\n" {
		t.Errorf("non-JSON error: exit code %d, stderr %q", code, stderr)
	}
}

func TestRunNoRequestOnUsageError(t *testing.T) {
	srv, seen := fakeAPI(t, http.StatusOK, `{}`)
	for _, args := range [][]string{
		{"token", "issue", "alice", "--scope", "s:GET:/", "--ttl", "8x"},
		{"token", "issue", "alice", "--scope", "s:GET:/", "--ttl", "1h", "--cidr", "nope"},
		{"service", "add", "svc", "--upstream", "http://u", "--credential-header", "novalue"},
		{"token", "show", "lk_notatoken"},
	} {
		if code, _, _ := run(t, srv.URL, args...); code != ExitUsage {
			t.Errorf("%q: exit code %d, want %d", args, code, ExitUsage)
		}
	}
	if len(*seen) != 0 {
		t.Errorf("requests were sent: %q", *seen)
	}
}

func TestRunMissingToken(t *testing.T) {
	t.Setenv(envAddr, closedAddr(t))
	t.Setenv(envToken, "")
	var stdout, stderr bytes.Buffer
	err := Run(context.Background(), []string{"whoami"}, &stdout, &stderr)
	if ExitCode(err) != ExitUsage || stderr.String() != "latchkey: no admin token: set LATCHKEY_TOKEN or pass --token\n" {
		t.Errorf("exit code %d, stderr %q", ExitCode(err), stderr.String())
	}
}

func TestRunIssuePrintsOnlyTheToken(t *testing.T) {
	const text = "lk_0123456789ABabcdefghijklmnopqrstuvwxyzABCDEF000000"
	body, _ := json.Marshal(adminapi.IssuedToken{ID: "0123456789AB", Token: text, Kind: "contractor", Contractor: "alice"})
	srv, seen := fakeAPI(t, http.StatusCreated, string(body))
	code, stdout, stderr := run(t, srv.URL, "token", "issue", "alice", "--scope", "svc:GET:/", "--ttl", "1h")
	if code != ExitOK || stdout != text+"\n" {
		t.Errorf("exit code %d, stdout %q; want 0 and the token alone", code, stdout)
	}
	if strings.Contains(stderr, text[15:]) || !strings.Contains(stderr, "0123456789AB") {
		t.Errorf("stderr %q: want the id and no secret", stderr)
	}
	if len(*seen) != 1 || !strings.HasPrefix((*seen)[0], "POST /v1/tokens ") {
		t.Errorf("requests %q", *seen)
	}
}

func TestRunEmptyListIsJSONArray(t *testing.T) {
	srv, _ := fakeAPI(t, http.StatusOK, `null`)
	for _, args := range [][]string{
		{"token", "list", "-o", "json"},
		{"grant", "list", "--output", "json"},
		{"report", "active", "--output", "json"},
	} {
		code, stdout, _ := run(t, srv.URL, args...)
		if code != ExitOK || stdout != "[]\n" {
			t.Errorf("%q: exit code %d, stdout %q; want []", args, code, stdout)
		}
	}
	code, stdout, _ := run(t, srv.URL, "report", "unused", "--idle", "30d", "-o", "json")
	want := "{\n  \"idle\": \"\",\n  \"tokens\": [],\n  \"scopes\": []\n}\n"
	if code != ExitOK || stdout != want {
		t.Errorf("unused: exit code %d, stdout %q, want %q", code, stdout, want)
	}
}

func TestTable(t *testing.T) {
	var b bytes.Buffer
	tb := newTable(&b, "ID", "NOTE", "LAST USED")
	tb.row("abc", "two\nlines", "")
	tb.row("abcdef", "", "2026-01-02T03:04:05Z")
	if err := tb.flush(); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"ID      NOTE       LAST USED\n" +
		"abc     two lines  -\n" +
		"abcdef  -          2026-01-02T03:04:05Z\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
}
