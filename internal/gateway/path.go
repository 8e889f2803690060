// Package gateway implements latchkey's gateway: the reverse proxy that
// checks a token on every request, forwards only what its scopes allow and
// injects the service's own credential (Handler), after the path-safety
// check that runs before any scope is matched (CheckPath).
//
// # Path safety
//
// The gateway authorizes and forwards the same escaped path bytes, so a path
// is only safe when every reader (the scope matcher, the upstream, and any
// proxy, framework or filesystem in between that decodes, normalises or
// strips) sees the same segments. CheckPath accepts a path only when it has
// that single reading; it never repairs a path. An accepted path is
//
//	path    = "/" / 1*( "/" segment ) [ "/" ]   ; at most 4096 bytes
//	segment = 1*( pchar / pct-encoded / utf8 )  ; not "." or ".."
//	pchar   = ALPHA / DIGIT / "-" / "." / "_" / "~"
//	        / "!" / "$" / "&" / "'" / "(" / ")" / "*"
//	        / "+" / "," / "=" / ":" / "@"
//	pct-encoded = "%" HEXUP HEXUP
//
// where pchar is RFC 3986's pchar without ";" and the decoded bytes (raw
// and escaped together) are valid UTF-8. Refused, each for a reason:
//
//   - "." and ".." segments: upstreams resolve them.
//   - empty segments ("//"), except a single trailing "/": many upstreams
//     merge slashes.
//   - escapes of "/", "\", ".", "%", NUL (%2F %5C %2E %25 %00), which a
//     decoding upstream reads as structure, a second decoding or a string
//     end; and of ";", "?", "#" and the control characters %01-%1F %7F,
//     which an upstream that decodes and re-parses reads as parameters, a
//     query, a fragment or a header break ("..%3B" becomes ".." once a
//     decoding proxy hands "..;" to a server that strips ";" parameters).
//   - lowercase hex escapes (%2f): not canonical, so the scope matcher,
//     which compares escaped text, would see another spelling.
//   - invalid escapes (%G1, a truncated %4).
//   - raw ";": some servers strip ";parameters" from segments (Tomcat,
//     Jetty, Spring) and others do not, so "/a;x/b" has two readings.
//     Matrix parameters are therefore not supported at all.
//   - raw "\", "?", "#", space, NUL and other control characters, and any
//     other raw ASCII byte outside pchar.
//   - decoded bytes that are not UTF-8: invalid sequences, overlong forms
//     such as %C0%AE, and surrogates such as %ED%A0%80.
//   - characters that Unicode compatibility normalization (NFKC) turns into
//     ".", "/", "\", "%", ";", "?" or "#" (for example U+FF0E, U+2025,
//     U+FF0F), which normalising upstreams read as structure.
//
// Escapes of other bytes, such as %41 or %20, are accepted and not
// rewritten; a scope literal matches only the same spelling.
package gateway

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// MaxPathLen is the longest escaped path CheckPath accepts, in bytes.
const MaxPathLen = 4096

// ErrAmbiguous is wrapped by every CheckPath refusal (reason path_ambiguous).
var ErrAmbiguous = errors.New("path_ambiguous")

// CheckPath validates the escaped request path (r.URL.EscapedPath(), the
// bytes the gateway will forward) and returns nil only if it has exactly one
// reading, as the package documentation defines. Otherwise it returns a
// one-line error wrapping ErrAmbiguous that names the problem and its byte
// offset and quotes at most 64 bytes of the path around it, for example
//
//	path_ambiguous: dot segment at byte 3 in "/a/../b"
//
// CheckPath does not allocate when it accepts a path.
func CheckPath(escaped string) error {
	why, at := check(escaped)
	if why == "" {
		return nil
	}
	return fmt.Errorf("%w: %s at byte %d in %s", ErrAmbiguous, why, at, excerpt(escaped, at))
}

// check returns the reason p is refused and the offset of the problem, or ""
// if p is accepted. Reasons are constants so that acceptance never
// allocates.
func check(p string) (why string, at int) {
	switch {
	case p == "":
		return "empty path", 0
	case p[0] != '/':
		return `path does not start with "/"`, 0
	case len(p) > MaxPathLen:
		return "path longer than 4096 bytes", MaxPathLen
	}
	seg := 1 // start of the current segment
	for i := 1; i < len(p); {
		if p[i] == '/' {
			if why := checkSegment(p[seg:i]); why != "" {
				return why, seg
			}
			i++
			seg = i
			continue
		}
		if plain[p[i]] {
			i++
			continue
		}
		j, why := checkChar(p, i)
		if why != "" {
			return why, i
		}
		i = j
	}
	if seg < len(p) { // "" is the root or a single trailing "/"
		if why := checkSegment(p[seg:]); why != "" {
			return why, seg
		}
	}
	return "", 0
}

// checkSegment checks the raw text of a segment between two slashes. Its
// characters are checked separately; an escaped dot never gets this far.
func checkSegment(s string) string {
	switch s {
	case "":
		return `empty segment ("//")`
	case ".", "..":
		return "dot segment"
	}
	return ""
}

// checkChar checks the character, raw or escaped, that starts at p[i], which
// is not '/', and returns the offset after it.
func checkChar(p string, i int) (int, string) {
	b, j, why := decodeByte(p, i)
	switch {
	case why != "":
		return 0, why
	case b >= utf8.RuneSelf:
		return checkRune(p, i)
	case j > i+1:
		return j, escapedASCII(b)
	}
	return j, rawASCII(b)
}

