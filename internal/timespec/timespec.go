// Package timespec parses the durations and times latchkey's users type.
//
// Grammar (strict; no spaces, no signs, at most 32 bytes):
//
//	duration = 1*( number unit )       e.g. 30d, 8h, 1h30m, 90s
//	number   = 1*9DIGIT
//	unit     = "d" / "h" / "m" / "s"    d is 24 hours
//	time     = RFC 3339 timestamp / duration (relative: now + duration)
//
// Units must appear at most once each, largest first. The total may not
// exceed Max (10 years), so no arithmetic overflows.
package timespec

import (
	"errors"
	"fmt"
	"time"
)

// Max is the longest duration accepted.
const Max = 10 * 365 * 24 * time.Hour

const maxLen = 32

// ErrSyntax is wrapped by every parse error.
var ErrSyntax = errors.New("invalid duration or time")

var units = []struct {
	c byte
	d time.Duration
}{{'d', 24 * time.Hour}, {'h', time.Hour}, {'m', time.Minute}, {'s', time.Second}}

// ParseDuration parses a duration such as 30d, 8h or 1h30m.
func ParseDuration(s string) (time.Duration, error) {
	if s == "" || len(s) > maxLen {
		return 0, fmt.Errorf("%w %q: want a duration like 30d, 8h or 1h30m", ErrSyntax, trunc(s))
	}
	var total time.Duration
	next := 0 // index into units: each unit at most once, largest first
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == i || j-i > 9 || j == len(s) {
			return 0, fmt.Errorf("%w %q: want a duration like 30d, 8h or 1h30m", ErrSyntax, s)
		}
		k := unitIndex(s[j], next)
		if k < 0 {
			return 0, fmt.Errorf("%w %q: unit %q must be one of d, h, m, s, each once, largest first", ErrSyntax, s, s[j])
		}
		var n time.Duration
		for _, c := range s[i:j] {
			n = n*10 + time.Duration(c-'0')
		}
		if n > Max/units[k].d || total+n*units[k].d > Max {
			return 0, fmt.Errorf("%w %q: longer than 10 years", ErrSyntax, s)
		}
		total += n * units[k].d
		next, i = k+1, j+1
	}
	return total, nil
}

func unitIndex(c byte, from int) int {
	for k := from; k < len(units); k++ {
		if units[k].c == c {
			return k
		}
	}
	return -1
}

// ParseTime parses an RFC 3339 time, or a duration meaning that long after
// now. The result is in UTC.
func ParseTime(s string, now time.Time) (time.Time, error) {
	if len(s) > 64 {
		return time.Time{}, fmt.Errorf("%w: %q is too long", ErrSyntax, trunc(s))
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	d, err := ParseDuration(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w %q: want an RFC 3339 time like 2026-12-31T18:00:00Z or a duration like 30d", ErrSyntax, s)
	}
	return now.Add(d).UTC(), nil
}

// Format renders d in the grammar above (the largest units first), so
// ParseDuration(Format(d)) == d for whole seconds.
func Format(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	var out []byte
	for _, u := range units {
		if n := d / u.d; n > 0 {
			out = fmt.Appendf(out, "%d%c", n, u.c)
			d -= n * u.d
		}
	}
	if len(out) == 0 {
		return "0s"
	}
	return string(out)
}

func trunc(s string) string {
	if len(s) > maxLen {
		return s[:maxLen] + "..."
	}
	return s
}
