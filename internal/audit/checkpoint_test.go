package audit_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"latchkey/internal/audit"
	"latchkey/internal/audit/audittest"
)

// newKey generates a key in a new directory and loads both halves.
func newKey(t testing.TB, name string) (*audit.Signer, note.Verifier, string) {
	dir := t.TempDir()
	if err := audit.GenerateKey(dir, name); err != nil {
		t.Fatal(err)
	}
	s, err := audit.LoadSigner(dir)
	if err != nil {
		t.Fatal(err)
	}
	v, err := audit.LoadVerifier(filepath.Join(dir, audit.PubFile))
	if err != nil {
		t.Fatal(err)
	}
	return s, v, dir
}

func TestKeyFiles(t *testing.T) {
	_, _, dir := newKey(t, "latchkey.example/audit")
	fi, err := os.Stat(filepath.Join(dir, audit.KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, %v, want mode 0600", fi.Mode(), err)
	}
	if err := audit.GenerateKey(dir, "other"); err == nil {
		t.Error("GenerateKey over an existing key: no error")
	}
	if err := os.Chmod(filepath.Join(dir, audit.KeyFile), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.LoadSigner(dir); err == nil {
		t.Error("LoadSigner of a group-readable key: no error")
	}
	pub, _ := os.ReadFile(filepath.Join(dir, audit.PubFile))
	if strings.Contains(string(pub), "PRIVATE") {
		t.Error("the verifier file holds the private key")
	}
}

func TestCheckpointSignOpen(t *testing.T) {
	s, v, _ := newKey(t, "latchkey.example/audit")
	root := tlog.RecordHash([]byte("x"))
	b, err := s.Sign(42, root)
	if err != nil {
		t.Fatal(err)
	}
	text, _, _ := strings.Cut(string(b), "\n\n")
	if want := "latchkey.example/audit\n42\n" + root.String(); text != want {
		t.Errorf("checkpoint body %q, want %q", text, want)
	}
	c, err := audit.OpenCheckpoint(b, v)
	if err != nil {
		t.Fatal(err)
	}
	if c != (audit.Checkpoint{Origin: "latchkey.example/audit", Size: 42, Root: root}) {
		t.Errorf("OpenCheckpoint = %+v", c)
	}
	_, otherV, _ := newKey(t, "latchkey.example/audit")
	_, otherName, _ := newKey(t, "elsewhere")
	tests := []struct {
		name string
		b    []byte
		v    note.Verifier
	}{
		{"other key", b, otherV},
		{"other log", b, otherName},
		{"changed size", bytes.Replace(b, []byte("\n42\n"), []byte("\n43\n"), 1), v},
		{"unsigned", []byte(text + "\n"), v},
		{"huge", bytes.Repeat([]byte("x"), 100<<10), v},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := audit.OpenCheckpoint(tt.b, tt.v); !errors.Is(err, audit.ErrCheckpoint) {
				t.Errorf("OpenCheckpoint = %v, want ErrCheckpoint", err)
			}
		})
	}
}

func TestParseCheckpoint(t *testing.T) {
	root := tlog.RecordHash(nil).String()
	if c, err := audit.ParseCheckpoint("o\n7\n" + root + "\next\n"); err != nil || c.Size != 7 {
		t.Errorf("with an extension line: %+v, %v", c, err)
	}
	for _, text := range []string{
		"", "o\n7\n", "o\n7\n" + root, "\n7\n" + root + "\n", "o\n07\n" + root + "\n",
		"o\n-1\n" + root + "\n", "o\n+7\n" + root + "\n", "o\n7\n" + root[:40] + "\n",
		"o\n7\n" + strings.TrimRight(root, "=") + "\n", "o\n7\n" + root + "\n\n",
	} {
		if _, err := audit.ParseCheckpoint(text); !errors.Is(err, audit.ErrCheckpoint) {
			t.Errorf("ParseCheckpoint(%q) = %v, want ErrCheckpoint", text, err)
		}
	}
}

// TestCheckExtends signs a checkpoint, grows the log, and proves the
// growth; then it rewrites history or truncates and checks the refusal.
func TestCheckExtends(t *testing.T) {
	ctx := t.Context()
	s, v, _ := newKey(t, "latchkey.example/audit")
	l, path := filled(t, 50)
	b, err := l.Checkpoint(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	old, err := audit.OpenCheckpoint(b, v)
	if err != nil || old.Size != 50 {
		t.Fatalf("checkpoint %+v, %v", old, err)
	}
	check := func(size int64, root tlog.Hash) error {
		return audit.CheckExtends(old, size, root, func(o, n int64) (tlog.TreeProof, error) {
			return l.ProveTree(ctx, o, n)
		})
	}
	for _, n := range []int{0, 1, 13} {
		for i := range n {
			if _, err := l.Append(ctx, audittest.Rec(1000+i)); err != nil {
				t.Fatal(err)
			}
		}
		size, root, err := l.Verify(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := check(size, root); err != nil {
			t.Errorf("after %d more records: %v", n, err)
		}
	}
	empty, _ := tlog.TreeHash(0, nil)
	if err := audit.CheckExtends(audit.Checkpoint{Root: empty}, 3, tlog.Hash{}, nil); err != nil {
		t.Errorf("extends the empty checkpoint: %v", err)
	}

	// Rewrite history: change record 10 and recompute every stored hash,
	// so that Verify passes; only the checkpoint catches it.
	db := rawDB(t, path)
	execSQL(t, db, `UPDATE audit_records SET leaf = ? WHERE idx = 10`, audittest.Rec(999).Encode())
	size, _ := l.Size(ctx)
	h := audittest.NewHasher()
	for i := range size {
		_, leaf, err := l.Record(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		h.Add([][]byte{leaf})
	}
	for x, v := range h.Hashes {
		execSQL(t, db, `UPDATE audit_hashes SET hash = ? WHERE idx = ?`, v[:], x)
	}
	size, root, err := l.Verify(ctx, nil)
	if err != nil {
		t.Fatalf("Verify of a consistently rewritten log: %v", err)
	}
	if err := check(size, root); !errors.Is(err, audit.ErrNotExtend) {
		t.Errorf("rewritten history: %v, want ErrNotExtend", err)
	}

	// Truncate below the checkpoint.
	execSQL(t, db, `DELETE FROM audit_records WHERE idx >= 40`)
	execSQL(t, db, `DELETE FROM audit_hashes WHERE idx >= ?`, tlog.StoredHashCount(40))
	size, root, err = l.Verify(ctx, nil)
	if err != nil || size != 40 {
		t.Fatalf("Verify of a truncated log = %d, %v", size, err)
	}
	var ve *audit.VerifyError
	if err := check(size, root); !errors.As(err, &ve) || ve.Index != 40 {
		t.Errorf("truncated: %v, want a VerifyError at 40", err)
	}
}

func BenchmarkSign(b *testing.B) {
	s, _, _ := newKey(b, "latchkey.example/audit")
	root := tlog.RecordHash([]byte("x"))
	for i := 0; b.Loop(); i++ {
		if _, err := s.Sign(int64(i), root); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenCheckpoint(b *testing.B) {
	s, v, _ := newKey(b, "latchkey.example/audit")
	cp, err := s.Sign(1<<20, tlog.RecordHash([]byte("x")))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := audit.OpenCheckpoint(cp, v); err != nil {
			b.Fatal(err)
		}
	}
}
