package adminapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"latchkey/internal/access"
)

// FuzzDecode: the strict body parser never panics, refuses with a
// reason word and one line, and what it accepts re-encodes to JSON that
// it accepts again as the same value.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"contractor":"alice","scopes":["billing:GET:/v1/x"],"ttl":"8h"}`,
		`{"admin":true,"scopes":["admin:*"],"ttl":"1h","cidrs":["10.0.0.0/8"],"uses":3,"note":"n"}`,
		`{"contractor":"alice"} {}`, `{"unknown":1}`, `[]`, `null`, ``, `{"uses":1e400}`, `{"scopes":[1]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var v NewToken
		err := decode(httptest.NewRequest("POST", "/v1/tokens", bytes.NewReader(body)), &v)
		if err != nil {
			var e *access.Error
			if !errors.As(err, &e) || e.Reason == "" || strings.ContainsAny(e.Msg, "\r\n") {
				t.Fatalf("decode error %#v is not a one-line refusal", err)
			}
			return
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var w NewToken
		if err := decode(httptest.NewRequest("POST", "/v1/tokens", bytes.NewReader(again)), &w); err != nil {
			t.Fatalf("re-encoded %s refused: %v", again, err)
		}
		if b, _ := json.Marshal(w); !bytes.Equal(b, again) {
			t.Fatalf("round trip changed %s into %s", again, b)
		}
	})
}
