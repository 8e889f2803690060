package timespec

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	good := map[string]time.Duration{
		"30d": 30 * 24 * time.Hour, "8h": 8 * time.Hour, "1h30m": 90 * time.Minute,
		"90s": 90 * time.Second, "1d2h3m4s": 26*time.Hour + 3*time.Minute + 4*time.Second, "0s": 0,
	}
	for in, want := range good {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	bad := []string{"", "d", "30", "30x", "-1h", "+1h", "1.5h", "1h1h", "1m1h", " 1h", "1h ", "1H",
		"3651d", "9999999999s", strings.Repeat("1", 40) + "s", "1ms", "1h\x00", "１h"}
	for _, in := range bad {
		if _, err := ParseDuration(in); !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseDuration(%q) err = %v, want ErrSyntax", in, err)
		}
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	got, err := ParseTime("30d", now)
	if err != nil || !got.Equal(now.Add(30*24*time.Hour)) {
		t.Fatalf("ParseTime(30d) = %v, %v", got, err)
	}
	got, err = ParseTime("2026-12-31T18:00:00+01:00", now)
	if err != nil || got != time.Date(2026, 12, 31, 17, 0, 0, 0, time.UTC) {
		t.Fatalf("ParseTime(rfc3339) = %v, %v", got, err)
	}
	for _, in := range []string{"", "tomorrow", "2026-12-31", "2026-13-01T00:00:00Z", strings.Repeat("9", 100)} {
		if _, err := ParseTime(in, now); !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseTime(%q) err = %v, want ErrSyntax", in, err)
		}
	}
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"30d", "1h30m", "90s", "1d2h3m4s", "", "1h1h", "3651d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("error %v does not wrap ErrSyntax", err)
			}
			return
		}
		if d < 0 || d > Max {
			t.Fatalf("ParseDuration(%q) = %v out of range", s, d)
		}
		back, err := ParseDuration(Format(d))
		if err != nil || back != d {
			t.Fatalf("round trip of %q: Format=%q back=%v err=%v", s, Format(d), back, err)
		}
	})
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"30d", "2026-12-31T18:00:00Z", "2026-12-31T18:00:00.5+01:00", "x"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseTime(s, now)
		if err != nil {
			return
		}
		if got.Location() != time.UTC {
			t.Fatalf("ParseTime(%q) not in UTC", s)
		}
	})
}
