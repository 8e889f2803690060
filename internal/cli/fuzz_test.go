package cli

import (
	"strings"
	"testing"
)

// fixedWords are the words of parseHeader's messages, less what they quote.
const fixedWords = "--credential-header: want 'Name: value' with an HTTP header name before the colon" +
	"--credential-header : the value is empty" + "--credential-header : the value contains a control character"

// FuzzParseHeader: parseHeader never panics; what it accepts is a valid
// field name and a value without control characters or surrounding space,
// which re-parses to the same header; and no error ever echoes the value.
func FuzzParseHeader(f *testing.F) {
	f.Add(" :colo") // a value that is part of the message's own words
	for _, s := range []string{"Authorization: Bearer x", "X-Key:v", "no colon", ": v", "A: ", "A: b\r\nC: d", "A:\x7f", " A : b "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parseHeader(s)
		if err != nil {
			// The value must not be quoted back; a value that is a piece
			// of a message's own words (" :colo" in "colon") is no echo.
			name, value, _ := strings.Cut(s, ":")
			words := strings.ReplaceAll(err.Error(), strings.TrimSpace(name), "")
			if v := strings.TrimSpace(value); len(v) >= 4 && strings.Contains(err.Error(), v) && !strings.Contains(fixedWords, v) && strings.Contains(words, v) {
				t.Fatalf("error %q echoes the value", err)
			}
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("error %q is not one line", err)
			}
			return
		}
		if !validFieldName(h.Name) || h.Value == "" || h.Value != strings.TrimSpace(h.Value) {
			t.Fatalf("accepted %q as %+v", s, h)
		}
		if strings.ContainsFunc(h.Value, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) {
			t.Fatalf("accepted a control character in %q", h.Value)
		}
		again, err := parseHeader(h.Name + ": " + h.Value)
		if err != nil || again != h {
			t.Fatalf("round trip of %+v: %+v, %v", h, again, err)
		}
	})
}
