package notify_test

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"latchkey/internal/notify"
)

var (
	testSecret  = notify.SecretPrefix + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	otherSecret = notify.SecretPrefix + base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))
	signedAt    = time.Date(2026, 11, 30, 18, 0, 0, 0, time.UTC)
)

// signed returns the headers of body sent as id at ts under secret.
func signed(t testing.TB, secret, id string, ts time.Time, body []byte) http.Header {
	t.Helper()
	sig, err := notify.Sign(secret, id, ts, body)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set(notify.HeaderID, id)
	h.Set(notify.HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(notify.HeaderSignature, sig)
	return h
}

func TestVerify(t *testing.T) {
	body := []byte(`{"type":"token.issued"}`)
	good := signed(t, testSecret, "msg_1", signedAt, body)
	goodSig := good.Get(notify.HeaderSignature)
	other := signed(t, otherSecret, "msg_1", signedAt, body).Get(notify.HeaderSignature)
	with := func(name, value string) http.Header {
		h := good.Clone()
		h.Set(name, value)
		return h
	}
	without := func(name string) http.Header {
		h := good.Clone()
		h.Del(name)
		return h
	}
	twice := good.Clone()
	twice.Add(notify.HeaderSignature, goodSig)
	tests := []struct {
		name   string
		secret string
		h      http.Header
		body   []byte
		now    time.Time
		want   error
	}{
		{"valid", testSecret, good, body, signedAt, nil},
		{"valid within tolerance", testSecret, good, body, signedAt.Add(5 * time.Minute), nil},
		{"several signatures, one valid", testSecret, with(notify.HeaderSignature, other+" "+goodSig), body, signedAt, nil},
		{"other versions skipped", testSecret, with(notify.HeaderSignature, "v1a,c2lnbmF0dXJl "+goodSig), body, signedAt, nil},
		{"wrong secret", otherSecret, good, body, signedAt, notify.ErrSignature},
		{"tampered body", testSecret, good, []byte(`{"type":"token.revoked"}`), signedAt, notify.ErrSignature},
		{"other id", testSecret, with(notify.HeaderID, "msg_2"), body, signedAt, notify.ErrSignature},
		{"other timestamp", testSecret, with(notify.HeaderTimestamp, strconv.FormatInt(signedAt.Unix()+1, 10)), body, signedAt, notify.ErrSignature},
		{"too old", testSecret, good, body, signedAt.Add(5*time.Minute + time.Second), notify.ErrTimestamp},
		{"from the future", testSecret, good, body, signedAt.Add(-6 * time.Minute), notify.ErrTimestamp},
		{"no v1 signature", testSecret, with(notify.HeaderSignature, "v2,c2lnbmF0dXJl"), body, signedAt, notify.ErrSignature},
		{"missing id", testSecret, without(notify.HeaderID), body, signedAt, notify.ErrMalformed},
		{"missing timestamp", testSecret, without(notify.HeaderTimestamp), body, signedAt, notify.ErrMalformed},
		{"missing signature", testSecret, without(notify.HeaderSignature), body, signedAt, notify.ErrMalformed},
		{"signature header twice", testSecret, twice, body, signedAt, notify.ErrMalformed},
		{"id with a space", testSecret, with(notify.HeaderID, "msg 1"), body, signedAt, notify.ErrMalformed},
		{"id too long", testSecret, with(notify.HeaderID, strings.Repeat("m", 257)), body, signedAt, notify.ErrMalformed},
		{"timestamp not decimal", testSecret, with(notify.HeaderTimestamp, "0x6a"), body, signedAt, notify.ErrMalformed},
		{"timestamp signed", testSecret, with(notify.HeaderTimestamp, "+"+good.Get(notify.HeaderTimestamp)), body, signedAt, notify.ErrMalformed},
		{"timestamp leading zero", testSecret, with(notify.HeaderTimestamp, "0"+good.Get(notify.HeaderTimestamp)), body, signedAt, notify.ErrMalformed},
		{"timestamp too long", testSecret, with(notify.HeaderTimestamp, "1234567890123"), body, signedAt, notify.ErrMalformed},
		{"double space", testSecret, with(notify.HeaderSignature, other+"  "+goodSig), body, signedAt, notify.ErrMalformed},
		{"no comma", testSecret, with(notify.HeaderSignature, "v1"+goodSig[3:]), body, signedAt, notify.ErrMalformed},
		{"bad version", testSecret, with(notify.HeaderSignature, "V1,"+goodSig[3:]), body, signedAt, notify.ErrMalformed},
		{"bad base64", testSecret, with(notify.HeaderSignature, goodSig[:len(goodSig)-2]+"!="), body, signedAt, notify.ErrMalformed},
		{"short signature", testSecret, with(notify.HeaderSignature, "v1,c2lnbmF0dXJl"), body, signedAt, notify.ErrMalformed},
		{"too many signatures", testSecret, with(notify.HeaderSignature, strings.Repeat(other+" ", 16)+goodSig), body, signedAt, notify.ErrMalformed},
		{"secret without prefix", strings.TrimPrefix(testSecret, notify.SecretPrefix), good, body, signedAt, notify.ErrSecret},
		{"secret too short", notify.SecretPrefix + "c2hvcnQ=", good, body, signedAt, notify.ErrSecret},
		{"secret not base64", notify.SecretPrefix + "!!!!", good, body, signedAt, notify.ErrSecret},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := notify.Verify(tc.secret, tc.h, tc.body, tc.now, 0)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Verify: got %v, want %v", err, tc.want)
			}
		})
	}
}

// FuzzVerify: Verify never panics, accepts what Sign made (for a
// well-formed id) and refuses it once any byte of the body changes.
func FuzzVerify(f *testing.F) {
	f.Add("msg_1", int64(1764525600), []byte(`{"type":"token.issued"}`), "v1,AAAA v1a,BBBB", byte(0))
	f.Add("msg_x.y", int64(0), []byte{}, "", byte(1))
	f.Add("a", int64(999999999999), []byte("\x00\xff"), "v1,"+strings.Repeat("A", 43)+"=", byte(7))
	f.Fuzz(func(t *testing.T, id string, ts int64, body []byte, sigHeader string, flip byte) {
		now := time.Unix(ts, 0)
		// Arbitrary headers: no panic, and a pass only with a real signature.
		h := http.Header{}
		h.Set(notify.HeaderID, id)
		h.Set(notify.HeaderTimestamp, strconv.FormatInt(ts, 10))
		h.Set(notify.HeaderSignature, sigHeader)
		if err := notify.Verify(testSecret, h, body, now, time.Minute); err == nil {
			want, _ := notify.Sign(testSecret, id, now, body)
			if !strings.Contains(" "+sigHeader+" ", " "+want+" ") {
				t.Fatalf("accepted %q without the signature %q", sigHeader, want)
			}
		}
		if ts < 0 || ts > 999999999999 || id == "" || len(id) > 256 || strings.ContainsFunc(id, func(r rune) bool { return r <= ' ' || r > '~' }) {
			return
		}
		good := signed(t, testSecret, id, now, body)
		if err := notify.Verify(testSecret, good, body, now, time.Minute); err != nil {
			t.Fatalf("Verify of a signed delivery: %v", err)
		}
		if len(body) > 0 {
			bad := append([]byte(nil), body...)
			bad[int(flip)%len(bad)] ^= 1 + flip%255
			if err := notify.Verify(testSecret, good, bad, now, time.Minute); !errors.Is(err, notify.ErrSignature) {
				t.Fatalf("Verify of a changed body: got %v, want ErrSignature", err)
			}
		}
	})
}
