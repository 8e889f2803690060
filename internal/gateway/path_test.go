package gateway

import (
	"errors"
	"math/rand/v2"
	"net/url"
	"path"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"latchkey/internal/scope"
)

// hostilePaths are refused, each for the reason in its comment.
var hostilePaths = []struct{ name, path string }{
	{"dotdot", "/a/../b"},
	{"dot", "/a/./b"},
	{"root dotdot", "/.."},
	{"root dot", "/."},
	{"trailing dotdot", "/a/.."},
	{"trailing dotdot slash", "/a/../"},
	{"lower escaped dotdot", "/a/%2e%2e/b"},
	{"upper escaped dotdot", "/a/%2E%2E/b"},
	{"half escaped dotdot", "/a/.%2e/b"},
	{"half escaped dotdot upper", "/a/%2E./b"},
	{"escaped dot lower", "/a/%2e/b"},
	{"escaped dot upper", "/a/%2E/b"},
	{"encoded slash lower", "/a%2fb"},
	{"encoded slash upper", "/a%2Fb"},
	{"encoded backslash lower", "/a%5cb"},
	{"encoded backslash upper", "/a%5Cb"},
	{"raw backslash", "/a\\b"},
	{"backslash dotdot", "/a\\..\\b"},
	{"encoded NUL", "/a%00b"},
	{"raw NUL", "/a\x00b"},
	{"leading double slash", "//a"},
	{"double slash", "/a//b"},
	{"double trailing slash", "/a//"},
	{"double encoding", "/a/%252e%252e/"},
	{"encoded percent", "/a%25"},
	{"overlong dots", "/a/%c0%ae%c0%ae/"},
	{"overlong dots upper", "/a/%C0%AE%C0%AE/"},
	{"overlong slash", "/a%C0%AFb"},
	{"surrogate", "/%ed%a0%80"},
	{"surrogate upper", "/%ED%A0%80"},
	{"raw invalid byte", "/\xff"},
	{"raw overlong", "/a\xc0\xafb"},
	{"raw surrogate", "/\xed\xa0\x80"},
	{"truncated escaped UTF-8", "/caf%C3"},
	{"truncated raw UTF-8", "/caf\xc3"},
	{"lone continuation", "/%A9"},
	{"lowercase escape of letter", "/v1/%4a"},
	{"lowercase UTF-8 escape", "/caf%c3%a9"},
	{"space", "/a b"},
	{"tab", "/a\tb"},
	{"CR LF", "/a\r\nHost: x"},
	{"DEL", "/a\x7fb"},
	{"encoded CR LF", "/a%0D%0Ab"},
	{"query", "/a?x"},
	{"fragment", "/a#x"},
	{"encoded query", "/a%3Fx"},
	{"encoded fragment", "/a%23x"},
	{"matrix parameter", "/a;jsessionid=1"},
	{"semicolon dotdot", "/a/..;/b"},
	{"encoded semicolon dotdot", "/a/..%3B/b"},
	{"no leading slash", "a/b"},
	{"empty", ""},
	{"bare percent", "/%"},
	{"truncated escape", "/%4"},
	{"invalid hex first", "/%G1"},
	{"invalid hex both", "/%zz"},
	{"IIS unicode escape", "/%u002e%u002e/"},
	{"too long", "/" + strings.Repeat("a", 4999)},
	{"fullwidth dots", "/a/%EF%BC%8E%EF%BC%8E/b"},
	{"two dot leader", "/a/\u2025/b"},
	{"fullwidth slash", "/a\uff0fb"},
	{"fullwidth backslash", "/a%EF%BC%BCb"},
	{"outside pchar", "/a<b>"},
	{"pipe", "/a|b"},
}

func TestCheckPathRefuses(t *testing.T) {
	if len(hostilePaths) < 45 {
		t.Fatalf("only %d hostile paths", len(hostilePaths))
	}
	for _, tt := range hostilePaths {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckPath(tt.path)
			if !errors.Is(err, ErrAmbiguous) {
				t.Fatalf("CheckPath(%q) = %v, want ErrAmbiguous", tt.path, err)
			}
			checkMessage(t, tt.path, err.Error())
		})
	}
}

