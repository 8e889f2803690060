package token

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
)

// counterReader yields the bytes n, n+1, n+2, ... wrapping at 256, so it
// exercises rejection sampling once every 256 bytes.

type counterReader struct{ n byte }

func (c *counterReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = c.n
		c.n++
	}
	return len(p), nil
}

// chainReader yields a deterministic, random-looking stream: the blocks
// SHA-256(seed), SHA-256(SHA-256(seed)), ...

type chainReader struct {
	block [sha256.Size]byte
	off   int
}

func newChainReader(seed string) *chainReader {
	return &chainReader{block: sha256.Sum256([]byte(seed))}
}

func (c *chainReader) Read(p []byte) (int, error) {
	for i := range p {
		if c.off == len(c.block) {
			c.block, c.off = sha256.Sum256(c.block[:]), 0
		}
		p[i] = c.block[c.off]
		c.off++
	}
	return len(p), nil
}

// errReader fails every read with err.

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// generate returns a token of kind k drawn from a chainReader seeded with

// seed, failing the test on error.

func generate(t testing.TB, k Kind, seed string) (string, Parsed) {
	t.Helper()
	text, p, err := Generate(k, newChainReader(seed))
	if err != nil {
		t.Fatalf("Generate(%v): %v", k, err)
	}
	return text, p
}

