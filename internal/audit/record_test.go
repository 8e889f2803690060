package audit_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/mod/sumdb/tlog"

	"latchkey/internal/audit"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden is the record of the golden test vector testdata/record-v1.txt.
var golden = audit.Record{
	Time:       time.Date(2031, time.March, 4, 12, 0, 0, 123456789, time.UTC),
	Actor:      "tok_4d2a",
	ActorName:  "alice",
	Action:     "gateway.request",
	Contractor: "alice",
	TokenID:    "tok_4d2a",
	Service:    "github",
	Method:     "GET",
	Path:       "/repos/acme/widget/pulls",
	Status:     403,
	Decision:   audit.Deny,
	Reason:     "scope_denied",
	Source:     "203.0.113.7:51234",
}

// TestGolden pins the version-1 encoding and the leaf hash of one record.
// The file holds "leaf HEX" and "hash HEX" lines; a change to it is a
// change of the stored format.
func TestGolden(t *testing.T) {
	leaf := golden.Encode()
	h := tlog.RecordHash(leaf)
	got := fmt.Sprintf("leaf %x\nhash %x\n", leaf, h[:])
	path := filepath.Join("testdata", "record-v1.txt")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("encoding changed (-golden +now):\n%s", diff)
	}
	hexLeaf, _, _ := strings.Cut(strings.TrimPrefix(string(want), "leaf "), "\n")
	b, err := hex.DecodeString(hexLeaf)
	if err != nil {
		t.Fatal(err)
	}
	r, err := audit.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(golden, r); diff != "" {
		t.Errorf("Decode(golden) (-want +got):\n%s", diff)
	}
}

// TestEncodingLayout checks the byte layout the package doc describes.
func TestEncodingLayout(t *testing.T) {
	r := audit.Record{Time: time.Unix(0, 258).UTC(), Action: "a", Status: 200}
	want := []byte{0x01, 0, 0, 0, 0, 0, 0, 0x01, 0x02, // version, time
		0, 0, 1, 'a', 0, 0, 0, 0, 0, // actor .. path
		0xc8, 0x01, // status 200
		0, 0, 0} // decision, reason, source
	if got := r.Encode(); !bytes.Equal(got, want) {
		t.Errorf("Encode = %x, want %x", got, want)
	}
}

func TestRoundTrip(t *testing.T) {
	long := strings.Repeat("x", audit.MaxField)
	for _, r := range []audit.Record{
		golden,
		{Time: time.Unix(0, 1).UTC(), Action: "x"},
		{Time: time.Unix(0, -1).UTC(), Action: "x", Status: 999, Decision: audit.Allow},
		{Time: time.Unix(1<<33, 0).UTC(), Action: "ünïcode ☃", Path: long},
	} {
		got, err := audit.Decode(r.Encode())
		if err != nil {
			t.Fatalf("Decode(Encode(%v)): %v", r, err)
		}
		if diff := cmp.Diff(r, got); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	}
	// A local time comes back as the same instant in UTC.
	r := golden
	r.Time = r.Time.In(time.FixedZone("x", 3600))
	if got, err := audit.Decode(r.Encode()); err != nil || !got.Time.Equal(r.Time) || got.Time.Location() != time.UTC {
		t.Errorf("Decode of a local time = %v, %v", got.Time, err)
	}
}

func TestValidate(t *testing.T) {
	ok := audit.Record{Time: time.Unix(1, 0), Action: "token.issue"}
	long := strings.Repeat("x", audit.MaxField+1)
	tests := []struct {
		name string
		edit func(r *audit.Record)
	}{
		{"zero time", func(r *audit.Record) { r.Time = time.Time{} }},
		{"time before 1678", func(r *audit.Record) { r.Time = time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"time after 2262", func(r *audit.Record) { r.Time = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"empty action", func(r *audit.Record) { r.Action = "" }},
		{"long field", func(r *audit.Record) { r.Reason = long }},
		{"invalid UTF-8", func(r *audit.Record) { r.Path = "/a\xff" }},
		{"negative status", func(r *audit.Record) { r.Status = -1 }},
		{"status 1000", func(r *audit.Record) { r.Status = 1000 }},
		{"unknown decision", func(r *audit.Record) { r.Decision = "maybe" }},
		{"leaf too large", func(r *audit.Record) {
			r.Path, r.Reason, r.Source = long[1:], long[1:], long[1:]
		}},
	}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid record: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ok
			tt.edit(&r)
			if err := r.Validate(); !errors.Is(err, audit.ErrMalformed) {
				t.Errorf("Validate = %v, want ErrMalformed", err)
			}
			// A time out of range encodes as another time: only Validate
			// catches it.
			if _, err := audit.Decode(r.Encode()); !strings.Contains(tt.name, "time") && !errors.Is(err, audit.ErrMalformed) {
				t.Errorf("Decode(Encode) = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	good := golden.Encode()
	at := func(i, del int, b ...byte) []byte { return splice(good, i, del, b...) }
	minimal := audit.Record{Time: time.Unix(0, 1), Action: "a"}.Encode()
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"short", good[:8]},
		{"version 0", at(0, 1, 0x00)},
		{"version 2", at(0, 1, 0x02)},
		{"truncated", good[:len(good)-1]},
		{"trailing byte", append(append([]byte{}, good...), 0)},
		{"length past end", at(9, 1, 0x7f)},
		{"non-canonical varint", at(9, 1, 0x88, 0x00)}, // actor length 8 in two bytes
		{"varint overflow", at(9, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)},
		{"field over limit", at(9, 1, 0x81, 0x20)}, // 4097
		{"invalid UTF-8", at(10, 1, 0xff)},         // first byte of actor
		{"empty action", splice(minimal, 11, 2, 0)},
		{"status over 999", splice(minimal, 18, 1, binary.AppendUvarint(nil, 1000)...)},
		{"too large", make([]byte, audit.MaxLeafSize+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := audit.Decode(tt.b); !errors.Is(err, audit.ErrMalformed) {
				t.Errorf("Decode(%x) = %v, want ErrMalformed", tt.b, err)
			}
		})
	}
}

// splice returns a copy of leaf with b in place of the del bytes at i.
func splice(leaf []byte, i, del int, b ...byte) []byte {
	out := append([]byte{}, leaf[:i]...)
	out = append(out, b...)
	return append(out, leaf[i+del:]...)
}

// FuzzDecode checks that Decode never panics and that whatever it accepts
// is canonical: it encodes back to the same bytes, and validates.
func FuzzDecode(f *testing.F) {
	f.Add(golden.Encode())
	f.Add(audit.Record{Time: time.Unix(0, 1), Action: "a"}.Encode())
	f.Add([]byte{0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := audit.Decode(b)
		if err != nil {
			if !errors.Is(err, audit.ErrMalformed) {
				t.Fatalf("Decode error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("decoded record does not validate: %v", err)
		}
		if got := r.Encode(); !bytes.Equal(got, b) {
			t.Fatalf("Encode(Decode(%x)) = %x", b, got)
		}
	})
}