// checkMessage checks that msg is one line and quotes at most 64 bytes of p.
func checkMessage(t *testing.T, p, msg string) {
	t.Helper()
	if strings.ContainsAny(msg, "\r\n") {
		t.Errorf("message for %q is not one line: %q", p, msg)
	}
	// The message ends with the excerpt, quoted, its cut ends marked
	// "...": unquoted, it is at most 64 bytes of p. (Comparing the raw
	// text instead mistakes an escaped "\\" for two bytes of p.)
	i := strings.LastIndex(msg, " in ")
	if i < 0 {
		t.Fatalf("message for %q has no excerpt: %q", p, msg)
	}
	q := strings.TrimSuffix(strings.TrimPrefix(msg[i+len(" in "):], "..."), "...")
	ex, err := strconv.Unquote(q)
	if err != nil {
		t.Fatalf("message for %q: excerpt %s does not unquote: %v", p, q, err)
	}
	if len(ex) > 64 || !strings.Contains(p, ex) {
		t.Errorf("message for %q echoes %d bytes, or bytes not in the path: %q", p, len(ex), msg)
	}
	// 64 quoted bytes take at most 4*64 characters ("\xff"), plus the
	// reason, offset and "..." marks.
	if len(msg) > 4*64+160 {
		t.Errorf("message for %q is %d bytes long: %q", p, len(msg), msg)
	}
	if !strings.HasPrefix(msg, "path_ambiguous: ") {
		t.Errorf("message %q does not start with the reason", msg)
	}
}

func TestCheckPathMessage(t *testing.T) {
	tests := []struct{ path, want string }{
		{"/a/../b", `path_ambiguous: dot segment at byte 3 in "/a/../b"`},
		{"/a%2fb", `path_ambiguous: lowercase percent-escape (hex must be uppercase) at byte 2 in "/a%2fb"`},
		{"/a%2Fb", `path_ambiguous: encoded "/" (%2F) at byte 2 in "/a%2Fb"`},
		{"/a;x", `path_ambiguous: ";" (path parameters are not supported) at byte 2 in "/a;x"`},
		{"/a//b", `path_ambiguous: empty segment ("//") at byte 3 in "/a//b"`},
		{"/" + strings.Repeat("a", 100) + "/%00", `path_ambiguous: encoded NUL (%00) at byte 102 in ..."` +
			strings.Repeat("a", 60) + `/%00"`},
	}
	for _, tt := range tests {
		if got := CheckPath(tt.path).Error(); got != tt.want {
			t.Errorf("CheckPath(%q) =\n%s\nwant\n%s", tt.path, got, tt.want)
		}
	}
}

var acceptedPaths = []string{
	"/",
	"/v1/invoices",
	"/v1/invoices/",
	"/v1/a-b_c~d",
	"/v1/%41BC",
	"/v1/caf%C3%A9",
	"/v1/café",
	"/v1/a:b@c",
	"/v1/a!$&'()+,=",
	"/v1/..a",
	"/v1/a..",
	"/v1/...",
	"/v1/.well-known",
	"/v1/a.b",
	"/v1/*",
	"/v1/my%20file",
	"/v1/%F0%9F%94%91",
	"/" + strings.Repeat("a", MaxPathLen-1),
}

func TestCheckPathAccepts(t *testing.T) {
	for _, p := range acceptedPaths {
		if err := CheckPath(p); err != nil {
			t.Errorf("CheckPath(%q) = %v, want nil", p, err)
		}
	}
}

