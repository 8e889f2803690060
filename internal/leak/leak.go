// Package leak implements the receiving side of GitHub's secret scanning
// partner program: the public key document that says which keys sign
// reports, the signature check of a report, and the report itself. It is
// pure: no I/O, no clock.
//
// Key document (GitHub serves it at
// https://api.github.com/meta/public_keys/secret_scanning), JSON:
//
//	{"public_keys": [
//	  {"key_identifier": "90a4…",        // hex SHA-256 of the key; the header names it
//	   "key": "-----BEGIN PUBLIC KEY-----\n…\n-----END PUBLIC KEY-----\n", // PKIX, ECDSA P-256
//	   "is_current": true}               // informational: every listed key is accepted
//	]}
//
// Report: the raw request body, a JSON array of at most MaxEntries
// objects {"token": TEXT, "type": NAME, "url": URL, "source": WHERE}, at
// most MaxReport bytes. Headers: Github-Public-Key-Identifier names the
// key; Github-Public-Key-Signature is the standard base64 of an ASN.1 DER
// ECDSA signature over the SHA-256 of the raw body.
//
// Both parsers are strict in what they check (sizes, types, required
// fields, duplicate keys, one value and nothing after it) but ignore
// object fields they do not know: GitHub may add fields, and refusing a
// genuine report would leave a leaked token alive.
package leak

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// Limits.
const (
	MaxReport   = 1 << 20 // bytes of a report body
	MaxEntries  = 1000    // entries of a report
	MaxKeyDoc   = 1 << 20 // bytes of a key document
	maxKeys     = 64      // keys of a key document
	maxKeyID    = 256     // bytes of a key identifier
	maxSig      = 512     // bytes of the base64 signature header
	maxTokenLen = 1024    // bytes of one reported token text
)

// Errors. Callers branch on them with errors.Is.
var (
	// ErrUnknownKey: the report names no key of the document.
	ErrUnknownKey = errors.New("unknown key identifier")
	// ErrSignature: the signature is missing, malformed, or does not verify.
	ErrSignature = errors.New("invalid signature")
	// ErrTooLarge: the report exceeds MaxReport bytes or MaxEntries entries.
	ErrTooLarge = errors.New("report too large")
)

// Keys are the public keys reports may be signed with, by identifier.
type Keys struct {
	byID map[string]*ecdsa.PublicKey
}

// Len returns the number of keys.
func (k *Keys) Len() int { return len(k.byID) }

type keyDoc struct {
	PublicKeys []struct {
		KeyIdentifier *string `json:"key_identifier"`
		Key           *string `json:"key"`
		IsCurrent     *bool   `json:"is_current"`
	} `json:"public_keys"`
}

// ParseKeys parses a key document. It refuses an empty list, a key that is
// not a PEM PKIX ECDSA P-256 public key, and a repeated identifier.
func ParseKeys(data []byte) (*Keys, error) {
	if len(data) > MaxKeyDoc {
		return nil, fmt.Errorf("key document exceeds %d bytes", MaxKeyDoc)
	}
	var doc keyDoc
	if err := decodeOne(data, &doc); err != nil {
		return nil, fmt.Errorf("invalid key document: %w", err)
	}
	switch n := len(doc.PublicKeys); {
	case n == 0:
		return nil, errors.New("invalid key document: no public_keys")
	case n > maxKeys:
		return nil, fmt.Errorf("invalid key document: more than %d public_keys", maxKeys)
	}
	k := &Keys{byID: map[string]*ecdsa.PublicKey{}}
	for i, e := range doc.PublicKeys {
		if e.KeyIdentifier == nil || e.Key == nil {
			return nil, fmt.Errorf("invalid key document: key %d lacks key_identifier or key", i)
		}
		id := *e.KeyIdentifier
		if !validKeyID(id) {
			return nil, fmt.Errorf("invalid key document: key %d: key_identifier must be 1 to %d printable ASCII characters", i, maxKeyID)
		}
		if _, dup := k.byID[id]; dup {
			return nil, fmt.Errorf("invalid key document: key_identifier %q appears twice", id)
		}
		pub, err := parsePEM(*e.Key)
		if err != nil {
			return nil, fmt.Errorf("invalid key document: key %q: %w", id, err)
		}
		k.byID[id] = pub
	}
	return k, nil
}

