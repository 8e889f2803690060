package gateway_test

import (
	"context"
	"fmt"
	"hash/crc32"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"latchkey/internal/access"
	"latchkey/internal/audit"
	"latchkey/internal/gateway"
)

// slow is a rate so low that no bucket refills during a test (the test
// clock does not move either).
const slow = rate.Limit(1e-9)

func TestTokenRateLimited(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.TokenRate, c.TokenBurst = slow, 3 })
	text, tok := e.issue(t, access.IssueRequest{Scopes: []string{"billing:GET:/v1/**"}})
	other, _ := e.issue(t, access.IssueRequest{Scopes: []string{"billing:GET:/v1/**"}})
	for i := range 3 {
		if r := e.send(t, "GET", "/billing/v1/x", "Bearer "+text); r.status != 200 {
			t.Fatalf("request %d: %d %s, want 200 within the burst", i, r.status, r.body)
		}
	}
	hits := e.hits.Load()
	r := e.send(t, "GET", "/billing/v1/x", "Bearer "+text)
	if r.status != 429 || r.err != "rate_limited" || r.header.Get("Retry-After") == "" || !strings.Contains(r.msg, tok.ID) {
		t.Fatalf("over the burst: %d %q %q (Retry-After %q), want 429 rate_limited naming the token",
			r.status, r.err, r.msg, r.header.Get("Retry-After"))
	}
	if e.hits.Load() != hits {
		t.Fatal("a rate-limited request reached the upstream")
	}
	// A scope denial is answered as such and does not spend the bucket;
	// other tokens have their own.
	if r := e.send(t, "POST", "/billing/v1/x", "Bearer "+text); r.err != "scope_denied" {
		t.Fatalf("out-of-scope request of a limited token: %q, want scope_denied", r.err)
	}
	if r := e.send(t, "GET", "/billing/v1/x", "Bearer "+other); r.status != 200 {
		t.Fatalf("another token: %d %s, want 200", r.status, r.body)
	}
	last, _, err := e.log.Record(context.Background(), mustSize(t, e)-3)
	if err != nil {
		t.Fatal(err)
	}
	if last.Decision != audit.Deny || last.Reason != "rate_limited" || last.Status != 429 || last.TokenID != tok.ID {
		t.Fatalf("audit record of the limited request: %+v", last)
	}
}

