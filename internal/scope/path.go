package scope

import (
	"errors"
	"fmt"
	"strings"
)

// maxSegments is the most segments a path pattern may have.
const maxSegments = 32

// parsePath parses the PATH part of a resource scope into its segments. The
// root pattern "/" has no segments and yields nil.
func parsePath(p string) ([]string, error) {
	if p == "" {
		return nil, errors.New("missing path")
	}
	if p[0] != '/' {
		if strings.Contains(p, ":") {
			return nil, fmt.Errorf("too many parts (path %q must start with \"/\")", p)
		}
		return nil, fmt.Errorf("path %q must start with \"/\"", p)
	}
	if p == "/" {
		return nil, nil
	}
	n := strings.Count(p, "/")
	if n > maxSegments {
		return nil, fmt.Errorf("too many path segments (%d, at most %d)", n, maxSegments)
	}
	segs := make([]string, 0, n)
	for rest, more := p[1:], true; more; {
		var seg string
		seg, rest, more = strings.Cut(rest, "/")
		if err := checkSegment(seg, more); err != nil {
			return nil, err
		}
		segs = append(segs, seg)
	}
	return segs, nil
}

// checkSegment checks one path pattern segment; more reports whether other
// segments follow it.
func checkSegment(seg string, more bool) error {
	switch {
	case seg == "" && more:
		return errors.New("empty path segment")
	case seg == "":
		return errors.New(`trailing "/" in path`)
	case seg == "**" && more:
		return errors.New(`"**" must be the last path segment`)
	case seg == "*" || seg == "**":
		return nil
	case seg == "." || seg == "..":
		return fmt.Errorf("dot segment %q in path", seg)
	case strings.Contains(seg, "*"):
		return fmt.Errorf(`"*" inside path segment %q (wildcards are whole segments)`, seg)
	}
	return checkLiteral(seg)
}

// checkLiteral checks the characters and percent-escapes of a literal
// segment.
func checkLiteral(seg string) error {
	for i := 0; i < len(seg); i++ {
		if seg[i] == '%' {
			if err := checkEscape(seg[i:]); err != nil {
				return fmt.Errorf("%v in path segment %q", err, seg)
			}
			i += 2
			continue
		}
		if !literalByte(seg[i]) {
			return fmt.Errorf("invalid character %q in path segment %q", seg[i:i+1], seg)
		}
	}
	return nil
}

// checkEscape checks the percent-escape at the start of s.
func checkEscape(s string) error {
	if len(s) < 3 || unhex(s[1]) < 0 || unhex(s[2]) < 0 {
		return fmt.Errorf("invalid percent-escape %q", s[:min(len(s), 3)])
	}
	switch unhex(s[1])<<4 | unhex(s[2]) {
	case 0x00, '%', '.', '/', '\\':
		return fmt.Errorf("ambiguous percent-escape %q", s[:3])
	}
	if isLowerHex(s[1]) || isLowerHex(s[2]) {
		return fmt.Errorf("non-canonical percent-escape %q (hex must be uppercase)", s[:3])
	}
	return nil
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

// literalByte reports whether c may appear unescaped in a literal segment.
func literalByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~!$&'()+,;=:@", c) >= 0
}

// joinPath returns the text of a path pattern.
func joinPath(segs []string) string {
	return "/" + strings.Join(segs, "/")
}

// matchPath reports whether the pattern segs matches the escaped request
// path. A request path "/" has no segments; any other is split on "/", so
// "/a/" has the segments "a" and "".
func matchPath(segs []string, path string) bool {
	if path == "" || path[0] != '/' {
		return false
	}
	rest, more := path[1:], len(path) > 1
	for _, p := range segs {
		if p == "**" {
			return true
		}
		if !more {
			return false
		}
		seg := rest
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			seg, rest = rest[:i], rest[i+1:]
		} else {
			more = false
		}
		if seg == "" || (p != "*" && p != seg) {
			return false
		}
	}
	return !more
}

// coversPath reports whether every request path matched by pattern b is
// matched by pattern a.
func coversPath(a, b []string) bool {
	for i, p := range a {
		if p == "**" {
			return true
		}
		if i >= len(b) || b[i] == "**" {
			return false
		}
		if p != "*" && p != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}