func validKeyID(id string) bool {
	if id == "" || len(id) > maxKeyID {
		return false
	}
	for _, c := range []byte(id) {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// parsePEM reads exactly one PEM "PUBLIC KEY" block of an ECDSA P-256 key.
func parsePEM(s string) (*ecdsa.PublicKey, error) {
	block, rest := pem.Decode([]byte(s))
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("want a PEM PUBLIC KEY block")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("data after the PEM block")
	}
	if len(block.Headers) != 0 {
		return nil, errors.New("PEM headers are not allowed")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, errors.New("want an ECDSA P-256 key")
	}
	return ec, nil
}

// Verify checks sig (the base64 header value) over body with the key
// named id: ErrUnknownKey, ErrSignature, or nil.
func (k *Keys) Verify(id, sig string, body []byte) error {
	if k == nil {
		return ErrUnknownKey
	}
	pub, ok := k.byID[id]
	if !ok {
		return ErrUnknownKey
	}
	if sig == "" || len(sig) > maxSig {
		return ErrSignature
	}
	der, err := base64.StdEncoding.Strict().DecodeString(sig)
	if err != nil {
		return ErrSignature
	}
	sum := sha256.Sum256(body)
	if !ecdsa.VerifyASN1(pub, sum[:], der) {
		return ErrSignature
	}
	return nil
}

// Entry is one reported secret.
type Entry struct {
	Token  string `json:"token"`  // the text found; never log it
	Type   string `json:"type"`   // the pattern name registered with GitHub
	URL    string `json:"url"`    // where it was found
	Source string `json:"source"` // e.g. "content", "commit", "gist"
}

type rawEntry struct {
	Token  *string `json:"token"`
	Type   string  `json:"type"`
	URL    string  `json:"url"`
	Source string  `json:"source"`
}

// ParseReport parses a report body: a JSON array of 1 to MaxEntries
// objects, each with a non-empty "token" string of at most 1024 bytes.
// ErrTooLarge for an oversized body or list.
func ParseReport(body []byte) ([]Entry, error) {
	if len(body) > MaxReport {
		return nil, ErrTooLarge
	}
	var raw []rawEntry
	if err := decodeOne(body, &raw); err != nil {
		return nil, fmt.Errorf("invalid report: %w", err)
	}
	switch {
	case raw == nil:
		return nil, errors.New("invalid report: want a JSON array of objects")
	case len(raw) == 0:
		return nil, errors.New("invalid report: no entries")
	case len(raw) > MaxEntries:
		return nil, ErrTooLarge
	}
	out := make([]Entry, len(raw))
	for i, r := range raw {
		if r.Token == nil || *r.Token == "" || len(*r.Token) > maxTokenLen {
			return nil, fmt.Errorf("invalid report: entry %d: want a token of 1 to %d bytes", i, maxTokenLen)
		}
		out[i] = Entry{Token: *r.Token, Type: r.Type, URL: r.URL, Source: r.Source}
	}
	return out, nil
}

// decodeOne decodes exactly one JSON value into v: no trailing data, no
// duplicate object keys, valid UTF-8.
func decodeOne(data []byte, v any) error {
	if !utf8.Valid(data) {
		return errors.New("not valid UTF-8")
	}
	if !json.Valid(data) {
		return errors.New("not valid JSON")
	}
	if err := noDuplicateKeys(data); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// noDuplicateKeys refuses an object with a repeated key at any depth: two
// readers of the same document must not see different values. data is
// valid JSON (whose nesting the scanner bounds).
func noDuplicateKeys(data []byte) error {
	return noDupValue(json.NewDecoder(bytes.NewReader(data)))
}

func noDupValue(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		keys := map[string]bool{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return err
			}
			key, _ := k.(string)
			if keys[key] {
				return fmt.Errorf("duplicate key %q", key)
			}
			keys[key] = true
			if err := noDupValue(dec); err != nil {
				return err
			}
		}
	case json.Delim('['):
		for dec.More() {
			if err := noDupValue(dec); err != nil {
				return err
			}
		}
	default:
		return nil
	}
	_, err = dec.Token() // the closing delimiter
	return err
}

// Document returns the key document listing pub under id, every key
// current: what ParseKeys reads, for tests and tools.
func Document(id string, pub *ecdsa.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	type key struct {
		ID        string `json:"key_identifier"`
		Key       string `json:"key"`
		IsCurrent bool   `json:"is_current"`
	}
	doc := struct {
		Keys []key `json:"public_keys"`
	}{[]key{{id, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), true}}}
	return json.Marshal(doc)
}

// Sign returns the signature header value of body under priv, as GitHub
// computes it: for tests and tools.
func Sign(priv *ecdsa.PrivateKey, body []byte) (string, error) {
	sum := sha256.Sum256(body)
	der, err := ecdsa.SignASN1(rand.Reader, priv, sum[:])
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(der), nil
}
