package access

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzRequestID: every id newRequestID makes is valid, and every valid id
// is exactly "rq_" and 16 lowercase base32 letters, so it is safe in a
// URL path, a log line and a file name.
func FuzzRequestID(f *testing.F) {
	f.Add([]byte("0123456789abcdef"), "rq_abcdefghijklmnop")
	f.Add([]byte{0xff, 0, 1}, "rq_../../../etc/pas")
	f.Add([]byte{}, "RQ_ABCDEFGHIJKLMNOP")
	f.Fuzz(func(t *testing.T, b []byte, s string) {
		id, err := newRequestID(bytes.NewReader(b))
		if (err == nil) != (len(b) >= 16) {
			t.Fatalf("newRequestID(%d bytes): %v", len(b), err)
		}
		if err == nil && !ValidRequestID(id) {
			t.Fatalf("newRequestID made invalid id %q", id)
		}
		if ValidRequestID(s) {
			rest, ok := strings.CutPrefix(s, "rq_")
			if !ok || len(rest) != 16 || strings.Trim(rest, requestIDAlphabet) != "" {
				t.Fatalf("ValidRequestID accepted %q", s)
			}
		}
	})
}
