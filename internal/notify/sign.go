package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The Standard Webhooks headers (https://www.standardwebhooks.com) every
// delivery carries:
//
//	webhook-id         the delivery id ("msg_..."), the same on every
//	                   attempt: receivers use it to drop duplicates
//	webhook-timestamp  the attempt's time, unix seconds, decimal
//	webhook-signature  "v1," + base64(HMAC-SHA256(key, id "." timestamp "." body)),
//	                   where key is the base64-decoded part of the secret
//	                   after "whsec_"; several signatures may be given,
//	                   separated by single spaces
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every signing secret; base64 of the key follows.
const SecretPrefix = "whsec_"

// DefaultTolerance is how far a timestamp may be from the receiver's
// clock when Verify is given no tolerance.
const DefaultTolerance = 5 * time.Minute

// Limits of Verify's strict parsing.
const (
	maxIDLen         = 256
	maxSignatureLen  = 4096
	maxSignatures    = 16
	maxTimestampLen  = 12
	minKeyLen        = 24
	maxKeyLen        = 64
	signatureVersion = "v1"
)

// Errors of Verify, for errors.Is.
var (
	ErrSecret    = errors.New("invalid webhook secret")
	ErrMalformed = errors.New("malformed webhook headers")
	ErrTimestamp = errors.New("webhook timestamp outside the tolerance")
	ErrSignature = errors.New("no valid webhook signature")
)

// key returns the HMAC key of a "whsec_..." secret.
func key(secret string) ([]byte, error) {
	b64, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: want %s followed by base64", ErrSecret, SecretPrefix)
	}
	k, err := base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil || len(k) < minKeyLen || len(k) > maxKeyLen {
		return nil, fmt.Errorf("%w: want %s followed by the base64 of %d to %d bytes", ErrSecret, SecretPrefix, minKeyLen, maxKeyLen)
	}
	return k, nil
}

// mac is the raw signature of one delivery attempt.
func mac(k []byte, id string, ts int64, body []byte) []byte {
	m := hmac.New(sha256.New, k)
	m.Write([]byte(id + "." + strconv.FormatInt(ts, 10) + "."))
	m.Write(body)
	return m.Sum(nil)
}

// Sign returns the webhook-signature header value ("v1,...") of body sent
// with id at ts, under secret.
func Sign(secret, id string, ts time.Time, body []byte) (string, error) {
	k, err := key(secret)
	if err != nil {
		return "", err
	}
	return signatureVersion + "," + base64.StdEncoding.EncodeToString(mac(k, id, ts.Unix(), body)), nil
}

// Verify checks a delivery as a receiver gets it: the three headers of h
// (each exactly once), body as received, against secret, with now the
// receiver's clock. The timestamp must be within tolerance of now
// (DefaultTolerance if tolerance <= 0), and one of the v1 signatures must
// match, compared in constant time; signatures of other versions are
// skipped. Any malformed header is refused (ErrMalformed), whatever the
// signatures. It returns nil, or an error matching one of ErrSecret,
// ErrMalformed, ErrTimestamp or ErrSignature.
func Verify(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	k, err := key(secret)
	if err != nil {
		return err
	}
	id, err := single(h, HeaderID, maxIDLen)
	if err != nil {
		return err
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return fmt.Errorf("%w: %s has a byte outside printable ASCII", ErrMalformed, HeaderID)
		}
	}
	ts, err := timestamp(h)
	if err != nil {
		return err
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if d := now.Unix() - ts; d > int64(tolerance/time.Second) || -d > int64(tolerance/time.Second) {
		return fmt.Errorf("%w: %d s from now", ErrTimestamp, d)
	}
	sigs, err := signatures(h)
	if err != nil {
		return err
	}
	want := mac(k, id, ts, body)
	ok := false
	for _, s := range sigs {
		// Compare every one, so the time taken does not say which matched.
		ok = hmac.Equal(s, want) || ok
	}
	if !ok {
		return ErrSignature
	}
	return nil
}

// single returns the one value of header name, at most max bytes.
func single(h http.Header, name string, max int) (string, error) {
	vs := h.Values(name)
	switch {
	case len(vs) != 1:
		return "", fmt.Errorf("%w: want exactly one %s header, got %d", ErrMalformed, name, len(vs))
	case vs[0] == "" || len(vs[0]) > max:
		return "", fmt.Errorf("%w: %s must have 1 to %d bytes", ErrMalformed, name, max)
	}
	return vs[0], nil
}

// timestamp parses webhook-timestamp: canonical decimal unix seconds.
func timestamp(h http.Header) (int64, error) {
	raw, err := single(h, HeaderTimestamp, maxTimestampLen)
	if err != nil {
		return 0, err
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] < '0' || raw[i] > '9' {
			return 0, fmt.Errorf("%w: %s must be decimal digits", ErrMalformed, HeaderTimestamp)
		}
	}
	if len(raw) > 1 && raw[0] == '0' {
		return 0, fmt.Errorf("%w: %s has a leading zero", ErrMalformed, HeaderTimestamp)
	}
	return strconv.ParseInt(raw, 10, 64) // at most 12 digits: cannot overflow
}

// signatures parses webhook-signature and returns its v1 signatures.
func signatures(h http.Header) ([][]byte, error) {
	raw, err := single(h, HeaderSignature, maxSignatureLen)
	if err != nil {
		return nil, err
	}
	parts := strings.Split(raw, " ")
	if len(parts) > maxSignatures {
		return nil, fmt.Errorf("%w: more than %d signatures", ErrMalformed, maxSignatures)
	}
	var out [][]byte
	for _, p := range parts {
		version, b64, ok := strings.Cut(p, ",")
		if !ok || !validVersion(version) || b64 == "" {
			return nil, fmt.Errorf("%w: %s: want space-separated VERSION,BASE64 entries", ErrMalformed, HeaderSignature)
		}
		if version != signatureVersion {
			continue
		}
		s, err := base64.StdEncoding.Strict().DecodeString(b64)
		if err != nil || len(s) != sha256.Size {
			return nil, fmt.Errorf("%w: %s: a v1 signature is not the base64 of %d bytes", ErrMalformed, HeaderSignature, sha256.Size)
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no v1 signature", ErrSignature)
	}
	return out, nil
}

// validVersion reports whether v looks like a signature version: "v"
// followed by 1 to 8 lowercase letters or digits.
func validVersion(v string) bool {
	if len(v) < 2 || len(v) > 9 || v[0] != 'v' {
		return false
	}
	for i := 1; i < len(v); i++ {
		if (v[i] < 'a' || v[i] > 'z') && (v[i] < '0' || v[i] > '9') {
			return false
		}
	}
	return true
}