// decodeByte returns the byte at p[i], decoding a percent-escape, and the
// offset after it.
func decodeByte(p string, i int) (b byte, j int, why string) {
	if p[i] != '%' {
		return p[i], i + 1, ""
	}
	if i+2 >= len(p) || unhex(p[i+1]) < 0 || unhex(p[i+2]) < 0 {
		return 0, 0, "invalid percent-escape"
	}
	if isLowerHex(p[i+1]) || isLowerHex(p[i+2]) {
		return 0, 0, "lowercase percent-escape (hex must be uppercase)"
	}
	return byte(unhex(p[i+1])<<4 | unhex(p[i+2])), i + 3, ""
}

// escapedASCII returns why the escape of ASCII byte b is refused, or "".
func escapedASCII(b byte) string {
	switch {
	case b == '/':
		return `encoded "/" (%2F)`
	case b == '.':
		return `encoded "." (%2E)`
	case b == '%':
		return `encoded "%" (%25, double encoding)`
	case b == '\\':
		return `encoded "\" (%5C)`
	case b == 0:
		return "encoded NUL (%00)"
	case b == ';':
		return `encoded ";" (%3B)`
	case b == '?':
		return `encoded "?" (%3F)`
	case b == '#':
		return `encoded "#" (%23)`
	case b < 0x20 || b == 0x7f:
		return "encoded control character"
	}
	return ""
}

// rawASCII returns why the unescaped ASCII byte b is refused, or "".
func rawASCII(b byte) string {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return ""
	case b == 0:
		return "NUL"
	case b < 0x20 || b == 0x7f:
		return "control character"
	case b == ' ':
		return "space"
	case b == '\\':
		return `"\"`
	case b == '?':
		return `"?" (the query is not part of the path)`
	case b == '#':
		return `"#" (the fragment is not part of the path)`
	case b == ';':
		return `";" (path parameters are not supported)`
	}
	for k := 0; k < len(pcharPunct); k++ {
		if pcharPunct[k] == b {
			return ""
		}
	}
	return "character outside RFC 3986 pchar"
}

// pcharPunct lists the punctuation of RFC 3986 pchar except ";".
const pcharPunct = "-._~!$&'()*+,=:@"

// plain marks the raw bytes that are always accepted inside a segment: the
// pchar bytes except ";", which rawASCII also accepts. It is the fast path.
var plain = func() (t [256]bool) {
	for c := range 128 {
		t[c] = rawASCII(byte(c)) == ""
	}
	return t
}()

// checkRune checks the UTF-8 sequence, raw or escaped, that starts at p[i]
// and returns the offset after it.
func checkRune(p string, i int) (int, string) {
	const invalid = "invalid UTF-8 (truncated, overlong or surrogate)"
	var buf [utf8.UTFMax]byte
	buf[0], i, _ = decodeByte(p, i) // checked by the caller
	n := seqLen(buf[0])
	if n == 0 {
		return 0, invalid
	}
	for k := 1; k < n; k++ {
		if i >= len(p) {
			return 0, invalid
		}
		var why string
		if buf[k], i, why = decodeByte(p, i); why != "" {
			return 0, why
		}
	}
	if r, size := utf8.DecodeRune(buf[:n]); r == utf8.RuneError || size != n {
		return 0, invalid
	} else if lookalike(r) {
		return 0, `character that NFKC normalises to "." "/" "\" "%" ";" "?" or "#"`
	}
	return i, ""
}

// seqLen returns the length of the UTF-8 sequence that lead byte b starts,
// or 0 if b cannot start one.
func seqLen(b byte) int {
	switch {
	case 0xC2 <= b && b <= 0xDF:
		return 2
	case 0xE0 <= b && b <= 0xEF:
		return 3
	case 0xF0 <= b && b <= 0xF4:
		return 4
	}
	return 0
}

// lookalike reports whether NFKC normalization maps r to, or to a string
// containing, one of the ASCII characters that CheckPath refuses for their
// meaning in a path.
func lookalike(r rune) bool {
	switch r {
	case 0x2024, 0x2025, 0x2026, 0xFE52, 0xFF0E, // . .. ... small and fullwidth full stop
		0xFF0F,         // fullwidth solidus
		0xFE68, 0xFF3C, // small and fullwidth reverse solidus
		0xFE6A, 0xFF05, // small and fullwidth percent sign
		0xFE54, 0xFF1B, // small and fullwidth semicolon
		0xFE56, 0xFF1F, // small and fullwidth question mark
		0xFE5F, 0xFF03: // small and fullwidth number sign
		return true
	}
	return false
}

// unhex returns the value of hex digit c, of either case, or -1.
func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	}
	return -1
}

func isLowerHex(c byte) bool { return 'a' <= c && c <= 'f' }

// excerpt quotes at most 64 bytes of p around offset at, marking cut ends
// with "...".
func excerpt(p string, at int) string {
	const width, before = 64, 24
	start := max(0, min(at-before, len(p)-width))
	end := min(len(p), start+width)
	s := fmt.Sprintf("%q", p[start:end])
	if start > 0 {
		s = "..." + s
	}
	if end < len(p) {
		s += "..."
	}
	return s
}
