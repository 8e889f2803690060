package token

import (
	"fmt"
	"hash/crc32"
	"regexp"
	"strings"
	"testing"
)

func TestErrorsHideText(t *testing.T) {
	for _, k := range []Kind{Contractor, Admin} {
		text, p := generate(t, k, "errors")
		n := len(k.Prefix())
		bad := []string{
			text[:len(text)-1] + flip(text[len(text)-1]),
			text[:n+20] + flip(text[n+20]) + text[n+21:],
			text + "x",
			text[:len(text)-1],
			text[:n+20] + "-" + text[n+21:],
			"lkx_" + text[n:],
			strings.Repeat(text, 3),
		}
		for _, s := range bad {
			_, err := Parse(s)
			if err == nil {
				t.Fatalf("Parse(%q) succeeded", s)
			}
			msg := err.Error()
			for _, part := range []string{p.secret, p.secret[:8], p.secret[24:], p.ID} {
				if strings.Contains(msg, part) {
					t.Errorf("Parse error %q contains part %q of the token", msg, part)
				}
			}
		}
	}
}

func TestValidID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"0123456789AB", true},
		{"zzzzzzzzzzzz", true},
		{"", false},
		{"0123456789A", false},
		{"0123456789ABC", false},
		{"0123456789A-", false},
		{"0123456789A_", false},
		{"0123456789Aé", false},
		{"lk_012345678", false},
	}
	for _, tt := range tests {
		if got := ValidID(tt.id); got != tt.want {
			t.Errorf("ValidID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
	_, p := generate(t, Admin, "validid")
	if !ValidID(p.ID) {
		t.Errorf("ValidID(%q) = false for a generated id", p.ID)
	}
}

func TestPattern(t *testing.T) {
	re := regexp.MustCompile(Pattern)
	exact := regexp.MustCompile(`^(?:` + Pattern + `)$`)
	for _, k := range []Kind{Contractor, Admin} {
		text, p := generate(t, k, "pattern")
		if !exact.MatchString(text) {
			t.Errorf("Pattern does not match %v token %q", k, text)
		}
		for _, ctx := range []string{"%s", "Authorization: Bearer %s\n", `{"token":"%s"}`, "T=%s;", "(%s)"} {
			s := fmt.Sprintf(ctx, text)
			if got := re.FindString(s); got != text {
				t.Errorf("Pattern in %q found %q, want %q", s, got, text)
			}
		}
		for _, s := range []string{
			text[:len(text)-1], text + "0", text + "_", "x" + text, "_" + text,
			strings.Repeat(text, 2), p.String(), fmt.Sprintf("%+v", p),
		} {
			if got := re.FindString(s); got != "" {
				t.Errorf("Pattern in %q found %q, want no match", s, got)
			}
		}
	}
	for _, s := range []string{"lkx_" + strings.Repeat("a", 50), "LK_" + strings.Repeat("a", 50), "lk_" + strings.Repeat("-", 50)} {
		if re.MatchString(s) {
			t.Errorf("Pattern matches %q", s)
		}
	}
}

func TestRedaction(t *testing.T) {
	_, p := generate(t, Contractor, "redact")
	if want := "lk_" + p.ID + "…"; p.String() != want {
		t.Errorf("String() = %q, want %q", p.String(), want)
	}
	wantGo := `token.Parsed{Kind:token.Contractor, ID:"` + p.ID + `"}`
	if got := fmt.Sprintf("%#v", p); got != wantGo {
		t.Errorf("%%#v = %q, want %q", got, wantGo)
	}
	type holder struct{ P Parsed }
	values := []any{p, &p, []Parsed{p}, map[string]Parsed{"k": p}, holder{p}, &holder{p}}
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T", "%10.3v"}
	for _, v := range values {
		for _, verb := range verbs {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(out, p.secret) || strings.Contains(out, p.secret[:6]) {
				t.Errorf("Sprintf(%q, %T) = %q reveals the secret", verb, v, out)
			}
		}
	}
	if got := fmt.Sprint(p); got != p.String() {
		t.Errorf("Sprint(p) = %q, want %q", got, p.String())
	}
}

func TestCRC(t *testing.T) {
	lk, _ := generate(t, Contractor, "crc")
	for _, s := range []string{"", "a", "lk_", lk, strings.Repeat("\xff", 100)} {
		if got, want := crc(s), crc32.ChecksumIEEE([]byte(s)); got != want {
			t.Errorf("crc(%q) = %08x, want %08x", s, got, want)
		}
		if got, want := crc([]byte(s)), crc(s); got != want {
			t.Errorf("crc([]byte(%q)) = %08x, want %08x", s, got, want)
		}
	}
}

func TestCheckEncoding(t *testing.T) {
	tests := []struct {
		sum  uint32
		want string
	}{
		{0, "000000"},
		{1, "000001"},
		{61, "00000z"},
		{62, "000010"},
		{1<<32 - 1, "4gfFC3"},
	}
	for _, tt := range tests {
		got := string(appendCheck(nil, tt.sum))
		if got != tt.want {
			t.Errorf("appendCheck(%d) = %q, want %q", tt.sum, got, tt.want)
		}
		if v := decodeBase62(got); v != uint64(tt.sum) {
			t.Errorf("decodeBase62(%q) = %d, want %d", got, v, tt.sum)
		}
	}
}
