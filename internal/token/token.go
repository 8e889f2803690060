// Package token implements latchkey's token format: generating, strictly
// parsing, hashing and verifying the bearer tokens issued to contractors and
// admins.
//
// A token is 53 (contractor) or 54 (admin) bytes of ASCII text, laid out as
//
//	offset  length  field
//	0       P       PREFIX  "lk_" (contractor, P=3) or "lka_" (admin, P=4)
//	P       12      ID      public token id (the accessor), base62
//	P+12    32      SECRET  base62
//	P+44    6       CHECK   CRC-32 of bytes [0, P+44), base62
//
// with nothing before or after it: no whitespace, no line ending.
//
// Base62 uses the alphabet "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
// digit value 0 to 61 in that order.
//
// BODY is ID followed by SECRET: 44 characters, each drawn independently and
// uniformly from the alphabet by rejection sampling of random bytes: a byte b
// is discarded if b >= 248 and otherwise gives the character of value b%62.
// The ID therefore carries about 71 bits and the SECRET about 190 bits of
// randomness.
//
// CHECK is the CRC-32 (IEEE polynomial, as hash/crc32.ChecksumIEEE) of
// PREFIX+BODY written as exactly 6 base62 digits, most significant first,
// padded on the left with '0'. Since 62^6 > 2^32, every checksum fits, and
// exactly one CHECK is valid for a given PREFIX+BODY. The checksum only
// catches typing and truncation errors and lets secret scanners discard
// false positives; it is not a security mechanism.
//
// The ID is public: lists, logs and revocation use it, and it can be read
// from the token text without a database. The SECRET is never stored: the
// store keeps [Parsed.Hash], the SHA-256 of the 32 SECRET characters, and
// [Verify] compares against it in constant time. Nothing in this package
// puts the SECRET, or any other part of an input, in an error message or in
// the printed form of a [Parsed].
//
// The package is pure: randomness comes from the io.Reader given to
// [Generate], and nothing reads a clock.
package token

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Pattern is the source of a regular expression (RE2 syntax, for package
// regexp and for secret scanners such as those of GitHub or gitleaks) that
// matches the text of every latchkey token, and nothing of any other
// length, when the token stands between word boundaries. It does not check
// the CRC, so a scanner should confirm a match with [Parse] before acting
// on it. A token preceded or followed by a letter, digit or underscore is
// not matched.
const Pattern = `\blka?_[0-9A-Za-z]{50}\b`

// Errors returned by [Parse]. Callers branch on them with errors.Is; every
// error from Parse wraps exactly one of them.
var (
	// ErrMalformed: the text has the wrong prefix or length, or a
	// character outside the base62 alphabet.
	ErrMalformed = errors.New("malformed token")
	// ErrChecksum: the text is well formed but its CHECK does not match;
	// typically a typing or copying error.
	ErrChecksum = errors.New("token checksum mismatch")
)

// The errors Parse returns. They are fixed values so that rejecting a token
// never allocates and never echoes any of the input.
var (
	errPrefix   = fmt.Errorf("unknown prefix: %w", ErrMalformed)
	errLength   = fmt.Errorf("wrong length: %w", ErrMalformed)
	errAlphabet = fmt.Errorf("character outside base62: %w", ErrMalformed)
)

// Kind says who a token is for. The zero Kind is invalid.
type Kind uint8

// The kinds of token.
const (
	Contractor Kind = iota + 1 // "lk_": a contractor's token for the gateway
	Admin                      // "lka_": an admin token for the admin API
)

// Prefix returns the text every token of kind k starts with: "lk_" or
// "lka_", or "" if k is not a valid Kind.
func (k Kind) Prefix() string {
	switch k {
	case Contractor:
		return "lk_"
	case Admin:
		return "lka_"
	}
	return ""
}

// String returns "contractor" or "admin", or "Kind(N)" for an invalid k.
func (k Kind) String() string {
	switch k {
	case Contractor:
		return "contractor"
	case Admin:
		return "admin"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// goString returns k as Go source, for Parsed.GoString.
func (k Kind) goString() string {
	switch k {
	case Contractor:
		return "token.Contractor"
	case Admin:
		return "token.Admin"
	}
	return "token.Kind(" + strconv.Itoa(int(k)) + ")"
}

// Lengths of the parts of a token, in bytes.
const (
	idLen     = 12
	secretLen = 32
	bodyLen   = idLen + secretLen
	checkLen  = 6
	// maxLen is the length of the longest token, an admin one.
	maxLen = len("lka_") + bodyLen + checkLen
	// maxInput caps what Parse looks at: anything longer is malformed
	// without further work.
	maxInput = 64
)

// Parsed is a syntactically valid token: what [Parse] or [Generate]
// returns. It holds the secret in an unexported field that no method
// reveals: printing a Parsed with package fmt, with any verb, shows only
// the redacted form of [Parsed.String].
//
// fmt cannot call methods on values it reaches through unexported struct
// fields, so a Parsed stored in an unexported field of another struct is
// printed raw, secret included, when that struct is printed. Keep a Parsed
// in a local variable or an exported field, or print only its ID.
type Parsed struct {
	Kind   Kind   // Contractor or Admin
	ID     string // public token id: 12 base62 characters
	secret string // 32 base62 characters; never printed
}

// Generate makes a new token of the given kind with randomness read from
// rand, normally crypto/rand.Reader. It returns the token text, to be shown
// once to its holder, and its parsed form, whose ID and Hash are what the
// store keeps. It fails if kind is not valid, if rand returns an error or
// too few bytes, or if rand yields thousands of bytes without enough below
// 248 (a broken source).
func Generate(kind Kind, rand io.Reader) (text string, p Parsed, err error) {
	prefix := kind.Prefix()
	if prefix == "" {
		return "", Parsed{}, fmt.Errorf("generate token: invalid kind %d", kind)
	}
	var buf [maxLen]byte
	b := append(buf[:0], prefix...)
	b = b[:len(b)+bodyLen]
	if err := fillBase62(b[len(prefix):], rand); err != nil {
		return "", Parsed{}, fmt.Errorf("generate token: %w", err)
	}
	b = appendCheck(b, crc(b))
	text = string(b)
	return text, split(kind, text), nil
}

// Parse checks that text is exactly one token, with nothing around it, and
// returns its parts. The checks are, in order: at most 64 bytes, a known
// prefix, the exact length for that prefix, only base62 characters after the
// prefix, and a matching checksum. The error wraps ErrMalformed for the
// first four and ErrChecksum for the last, and contains nothing of text.
// Parse does not allocate; the returned Parsed refers to text.
func Parse(text string) (Parsed, error) {
	if len(text) > maxInput {
		return Parsed{}, errLength
	}
	kind := kindOf(text)
	if kind == 0 {
		return Parsed{}, errPrefix
	}
	if len(text) != len(kind.Prefix())+bodyLen+checkLen {
		return Parsed{}, errLength
	}
	if !isBase62(text[len(kind.Prefix()):]) {
		return Parsed{}, errAlphabet
	}
	n := len(text) - checkLen
	if decodeBase62(text[n:]) != uint64(crc(text[:n])) {
		return Parsed{}, ErrChecksum
	}
	return split(kind, text), nil
}

// kindOf returns the Kind whose prefix text starts with, or 0.
func kindOf(text string) Kind {
	for _, k := range [...]Kind{Admin, Contractor} {
		p := k.Prefix()
		if len(text) >= len(p) && text[:len(p)] == p {
			return k
		}
	}
	return 0
}

// split returns the parts of text, a well-formed token of the given kind.
func split(kind Kind, text string) Parsed {
	body := text[len(kind.Prefix()) : len(text)-checkLen]
	return Parsed{Kind: kind, ID: body[:idLen], secret: body[idLen:]}
}

// encode returns the token text of p, the inverse of Parse: for every text
// that Parse accepts, encode(Parse(text)) == text.
func encode(p Parsed) string {
	var buf [maxLen]byte
	b := append(buf[:0], p.Kind.Prefix()...)
	b = append(b, p.ID...)
	b = append(b, p.secret...)
	return string(appendCheck(b, crc(b)))
}

// Hash returns the SHA-256 of p's 32 secret characters: the only form in
// which a token's secret is stored. The zero Parsed hashes the empty string.
func (p Parsed) Hash() [32]byte {
	var buf [secretLen]byte
	return sha256.Sum256(buf[:copy(buf[:], p.secret)])
}

// Verify reports whether p's secret hashes to stored, comparing in constant
// time. It is false for a Parsed without a secret, such as one built from its
// exported fields.
func Verify(p Parsed, stored [32]byte) bool {
	if len(p.secret) != secretLen {
		return false
	}
	h := p.Hash()
	return subtle.ConstantTimeCompare(h[:], stored[:]) == 1
}

// ValidID reports whether id has the form of a token id: exactly 12 base62
// characters. It says nothing about whether such a token exists.
func ValidID(id string) bool {
	return len(id) == idLen && isBase62(id)
}

// String returns the redacted form of p, its prefix and ID followed by an
// ellipsis, as in "lk_0123456789AB…". It never contains the secret, and is
// too short to match Pattern.
func (p Parsed) String() string {
	return p.Kind.Prefix() + p.ID + "…"
}

// GoString returns p as Go source without its secret, for the %#v verb.
func (p Parsed) GoString() string {
	return "token.Parsed{Kind:" + p.Kind.goString() + ", ID:" + strconv.Quote(p.ID) + "}"
}

// Format implements fmt.Formatter so that no verb or flag prints the
// secret: %#v prints GoString, %q the quoted String, and every other verb
// String.
func (p Parsed) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		io.WriteString(f, p.GoString())
	case verb == 'q':
		io.WriteString(f, strconv.Quote(p.String()))
	default:
		io.WriteString(f, p.String())
	}
}