func mustSize(t *testing.T, e *env) int64 {
	t.Helper()
	n, err := e.log.Size(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFailureRateLimited checks that a source that keeps failing
// authentication is refused before its tokens are looked up, even a valid
// one, while other sources are not affected.
func TestFailureRateLimited(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) {
		c.FailureRate, c.FailureBurst = slow, 4
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	good, _ := e.issue(t, access.IssueRequest{Scopes: []string{"billing:GET:/v1/**"}})
	bad := []string{"", "Bearer lk_nonsense", "Bearer " + good[:len(good)-1] + "x", "Bearer " + flipSecret(good)}
	from := "X-Forwarded-For: 198.51.100.7"
	for _, auth := range bad {
		if r := e.send(t, "GET", "/billing/v1/x", auth, from); r.status != 401 {
			t.Fatalf("bad auth %q: %d %s, want 401", auth, r.status, r.body)
		}
	}
	r := e.send(t, "GET", "/billing/v1/x", "Bearer "+good, from)
	if r.status != 429 || r.err != "rate_limited" {
		t.Fatalf("valid token from a failing source: %d %s, want 429 rate_limited", r.status, r.body)
	}
	if r := e.send(t, "GET", "/billing/v1/x", "Bearer "+good, "X-Forwarded-For: 198.51.100.8"); r.status != 200 {
		t.Fatalf("valid token from another source: %d %s, want 200", r.status, r.body)
	}
}

// flipSecret changes one character of the token's secret part and fixes
// the checksum, so the token parses but does not verify.
func flipSecret(text string) string {
	b := []byte(text[:len(text)-6])
	i := len(b) - 5 // inside the secret, which follows the 12-character id
	if b[i] == 'a' {
		b[i] = 'b'
	} else {
		b[i] = 'a'
	}
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	n := crc32.ChecksumIEEE(b)
	sum := make([]byte, 6)
	for i := 5; i >= 0; i-- {
		sum[i] = alphabet[n%62]
		n /= 62
	}
	return string(b) + string(sum)
}

func TestUseLimit(t *testing.T) {
	e := newEnv(t)
	text, tok := e.issue(t, access.IssueRequest{Scopes: []string{"billing:GET:/v1/**"}, MaxUses: 2})
	// Refusals spend no use.
	if r := e.send(t, "POST", "/billing/v1/x", "Bearer "+text); r.err != "scope_denied" {
		t.Fatalf("out of scope: %q", r.err)
	}
	for i := range 2 {
		if r := e.send(t, "GET", "/billing/v1/x", "Bearer "+text); r.status != 200 {
			t.Fatalf("use %d: %d %s", i+1, r.status, r.body)
		}
	}
	hits := e.hits.Load()
	r := e.send(t, "GET", "/billing/v1/x", "Bearer "+text)
	if r.status != 401 || r.err != "token_expired" || !strings.Contains(r.msg, "used all 2 of its uses") {
		t.Fatalf("third use: %d %q %q, want 401 token_expired, used all 2 of its uses", r.status, r.err, r.msg)
	}
	if e.hits.Load() != hits {
		t.Fatal("a request past the use limit reached the upstream")
	}
	// The uses are in the store at once, and the batched usage flush adds
	// nothing to them.
	if err := e.use.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, err := e.st.Token(context.Background(), tok.ID)
	if err != nil || got.Uses != 2 || got.LastUsedAt.IsZero() {
		t.Fatalf("stored uses %d, last used %v (err %v), want 2 and a time", got.Uses, got.LastUsedAt, err)
	}
}

func TestTrustedProxies(t *testing.T) {
	proxies := func(c *gateway.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")}
	}
	tests := []struct {
		name    string
		trusted bool
		xff     []string
		want    string // "" allowed, else the reason
		source  string // audited source address
	}{
		{"untrusted peer, spoofed header", false, []string{"203.0.113.5"}, "source_denied", "127.0.0.1"},
		{"trusted peer", true, []string{"203.0.113.5"}, "", "203.0.113.5"},
		{"through two trusted proxies", true, []string{"203.0.113.5, 10.1.1.1"}, "", "203.0.113.5"},
		{"split over two header lines", true, []string{"203.0.113.5", "10.1.1.1"}, "", "203.0.113.5"},
		{"client spoofs the left-most entry", true, []string{"203.0.113.5, 198.51.100.1"}, "source_denied", "198.51.100.1"},
		{"no header: the proxy itself", true, nil, "source_denied", "127.0.0.1"},
		{"malformed entry", true, []string{"203.0.113.5, not-an-ip"}, "source_denied", "127.0.0.1"},
		{"entry with a port", true, []string{"203.0.113.5:1234"}, "source_denied", "127.0.0.1"},
		{"IPv4-mapped IPv6", true, []string{"::ffff:203.0.113.5"}, "", "203.0.113.5"},
		{"too many hops", true, []string{strings.Repeat("10.0.0.1, ", 40) + "203.0.113.5"}, "source_denied", "127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e *env
			if tt.trusted {
				e = newEnv(t, proxies)
			} else {
				e = newEnv(t)
			}
			text, _ := e.issue(t, access.IssueRequest{Scopes: []string{"billing:GET:/v1/**"}, CIDRs: []string{"203.0.113.0/24"}})
			var more []string
			for _, v := range tt.xff {
				more = append(more, "X-Forwarded-For: "+v)
			}
			r := e.send(t, "GET", "/billing/v1/x", "Bearer "+text, more...)
			switch {
			case tt.want == "" && r.status != 200:
				t.Fatalf("got %d %s, want 200", r.status, r.body)
			case tt.want != "" && r.err != tt.want:
				t.Fatalf("got %d %s, want %s", r.status, r.body, tt.want)
			}
			rec, _, err := e.log.Record(context.Background(), mustSize(t, e)-1)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Source != tt.source {
				t.Errorf("audited source %q, want %q", rec.Source, tt.source)
			}
			if tt.want == "" {
				// The proxies' chain, with the gateway's peer appended.
				want := strings.Join(tt.xff, ", ") + ", 127.0.0.1"
				if got := strings.Join(e.last.Load().header.Values("X-Forwarded-For"), ", "); got != want {
					t.Errorf("upstream X-Forwarded-For %q, want %q", got, want)
				}
			}
		})
	}
}

func TestNewRefusesNegativeLimits(t *testing.T) {
	e := newEnv(t)
	for _, c := range []gateway.Config{{TokenRate: -1}, {TokenBurst: -1}, {FailureRate: -1}, {FailureBurst: -1}} {
		c.Authority = e.a
		if _, err := gateway.New(c); err == nil {
			t.Errorf("New(%s) succeeded", fmt.Sprintf("%+v", c))
		}
	}
}

// TestFailureRateLimitedUnknownSource: failures of requests whose source
// cannot be read (a trusted proxy's malformed X-Forwarded-For) are
// counted against the same key the check uses, so they are slowed down
// too, not booked to the proxy's address and never checked.
func TestFailureRateLimitedUnknownSource(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) {
		c.FailureRate, c.FailureBurst = slow, 3
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	bad := "X-Forwarded-For: not-an-address"
	for i := range 3 {
		if r := e.send(t, "GET", "/billing/v1/x", "Bearer lk_nonsense", bad); r.status != 401 {
			t.Fatalf("failure %d: %d %s, want 401", i, r.status, r.body)
		}
	}
	if r := e.send(t, "GET", "/billing/v1/x", "Bearer lk_nonsense", bad); r.status != 429 || r.err != "rate_limited" {
		t.Fatalf("after the budget: %d %s, want 429 rate_limited", r.status, r.body)
	}
}

// TestTokenRateSharedByDerived: a derived token spends its tree's bucket,
// so that deriving never multiplies a contractor's rate.
func TestTokenRateSharedByDerived(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.TokenRate, c.TokenBurst = slow, 3 })
	text, tok := e.issue(t, access.IssueRequest{Scopes: []string{"billing:GET:/v1/**"}})
	child, err := e.a.Derive(context.Background(), access.Actor{TokenID: tok.ID, Name: "alice"},
		access.DeriveRequest{Scopes: []string{"billing:GET:/v1/**"}, TTL: time.Minute})
	if err != nil {
		t.Fatalf("Derive: %v", err)
	}
	grand, err := e.a.Derive(context.Background(), access.Actor{TokenID: child.Token.ID, Name: "alice"},
		access.DeriveRequest{Scopes: []string{"billing:GET:/v1/x"}, TTL: time.Minute})
	if err != nil {
		t.Fatalf("Derive from the child: %v", err)
	}
	for i, auth := range []string{text, child.Text, grand.Text} {
		if r := e.send(t, "GET", "/billing/v1/x", "Bearer "+auth); r.status != 200 {
			t.Fatalf("request %d: %d %s, want 200 within the tree's burst", i, r.status, r.body)
		}
	}
	for _, auth := range []string{grand.Text, child.Text, text} {
		if r := e.send(t, "GET", "/billing/v1/x", "Bearer "+auth); r.status != 429 || r.err != "rate_limited" {
			t.Fatalf("over the tree's burst: %d %q, want 429 rate_limited", r.status, r.err)
		}
	}
}
