// Package seal encrypts service credentials at rest with AES-256-GCM.
//
// The 32-byte key lives in its own file in the data directory (mode 0600),
// never in the database, so a copy of the database alone reveals no
// credential. A sealed value is laid out as:
//
//	byte 0        version, currently 1
//	bytes 1..12   random 96-bit GCM nonce
//	bytes 13..    GCM ciphertext and 16-byte tag
//
// The caller passes associated data (the service name) that is bound into
// the tag, so a sealed value cannot be moved to another row undetected.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

const (
	version  = 1
	keySize  = 32
	overhead = 1 + 12 + 16
	// MaxPlaintext caps what can be sealed (credential headers are small).
	MaxPlaintext = 64 << 10
)

// ErrOpen is returned when a sealed value is malformed, was sealed under
// another key or for other associated data, or was altered.
var ErrOpen = errors.New("cannot open sealed value")

// Box seals and opens values under one key. It is safe for concurrent use.
type Box struct {
	aead cipher.AEAD
}

// New returns a Box for a 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != keySize {
		return nil, fmt.Errorf("seal key must be %d bytes, got %d", keySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("failed to create cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("failed to create GCM: %w", err)
	}
	return &Box{aead: aead}, nil
}

// Seal encrypts plaintext bound to ad.
func (b *Box) Seal(plaintext, ad []byte) ([]byte, error) {
	if len(plaintext) > MaxPlaintext {
		return nil, fmt.Errorf("value too large to seal: %d bytes", len(plaintext))
	}
	out := make([]byte, 1+12, overhead+len(plaintext))
	out[0] = version
	if _, err := io.ReadFull(rand.Reader, out[1:13]); err != nil {
		return nil, fmt.Errorf("failed to read nonce: %w", err)
	}
	return b.aead.Seal(out, out[1:13], plaintext, ad), nil
}

// Open decrypts a value sealed by Seal with the same ad; ErrOpen otherwise.
func (b *Box) Open(sealed, ad []byte) ([]byte, error) {
	if len(sealed) < overhead || sealed[0] != version {
		return nil, ErrOpen
	}
	pt, err := b.aead.Open(nil, sealed[1:13], sealed[13:], ad)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// LoadOrCreateKey reads the key file at path, creating it with a fresh
// random key and mode 0600 if it does not exist. It refuses a key file that
// is readable by group or others, or that has the wrong size.
func LoadOrCreateKey(path string) ([]byte, error) {
	key, err := LoadKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	key = make([]byte, keySize)
	if _, err := io.ReadFull(rand.Reader, key); err != nil {
		return nil, fmt.Errorf("failed to generate key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("failed to create key file: %w", err)
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		return nil, fmt.Errorf("failed to write key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("failed to sync key file: %w", err)
	}
	return key, f.Close()
}

// LoadKey reads an existing key file, checking its size and mode.
func LoadKey(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key file %s has mode %v: it must not be readable by group or others (chmod 600)", path, fi.Mode().Perm())
	}
	key, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read key file: %w", err)
	}
	if len(key) != keySize {
		return nil, fmt.Errorf("key file %s holds %d bytes, want %d", path, len(key), keySize)
	}
	return key, nil
}
