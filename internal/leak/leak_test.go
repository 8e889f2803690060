package leak_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"latchkey/internal/leak"
)

func newKey(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pemOf(t testing.TB, pub any) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func TestVerify(t *testing.T) {
	priv := newKey(t, elliptic.P256())
	doc, err := leak.Document("k1", &priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := leak.ParseKeys(doc)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`[{"token":"lk_x","type":"latchkey","url":"https://github.com/o/r/blob/x","source":"content"}]`)
	sig, err := leak.Sign(priv, body)
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.Verify("k1", sig, body); err != nil {
		t.Fatalf("Verify of a good signature: %v", err)
	}
	other, _ := leak.Sign(newKey(t, elliptic.P256()), body)
	raw, _ := base64.StdEncoding.DecodeString(sig)
	tests := []struct {
		name, id, sig string
		body          []byte
		want          error
	}{
		{"unknown key id", "k2", sig, body, leak.ErrUnknownKey},
		{"empty key id", "", sig, body, leak.ErrUnknownKey},
		{"missing signature", "k1", "", body, leak.ErrSignature},
		{"not base64", "k1", "!!!", body, leak.ErrSignature},
		{"url base64", "k1", base64.URLEncoding.EncodeToString(raw), body, nil}, // may equal std; checked below
		{"not DER", "k1", base64.StdEncoding.EncodeToString([]byte("nope")), body, leak.ErrSignature},
		{"other key", "k1", other, body, leak.ErrSignature},
		{"tampered body", "k1", sig, append([]byte(" "), body...), leak.ErrSignature},
		{"oversized signature", "k1", strings.Repeat("A", 1024), body, leak.ErrSignature},
	}
	for _, tc := range tests {
		err := keys.Verify(tc.id, tc.sig, tc.body)
		if tc.want == nil {
			if tc.sig != sig && err == nil {
				t.Errorf("%s: accepted", tc.name)
			}
			continue
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	var none *leak.Keys
	if err := none.Verify("k1", sig, body); !errors.Is(err, leak.ErrUnknownKey) {
		t.Errorf("nil Keys: got %v", err)
	}
}

func TestParseKeysRefusals(t *testing.T) {
	p256 := pemOf(t, &newKey(t, elliptic.P256()).PublicKey)
	p384 := pemOf(t, &newKey(t, elliptic.P384()).PublicKey)
	doc := func(entries ...string) string { return `{"public_keys":[` + strings.Join(entries, ",") + `]}` }
	entry := func(id, key string) string {
		b, _ := json.Marshal(map[string]any{"key_identifier": id, "key": key, "is_current": true})
		return string(b)
	}
	good := doc(entry("a", p256))
	if k, err := leak.ParseKeys([]byte(good)); err != nil || k.Len() != 1 {
		t.Fatalf("good document: %v", err)
	}
	tests := map[string]string{
		"empty":            ``,
		"not JSON":         `{`,
		"array":            `[]`,
		"no keys":          `{"public_keys":[]}`,
		"null keys":        `{"public_keys":null}`,
		"missing id":       doc(`{"key":` + jsonStr(p256) + `}`),
		"missing key":      doc(`{"key_identifier":"a"}`),
		"empty id":         doc(entry("", p256)),
		"id with space":    doc(entry("a b", p256)),
		"long id":          doc(entry(strings.Repeat("a", 257), p256)),
		"duplicate id":     doc(entry("a", p256), entry("a", p256)),
		"P-384 key":        doc(entry("a", p384)),
		"not PEM":          doc(entry("a", "hello")),
		"PEM with trailer": doc(entry("a", p256+"junk")),
		"private PEM":      doc(entry("a", strings.ReplaceAll(p256, "PUBLIC KEY", "PRIVATE KEY"))),
		"trailing data":    good + `{}`,
		"duplicate field":  `{"public_keys":[],"public_keys":[` + entry("a", p256) + `]}`,
		"wrong type":       `{"public_keys":[{"key_identifier":1,"key":"x"}]}`,
		"oversized":        `{"x":"` + strings.Repeat("a", leak.MaxKeyDoc) + `"}`,
	}
	for name, in := range tests {
		if _, err := leak.ParseKeys([]byte(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func jsonStr(s string) string { b, _ := json.Marshal(s); return string(b) }

func TestParseReport(t *testing.T) {
	got, err := leak.ParseReport([]byte(`[{"token":"lk_a","type":"t","url":"u","source":"content","extra":1},{"token":"b"}]`))
	if err != nil {
		t.Fatal(err)
	}
	want := []leak.Entry{{Token: "lk_a", Type: "t", URL: "u", Source: "content"}, {Token: "b"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ParseReport (-want +got):\n%s", d)
	}
	many := "[" + strings.TrimSuffix(strings.Repeat(`{"token":"x"},`, leak.MaxEntries+1), ",") + "]"
	tests := []struct {
		name, in string
		want     error // nil: any error
	}{
		{"empty", ``, nil},
		{"object", `{"token":"x"}`, nil},
		{"null", `null`, nil},
		{"empty array", `[]`, nil},
		{"not JSON", `[{"token":"x"}`, nil},
		{"trailing", `[{"token":"x"}] []`, nil},
		{"missing token", `[{"type":"x"}]`, nil},
		{"empty token", `[{"token":""}]`, nil},
		{"null token", `[{"token":null}]`, nil},
		{"number token", `[{"token":5}]`, nil},
		{"long token", `[{"token":"` + strings.Repeat("a", 1025) + `"}]`, nil},
		{"duplicate token field", `[{"token":"a","token":"b"}]`, nil},
		{"invalid UTF-8", "[{\"token\":\"\xff\"}]", nil},
		{"too many entries", many, leak.ErrTooLarge},
		{"oversized", `[{"token":"` + strings.Repeat("a", leak.MaxReport) + `"}]`, leak.ErrTooLarge},
	}
	for _, tc := range tests {
		_, err := leak.ParseReport([]byte(tc.in))
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
		} else if tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

// FuzzParseReport: no input panics; what parses re-encodes to a report
// that parses to the same entries.
func FuzzParseReport(f *testing.F) {
	for _, s := range []string{
		`[{"token":"lk_a","type":"latchkey","url":"https://github.com/o/r","source":"content"}]`,
		`[{"token":"a"},{"token":"b","x":[1,{"y":2}]}]`,
		`[]`, `{}`, `[{"token":"a","token":"b"}]`, `[{"token":null}]`, "[{\"token\":\"\xff\"}]",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		es, err := leak.ParseReport(in)
		if err != nil {
			return
		}
		if len(es) == 0 || len(es) > leak.MaxEntries {
			t.Fatalf("accepted %d entries", len(es))
		}
		again, err := json.Marshal(es)
		if err != nil {
			t.Fatal(err)
		}
		es2, err := leak.ParseReport(again)
		if err != nil {
			t.Fatalf("re-encoded report refused: %v", err)
		}
		if d := cmp.Diff(es, es2); d != "" {
			t.Fatalf("round trip (-first +second):\n%s", d)
		}
	})
}

// FuzzParseKeys: no input panics; a parsed document holds at least one
// key, and parsing is deterministic.
func FuzzParseKeys(f *testing.F) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	doc, _ := leak.Document("90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a", &priv.PublicKey)
	f.Add(doc)
	f.Add([]byte(`{"public_keys":[{"key_identifier":"a","key":"-----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----\n","is_current":false}]}`))
	f.Add([]byte(`{"public_keys":[]}`))
	f.Add([]byte(`{"public_keys":[{"key_identifier":"a"}],"public_keys":[]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		k, err := leak.ParseKeys(in)
		if err != nil {
			return
		}
		if k.Len() == 0 {
			t.Fatal("accepted a document without keys")
		}
		k2, err := leak.ParseKeys(in)
		if err != nil || k2.Len() != k.Len() {
			t.Fatalf("second parse differs: %v", err)
		}
	})
}