func TestKind(t *testing.T) {
	tests := []struct {
		k                      Kind
		prefix, name, goString string
	}{
		{Contractor, "lk_", "contractor", "token.Contractor"},
		{Admin, "lka_", "admin", "token.Admin"},
		{0, "", "Kind(0)", "token.Kind(0)"},
		{3, "", "Kind(3)", "token.Kind(3)"},
	}
	for _, tt := range tests {
		if got := tt.k.Prefix(); got != tt.prefix {
			t.Errorf("Kind(%d).Prefix() = %q, want %q", tt.k, got, tt.prefix)
		}
		if got := tt.k.String(); got != tt.name {
			t.Errorf("Kind(%d).String() = %q, want %q", tt.k, got, tt.name)
		}
		if got := tt.k.goString(); got != tt.goString {
			t.Errorf("Kind(%d).goString() = %q, want %q", tt.k, got, tt.goString)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, k := range []Kind{Contractor, Admin} {
		t.Run(k.String(), func(t *testing.T) {
			text, p, err := Generate(k, rand.Reader)
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			if want := len(k.Prefix()) + 50; len(text) != want {
				t.Errorf("len(text) = %d, want %d", len(text), want)
			}
			got, err := Parse(text)
			if err != nil {
				t.Fatalf("Parse(generated): %v", err)
			}
			if got != p {
				t.Errorf("Parse(text) = %v, want %v (secrets compared too)", got, p)
			}
			if got.Kind != k || !ValidID(got.ID) {
				t.Errorf("Parse(text) = %#v: want kind %v and a valid id", got, k)
			}
			if enc := encode(got); enc != text {
				t.Errorf("encode(Parse(text)) = %q, want %q", enc, text)
			}
			if !Verify(got, p.Hash()) {
				t.Error("Verify(Parse(text), Generate's hash) = false")
			}
		})
	}
}

// TestGolden pins the format: a fixed random stream must give fixed text.

// The golden values were cross-checked with an independent Python

// implementation (zlib.crc32, hashlib.sha256).

func TestGolden(t *testing.T) {
	const (
		// The stream 240..247 gives "stuvwxyz", 248..255 are rejected, then
		// 0, 1, 2, ... give the alphabet from its start.
		id       = "stuvwxyz0123"
		hashHex  = "8a2bb8507802f9d983dc0c95436b49939d18cff67f916cb7f8cac1335a61008d"
		lkGolden = "lk_stuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ1StyqY"
		lkaGold  = "lka_stuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ1DDVpA"
	)
	for k, want := range map[Kind]string{Contractor: lkGolden, Admin: lkaGold} {
		text, p, err := Generate(k, &counterReader{n: 240})
		if err != nil {
			t.Fatalf("Generate(%v): %v", k, err)
		}
		if text != want {
			t.Errorf("Generate(%v) = %q, want %q", k, text, want)
		}
		if p.ID != id {
			t.Errorf("Generate(%v).ID = %q, want %q", k, p.ID, id)
		}
		if h := p.Hash(); hex.EncodeToString(h[:]) != hashHex {
			t.Errorf("Generate(%v).Hash() = %x, want %s", k, h, hashHex)
		}
		if _, err := Parse(want); err != nil {
			t.Errorf("Parse(%q): %v", want, err)
		}
	}
}

func TestHashIsSHA256OfSecret(t *testing.T) {
	text, p := generate(t, Contractor, "hash")
	secret := text[len("lk_")+idLen : len(text)-checkLen]
	if got, want := p.Hash(), sha256.Sum256([]byte(secret)); got != want {
		t.Errorf("Hash() = %x, want SHA-256(%q) = %x", got, secret, want)
	}
}

func TestIDDerivable(t *testing.T) {
	for _, k := range []Kind{Contractor, Admin} {
		text, p := generate(t, k, "derive")
		got, err := Parse(text)
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		if got.ID != p.ID || text[len(k.Prefix()):][:idLen] != p.ID {
			t.Errorf("%v: Parse(text).ID = %q, Generate's ID = %q, text %q", k, got.ID, p.ID, text)
		}
	}
}

func TestIDsDiffer(t *testing.T) {
	const n = 1000
	ids := make(map[string]bool, n)
	secrets := make(map[string]bool, n)
	for range n {
		_, p, err := Generate(Contractor, rand.Reader)
		if err != nil {
			t.Fatalf("Generate: %v", err)
		}
		if ids[p.ID] || secrets[p.secret] {
			t.Fatalf("repeated id %q or secret after %d tokens", p.ID, len(ids))
		}
		ids[p.ID], secrets[p.secret] = true, true
	}
}

func TestVerify(t *testing.T) {
	_, a := generate(t, Contractor, "a")
	_, b := generate(t, Contractor, "b")
	if !Verify(a, a.Hash()) {
		t.Error("Verify(a, a.Hash()) = false")
	}
	if Verify(a, b.Hash()) {
		t.Error("Verify(a, b.Hash()) = true")
	}
	if Verify(a, [32]byte{}) {
		t.Error("Verify(a, zero hash) = true")
	}
	zero := Parsed{}
	if Verify(zero, zero.Hash()) {
		t.Error("Verify(Parsed{}, its own hash) = true, want false for a secretless Parsed")
	}
}

func TestGenerateErrors(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name string
		kind Kind
		r    io.Reader
		want error // nil: any error
	}{
		{"short read", Contractor, bytes.NewReader(make([]byte, 20)), io.ErrUnexpectedEOF},
		{"empty reader", Admin, bytes.NewReader(nil), io.EOF},
		{"read error", Contractor, errReader{boom}, boom},
		{"short after rejection", Contractor, bytes.NewReader(append(bytes.Repeat([]byte{255}, 3), make([]byte, 43)...)), io.ErrUnexpectedEOF},
		{"broken source", Contractor, bytes.NewReader(bytes.Repeat([]byte{248}, 10000)), errBadSource},
		{"zero kind", 0, rand.Reader, nil},
		{"unknown kind", 3, rand.Reader, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text, p, err := Generate(tt.kind, tt.r)
			if err == nil {
				t.Fatalf("Generate = %q, nil; want error", text)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Generate error = %v, want %v", err, tt.want)
			}
			if text != "" || p != (Parsed{}) {
				t.Errorf("Generate returned %q, %#v with an error", text, p)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	lk, _ := generate(t, Contractor, "reject")
	lka, _ := generate(t, Admin, "reject")
	last := len(lk) - 1
	tests := []struct {
		name string
		text string
		want error
	}{
		{"empty", "", ErrMalformed},
		{"prefix only", "lk_", ErrMalformed},
		{"admin prefix only", "lka_", ErrMalformed},
		{"wrong prefix lkx_", "lkx_" + lk[3:], ErrMalformed},
		{"upper case LK_", "LK_" + lk[3:], ErrMalformed},
		{"missing prefix", lk[3:], ErrMalformed},
		{"missing underscore", "lk" + lk[3:], ErrMalformed},
		{"too short", lk[:40], ErrMalformed},
		{"one char short", lk[:last], ErrMalformed},
		{"one char too long", lk + "0", ErrMalformed},
		{"admin one char too long", lka + "0", ErrMalformed},
		{"too long", lk + lk, ErrMalformed},
		{"1MB", "lk_" + strings.Repeat("a", 1<<20), ErrMalformed},
		{"leading space", " " + lk, ErrMalformed},
		{"trailing newline", lk + "\n", ErrMalformed},
		{"admin prefix, contractor length", "lka_" + lk[4:], ErrMalformed},
		{"contractor body under admin prefix", "lka_" + lk[3:], ErrChecksum},
		{"admin body under contractor prefix", "lk_" + lka[4:], ErrChecksum},
		{"dash", lk[:10] + "-" + lk[11:], ErrMalformed},
		{"underscore", lk[:10] + "_" + lk[11:], ErrMalformed},
		{"plus", lk[:10] + "+" + lk[11:], ErrMalformed},
		{"NUL", lk[:10] + "\x00" + lk[11:], ErrMalformed},
		{"non-ASCII same length", lk[:10] + "é" + lk[12:], ErrMalformed},
		{"non-ASCII longer", lk[:10] + "é" + lk[11:], ErrMalformed},
		{"bad char in checksum", lk[:last] + "=", ErrMalformed},
		{"flipped checksum char", lk[:last] + flip(lk[last]), ErrChecksum},
		{"flipped first checksum char", lk[:last-5] + flip(lk[last-5]) + lk[last-4:], ErrChecksum},
		{"flipped id char", lk[:5] + flip(lk[5]) + lk[6:], ErrChecksum},
		{"flipped secret char", lk[:30] + flip(lk[30]) + lk[31:], ErrChecksum},
		{"case changed", lk[:3] + swapCase(lk[3:47]) + lk[47:], ErrChecksum},
		{"checksum above 2^32", lk[:last-5] + "zzzzzz", ErrChecksum},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(tt.text)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse error = %v, want %v", err, tt.want)
			}
			other := ErrMalformed
			if tt.want == ErrMalformed {
				other = ErrChecksum
			}
			if errors.Is(err, other) {
				t.Errorf("Parse error = %v, also matches %v", err, other)
			}
			if p != (Parsed{}) {
				t.Errorf("Parse returned %#v with an error", p)
			}
		})
	}
}

// flip returns a base62 character other than c.

func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

// swapCase swaps the case of every ASCII letter in s.

func swapCase(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z':
			return r - 'a' + 'A'
		case 'A' <= r && r <= 'Z':
			return r - 'A' + 'a'
		}
		return r
	}, s)
}

func TestParseDoesNotAllocate(t *testing.T) {
	text, p := generate(t, Admin, "allocs")
	stored := p.Hash()
	bad := text[:len(text)-1] + flip(text[len(text)-1])
	allocs := testing.AllocsPerRun(100, func() {
		q, err := Parse(text)
		if err != nil || !Verify(q, stored) {
			t.Fatal("Parse or Verify failed")
		}
		if _, err := Parse(bad); err == nil {
			t.Fatal("Parse accepted a bad checksum")
		}
	})
	if allocs != 0 {
		t.Errorf("Parse+Verify allocates %v times per run, want 0", allocs)
	}
}

func BenchmarkParseVerify(b *testing.B) {
	text, p, err := Generate(Contractor, rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	stored := p.Hash()
	b.ReportAllocs()
	for b.Loop() {
		q, err := Parse(text)
		if err != nil || !Verify(q, stored) {
			b.Fatal("Parse or Verify failed")
		}
	}
}

func BenchmarkGenerate(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Generate(Contractor, rand.Reader); err != nil {
			b.Fatal(err)
		}
	}
}