// TestCheckPathOneSegmentation checks, for random paths built from hostile
// and benign pieces, that every accepted path has one segmentation: scope
// matching on the escaped path agrees with matching its segments split by
// hand, decoding each segment keeps the segment count and creates no
// separator or dot segment, and anything a scope allows on the escaped path
// it also allows on the decoded one.
func TestCheckPathOneSegmentation(t *testing.T) {
	patterns := []string{
		"/", "/**", "/v1/**", "/v1/*", "/v1/*/notes", "/v1/invoices", "/v1/invoices/**",
		"/v1/%41BC", "/v1/caf%C3%A9/*", "/*/*/*", "/v1/a.b/**", "/v1/..a",
	}
	pieces := []string{
		"v1", "invoices", "notes", "a", "ABC", "%41BC", "caf%C3%A9", "café", "a.b", "..a",
		".", "..", "%2E", "%2e", "%2F", "%25", "%5C", "%00", "\\", ";x", "?q", "#f", " ",
		"%C0%AE", "%ED%A0%80", "\xff", "%G1", "%4", "*", "",
	}
	var scopes []scope.Scope
	for _, p := range patterns {
		scopes = append(scopes, scope.MustParse("svc:GET:"+p))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	accepted := 0
	for range 20000 {
		var b strings.Builder
		for range rng.IntN(5) {
			b.WriteString("/")
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		if b.Len() == 0 || rng.IntN(8) == 0 {
			b.WriteString("/")
		}
		p := b.String()
		if CheckPath(p) != nil {
			continue
		}
		accepted++
		segs := checkSegmentation(t, p)
		for i, sc := range scopes {
			got := sc.Match("svc", "GET", p)
			if want := matchSegments(patterns[i], segs, false); got != want {
				t.Fatalf("scope %q on %q: Match = %v, segment match = %v", patterns[i], p, got, want)
			}
			if got && !matchSegments(patterns[i], segs, true) {
				t.Fatalf("scope %q allows %q but not its decoded form", patterns[i], p)
			}
		}
	}
	if accepted < 1000 {
		t.Fatalf("only %d random paths accepted; the generator is too hostile", accepted)
	}
}

// checkSegmentation splits the accepted path p and checks that decoding it
// whole and decoding each segment agree.
func checkSegmentation(t *testing.T, p string) []string {
	t.Helper()
	segs := strings.Split(p[1:], "/")
	if p == "/" {
		segs = nil
	}
	whole, err := url.PathUnescape(p)
	if err != nil {
		t.Fatalf("accepted %q, but PathUnescape fails: %v", p, err)
	}
	dsegs := strings.Split(whole[1:], "/")
	if p == "/" {
		dsegs = nil
	}
	if len(dsegs) != len(segs) {
		t.Fatalf("accepted %q has %d segments, decoded %q has %d", p, len(segs), whole, len(dsegs))
	}
	for i, s := range segs {
		d, err := url.PathUnescape(s)
		if err != nil || d != dsegs[i] {
			t.Fatalf("accepted %q: segment %q decodes to %q (%v), whole path gives %q", p, s, d, err, dsegs[i])
		}
	}
	return segs
}

// matchSegments is an independent matcher of a scope path pattern against
// request segments (for "/a/", the segments "a" and ""). With decode, both
// the pattern's literals and the segments are percent-decoded first.
func matchSegments(pattern string, segs []string, decode bool) bool {
	var pat []string
	if pattern != "/" {
		pat = strings.Split(pattern[1:], "/")
	}
	for i, lit := range pat {
		if lit == "**" {
			return true
		}
		if i >= len(segs) || segs[i] == "" {
			return false
		}
		seg := segs[i]
		if decode {
			lit, _ = url.PathUnescape(lit)
			seg, _ = url.PathUnescape(seg)
		}
		if lit != "*" && lit != seg {
			return false
		}
	}
	return len(pat) == len(segs)
}

// FuzzCheckPath checks that CheckPath never panics, refuses only with
// ErrAmbiguous and a short one-line message, and that an accepted path
// decodes, splits into segments free of separators and dot segments, and
// is a fixed point of path.Clean.
func FuzzCheckPath(f *testing.F) {
	for _, tt := range hostilePaths {
		f.Add(tt.path)
	}
	for _, p := range acceptedPaths {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		err := CheckPath(p)
		if err != nil {
			if !errors.Is(err, ErrAmbiguous) {
				t.Fatalf("CheckPath(%q) = %v, does not wrap ErrAmbiguous", p, err)
			}
			checkMessage(t, p, err.Error())
			return
		}
		whole, err := url.PathUnescape(p)
		if err != nil {
			t.Fatalf("accepted %q, but PathUnescape fails: %v", p, err)
		}
		if !utf8.ValidString(whole) {
			t.Fatalf("accepted %q decodes to invalid UTF-8 %q", p, whole)
		}
		for _, s := range strings.Split(p, "/") {
			d, err := url.PathUnescape(s)
			if err != nil {
				t.Fatalf("accepted %q: segment %q does not decode: %v", p, s, err)
			}
			if strings.ContainsAny(d, "/\\\x00;?#") || d == "." || d == ".." {
				t.Fatalf("accepted %q: segment %q decodes to %q", p, s, d)
			}
		}
		clean := path.Clean(whole)
		if clean != whole && clean+"/" != whole {
			t.Fatalf("accepted %q: path.Clean(%q) = %q", p, whole, clean)
		}
		if strings.Contains(p, "//") || len(p) > MaxPathLen {
			t.Fatalf("accepted %q", p)
		}
	})
}

// typicalPath is a 40-byte gateway request path.
const typicalPath = "/v1/invoices/INV-2024-000123/notes/%41BC"

func TestCheckPathAllocs(t *testing.T) {
	if len(typicalPath) != 40 {
		t.Fatalf("typicalPath is %d bytes", len(typicalPath))
	}
	for _, p := range append([]string{typicalPath}, acceptedPaths...) {
		if n := testing.AllocsPerRun(100, func() {
			if CheckPath(p) != nil {
				t.Fatal("refused")
			}
		}); n != 0 {
			t.Errorf("CheckPath(%q) allocates %v times", p, n)
		}
	}
}

func BenchmarkCheckPath(b *testing.B) {
	b.SetBytes(int64(len(typicalPath)))
	b.ReportAllocs()
	for b.Loop() {
		if CheckPath(typicalPath) != nil {
			b.Fatal("refused")
		}
	}
}
