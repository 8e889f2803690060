package seal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func newBox(t *testing.T) *Box {
	t.Helper()
	key, err := LoadOrCreateKey(filepath.Join(t.TempDir(), "seal.key"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	b := newBox(t)
	pt := []byte("Authorization: Bearer upstream-secret")
	s, err := b.Seal(pt, []byte("billing"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(s, pt) || bytes.Contains(s, []byte("upstream-secret")) {
		t.Fatal("sealed value contains the plaintext")
	}
	got, err := b.Open(s, []byte("billing"))
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	s2, _ := b.Seal(pt, []byte("billing"))
	if bytes.Equal(s, s2) {
		t.Fatal("two seals of the same value are equal: nonce reuse")
	}
}

func TestOpenRejects(t *testing.T) {
	b := newBox(t)
	other := newBox(t)
	s, err := b.Seal([]byte("secret"), []byte("billing"))
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		c := bytes.Clone(s)
		c[i] ^= 1
		return c
	}
	tests := []struct {
		name string
		box  *Box
		in   []byte
		ad   string
	}{
		{"wrong ad", b, s, "crm"},
		{"wrong key", other, s, "billing"},
		{"empty", b, nil, "billing"},
		{"short", b, s[:20], "billing"},
		{"bad version", b, flip(0), "billing"},
		{"flipped nonce", b, flip(3), "billing"},
		{"flipped ciphertext", b, flip(14), "billing"},
		{"flipped tag", b, flip(len(s) - 1), "billing"},
		{"truncated tag", b, s[:len(s)-1], "billing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.box.Open(tt.in, []byte(tt.ad)); !errors.Is(err, ErrOpen) {
				t.Fatalf("Open err = %v, want ErrOpen", err)
			}
		})
	}
}

func TestSealTooLarge(t *testing.T) {
	if _, err := newBox(t).Seal(make([]byte, MaxPlaintext+1), nil); err == nil {
		t.Fatal("sealed an oversized value")
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "seal.key")
	k1, err := LoadOrCreateKey(p)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode = %v, want 0600", fi.Mode().Perm())
	}
	k2, err := LoadOrCreateKey(p)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("reload changed the key (err %v)", err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(p); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key accepted: %v", err)
	}
	short := filepath.Join(dir, "short.key")
	if err := os.WriteFile(short, []byte("abc"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(short); err == nil {
		t.Fatal("short key accepted")
	}
	if _, err := New([]byte("short")); err == nil {
		t.Fatal("New accepted a short key")
	}
}
