package token

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// alphabet maps a base62 digit value to its character.
const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// invalid marks a byte outside the alphabet in digits.
const invalid = 0xff

// digits maps a byte to its base62 digit value, or invalid.
var digits = func() (t [256]byte) {
	for i := range t {
		t[i] = invalid
	}
	for i := range len(alphabet) {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// Rejection sampling: a random byte below rejectFrom, a multiple of 62,
// gives a uniform digit; bytes from rejectFrom up are discarded.
const rejectFrom = 248

// maxRandom caps the random bytes Generate reads, so that a broken source
// (one that yields mostly bytes >= 248) fails instead of looping. A sound
// source needs about 45.5 bytes on average and reaches this cap with
// probability far below 2^-1000.
const maxRandom = 4096

// errBadSource reports a random source that reached maxRandom.
var errBadSource = errors.New("random source yields too many bytes >= 248")

// isBase62 reports whether every byte of s is in the alphabet.
func isBase62(s string) bool {
	for i := range len(s) {
		if digits[s[i]] == invalid {
			return false
		}
	}
	return true
}

// decodeBase62 returns the value of s, a string of at most 10 base62
// characters, most significant first. s must be valid base62.
func decodeBase62(s string) uint64 {
	var v uint64
	for i := range len(s) {
		v = v*62 + uint64(digits[s[i]])
	}
	return v
}

// appendCheck appends sum as checkLen base62 digits, most significant
// first, padded with '0'.
func appendCheck(b []byte, sum uint32) []byte {
	var d [checkLen]byte
	v := uint64(sum)
	for i := checkLen - 1; i >= 0; i-- {
		d[i] = alphabet[v%62]
		v /= 62
	}
	return append(b, d[:]...)
}

// crc returns the CRC-32 (IEEE) of s, the same value as
// crc32.ChecksumIEEE. It is computed here, byte by byte from the standard
// table, because passing a string's bytes to package crc32 would copy them
// to the heap; for the ~50 bytes of a token this is as fast.
func crc[T string | []byte](s T) uint32 {
	tab := crc32.IEEETable
	c := ^uint32(0)
	for i := range len(s) {
		c = tab[byte(c)^s[i]] ^ c>>8
	}
	return ^c
}

// fillBase62 fills dst with uniformly random base62 characters drawn from r
// by rejection sampling. It reads exactly as many bytes as still needed each
// round, so the bytes used depend only on r's byte stream.
func fillBase62(dst []byte, r io.Reader) error {
	var raw [bodyLen]byte
	filled, read := 0, 0
	for filled < len(dst) {
		chunk := raw[:min(len(dst)-filled, len(raw))]
		if read += len(chunk); read > maxRandom {
			return errBadSource
		}
		if _, err := io.ReadFull(r, chunk); err != nil {
			return fmt.Errorf("read random: %w", err)
		}
		for _, b := range chunk {
			if b < rejectFrom {
				dst[filled] = alphabet[b%62]
				filled++
			}
		}
	}
	return nil
}
