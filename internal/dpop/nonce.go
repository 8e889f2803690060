package dpop

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"
)

// DefaultNonceSlot is how long one nonce is issued for; a nonce is
// accepted in its slot and the next, so for between one and two slots.
const DefaultNonceSlot = 30 * time.Second

// Nonces issues and checks server nonces (RFC 9449 section 8) without
// state: a nonce is a time slot number and an HMAC-SHA256 of it,
//
//	base64url(slot as 8 bytes big-endian || HMAC-SHA256(key, slot)[:16])
//
// so every replica holding the same key can check the nonces of the
// others. serve uses a random key per process: behind several replicas,
// a client may be asked for a fresh nonce once per replica.
type Nonces struct {
	key  []byte
	slot time.Duration
}

// NewNonces returns a nonce source keyed with key (at least 32 bytes;
// nil: a fresh random key) whose nonces last slot (0: DefaultNonceSlot).
func NewNonces(key []byte, slot time.Duration) (*Nonces, error) {
	if key == nil {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
	}
	if len(key) < 32 {
		return nil, errors.New("dpop: nonce key shorter than 32 bytes")
	}
	if slot < 0 {
		return nil, errors.New("dpop: negative nonce slot")
	}
	if slot == 0 {
		slot = DefaultNonceSlot
	}
	return &Nonces{key: key, slot: slot}, nil
}

// Issue returns the nonce of now's slot.
func (n *Nonces) Issue(now time.Time) string {
	return n.make(uint64(now.UnixNano() / int64(n.slot)))
}

// Valid reports whether s is the nonce of now's slot or of the one before.
func (n *Nonces) Valid(s string, now time.Time) bool {
	cur := uint64(now.UnixNano() / int64(n.slot))
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != 24 {
		return false
	}
	slot := binary.BigEndian.Uint64(b)
	if slot != cur && slot+1 != cur {
		return false
	}
	return hmac.Equal(b[8:], n.mac(slot))
}

func (n *Nonces) make(slot uint64) string {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 24), slot)
	return base64.RawURLEncoding.EncodeToString(append(b, n.mac(slot)...))
}

func (n *Nonces) mac(slot uint64) []byte {
	m := hmac.New(sha256.New, n.key)
	m.Write(binary.BigEndian.AppendUint64(nil, slot))
	return m.Sum(nil)[:16]
}
