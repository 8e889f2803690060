package token

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that every error wraps exactly
// one sentinel, and that whatever Parse accepts is canonical: encoding the
// result gives back the input byte for byte, and the parts sit where the
// format says.
func FuzzParse(f *testing.F) {
	for i, seed := range []string{"fuzz-a", "fuzz-b", "fuzz-c"} {
		k := []Kind{Contractor, Admin}[i%2]
		text, _ := generate(f, k, seed)
		f.Add(text)
		f.Add(text[:len(text)-1])
		f.Add(text + "0")
		f.Add(strings.ToUpper(text))
	}
	for _, s := range []string{"", "lk_", "lka_", "lk", "\xff\xfe", strings.Repeat("0", 53), strings.Repeat("z", 70)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		p, err := Parse(text)
		if err != nil {
			checkParseError(t, text, p, err)
			return
		}
		if enc := encode(p); enc != text {
			t.Fatalf("encode(Parse(%q)) = %q", text, enc)
		}
		body := strings.TrimPrefix(text, p.Kind.Prefix())
		if !ValidID(p.ID) || !strings.HasPrefix(body, p.ID) || !strings.HasPrefix(body[idLen:], p.secret) {
			t.Fatalf("Parse(%q) = %#v: id or secret not where the format puts them", text, p)
		}
		if !Verify(p, p.Hash()) {
			t.Fatalf("Verify(Parse(%q), its own hash) = false", text)
		}
		if strings.Contains(p.String(), p.secret) {
			t.Fatalf("String() of Parse(%q) reveals the secret", text)
		}
	})
}

// checkParseError checks what Parse returned on failure.
func checkParseError(t *testing.T, text string, p Parsed, err error) {
	t.Helper()
	if errors.Is(err, ErrMalformed) == errors.Is(err, ErrChecksum) {
		t.Fatalf("Parse(%q) error %v wraps neither or both sentinels", text, err)
	}
	if p != (Parsed{}) {
		t.Fatalf("Parse(%q) returned %#v with error %v", text, p, err)
	}
	if len(text) >= 8 && strings.Contains(err.Error(), text[len(text)-8:]) {
		t.Fatalf("Parse(%q) error %q echoes the input", text, err)
	}
}

// FuzzGenerate checks that any random stream either fails Generate or
// yields a token that Parse accepts, with the same parts.
func FuzzGenerate(f *testing.F) {
	f.Add(byte(1), bytes.Repeat([]byte{0x5a}, 44))
	f.Add(byte(2), bytes.Repeat([]byte{0xff, 0x01}, 50))
	f.Add(byte(1), []byte("short"))
	f.Fuzz(func(t *testing.T, kind byte, stream []byte) {
		text, p, err := Generate(Kind(kind), bytes.NewReader(stream))
		if err != nil {
			return
		}
		got, err := Parse(text)
		if err != nil {
			t.Fatalf("Parse(Generate()) = %v", err)
		}
		if got != p {
			t.Fatalf("Parse(Generate()) = %#v, want %#v", got, p)
		}
	})
}
