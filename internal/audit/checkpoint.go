package audit

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint format
//
// A checkpoint is a C2SP tlog-checkpoint: a signed note
// (golang.org/x/mod/sumdb/note) whose text is, line by line, each line
// ending in a newline (U+000A):
//
//	origin   the log's name, the same as the signing key's name
//	size     number of records, in decimal without leading zeros
//	root     base64 (standard, padded) of the 32-byte RFC 6962 root hash
//	[extension lines, non-empty; this package writes none and ignores them]
//
// followed by a blank line and one signature line per signer:
//
//	— <key name> <base64(4-byte key hash || 64-byte Ed25519 signature)>
//
// The Ed25519 key lives in two files in a directory of its own, never in
// the database: KeyFile holds the note signer key ("PRIVATE+KEY+name+hash+key",
// mode 0600) and PubFile the verifier key ("name+hash+key"), each followed
// by a newline.

// File names of the checkpoint signing key in its directory.
const (
	KeyFile = "audit.key"
	PubFile = "audit.pub"
)

// ErrNotExtend: the log is not an extension of a given checkpoint (its
// history was rewritten).
var ErrNotExtend = errors.New("audit: log does not extend checkpoint")

// ErrCheckpoint: a checkpoint is malformed, not signed by the expected
// key, or for another log.
var ErrCheckpoint = errors.New("audit: bad checkpoint")

// Checkpoint is the content of a signed checkpoint.
type Checkpoint struct {
	Origin string
	Size   int64
	Root   tlog.Hash
}

// GenerateKey creates a new Ed25519 signing key named name (a log origin:
// no spaces, no '+') and writes it to KeyFile and PubFile in dir. It never
// overwrites an existing key.
func GenerateKey(dir, name string) error {
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return fmt.Errorf("audit: generate key: %w", err)
	}
	if err := writeNew(filepath.Join(dir, KeyFile), skey+"\n", 0o600); err != nil {
		return err
	}
	if err := writeNew(filepath.Join(dir, PubFile), vkey+"\n", 0o644); err != nil {
		os.Remove(filepath.Join(dir, KeyFile))
		return err
	}
	return nil
}

// writeNew creates path with data and mode, failing if it exists.
func writeNew(path, data string, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("audit: write key: %w", err)
	}
	_, err = f.WriteString(data)
	if err2 := f.Sync(); err == nil {
		err = err2
	}
	if err2 := f.Close(); err == nil {
		err = err2
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("audit: write key: %w", err)
	}
	return nil
}

// Signer signs checkpoints of one log.
type Signer struct {
	s note.Signer
}

// LoadSigner reads the signing key from KeyFile in dir. It refuses a key
// file that others than its owner can read.
func LoadSigner(dir string) (*Signer, error) {
	path := filepath.Join(dir, KeyFile)
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("audit: load key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("audit: load key: %s has mode %v, want 0600", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audit: load key: %w", err)
	}
	s, err := note.NewSigner(strings.TrimSuffix(string(b), "\n"))
	if err != nil {
		return nil, fmt.Errorf("audit: load key %s: %w", path, err)
	}
	return &Signer{s: s}, nil
}

// LoadVerifier reads a verifier key file (PubFile).
func LoadVerifier(path string) (note.Verifier, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audit: load verifier: %w", err)
	}
	v, err := note.NewVerifier(strings.TrimSuffix(string(b), "\n"))
	if err != nil {
		return nil, fmt.Errorf("audit: load verifier %s: %w", path, err)
	}
	return v, nil
}

// Origin is the log's name, the first line of its checkpoints.
func (s *Signer) Origin() string { return s.s.Name() }

// Sign returns a signed checkpoint of a tree of size records with root.
func (s *Signer) Sign(size int64, root tlog.Hash) ([]byte, error) {
	text := fmt.Sprintf("%s\n%d\n%s\n", s.s.Name(), size, base64.StdEncoding.EncodeToString(root[:]))
	b, err := note.Sign(&note.Note{Text: text}, s.s)
	if err != nil {
		return nil, fmt.Errorf("audit: sign checkpoint: %w", err)
	}
	return b, nil
}

// maxCheckpoint caps the size of a checkpoint OpenCheckpoint reads.
const maxCheckpoint = 64 << 10

// OpenCheckpoint verifies a signed checkpoint with v and parses it. The
// origin must be v's name. Errors wrap ErrCheckpoint.
func OpenCheckpoint(b []byte, v note.Verifier) (Checkpoint, error) {
	if len(b) > maxCheckpoint {
		return Checkpoint{}, fmt.Errorf("%w: %d bytes", ErrCheckpoint, len(b))
	}
	n, err := note.Open(b, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %v", ErrCheckpoint, err)
	}
	c, err := ParseCheckpoint(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	if c.Origin != v.Name() {
		return Checkpoint{}, fmt.Errorf("%w: origin %q, want %q", ErrCheckpoint, c.Origin, v.Name())
	}
	return c, nil
}

// ParseCheckpoint parses the text of a checkpoint note (without its
// signatures), strictly: a canonical decimal size and a 32-byte root.
func ParseCheckpoint(text string) (Checkpoint, error) {
	lines := strings.SplitAfter(text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		return Checkpoint{}, fmt.Errorf("%w: want origin, size and root lines", ErrCheckpoint)
	}
	for i := range lines[:len(lines)-1] {
		lines[i] = strings.TrimSuffix(lines[i], "\n")
		if lines[i] == "" {
			return Checkpoint{}, fmt.Errorf("%w: empty line %d", ErrCheckpoint, i+1)
		}
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return Checkpoint{}, fmt.Errorf("%w: bad size %q", ErrCheckpoint, lines[1])
	}
	h, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(h) != tlog.HashSize ||
		base64.StdEncoding.EncodeToString(h) != lines[2] {
		return Checkpoint{}, fmt.Errorf("%w: bad root hash %q", ErrCheckpoint, lines[2])
	}
	c := Checkpoint{Origin: lines[0], Size: size}
	copy(c.Root[:], h)
	return c, nil
}

// CheckExtends proves that the log whose tree of size has root extends
// the older checkpoint old: same root at old.Size, checked with a
// consistency proof from prove (Log.ProveTree). A log shorter than old
// (truncated) fails with a *VerifyError at index size; a log that does not
// contain old's tree fails with an error wrapping ErrNotExtend.
func CheckExtends(old Checkpoint, size int64, root tlog.Hash, prove func(oldSize, newSize int64) (tlog.TreeProof, error)) error {
	if old.Size > size {
		return &VerifyError{Index: size,
			Reason: fmt.Sprintf("log truncated: %d records, checkpoint has %d", size, old.Size)}
	}
	if old.Size == size || old.Size == 0 {
		want := root
		if old.Size == 0 {
			want, _ = tlog.TreeHash(0, nil) // the empty tree's hash
		}
		if old.Root != want {
			return fmt.Errorf("%w: root at size %d differs", ErrNotExtend, old.Size)
		}
		return nil
	}
	p, err := prove(old.Size, size)
	if err != nil {
		return fmt.Errorf("audit: consistency proof %d..%d: %w", old.Size, size, err)
	}
	if err := tlog.CheckTree(p, size, root, old.Size, old.Root); err != nil {
		return fmt.Errorf("%w of size %d: %v", ErrNotExtend, old.Size, err)
	}
	return nil
}

// Checkpoint signs a checkpoint of the log as it is now: its committed
// size and the root hash of the stored tree of that size. Run Verify to
// check that the stored tree matches the records before trusting it.
func (l *Log) Checkpoint(ctx context.Context, s *Signer) ([]byte, error) {
	if err := l.Sync(ctx); err != nil {
		return nil, fmt.Errorf("audit: checkpoint: %w", err)
	}
	return l.CheckpointIntegrated(ctx, s)
}

// CheckpointIntegrated is Checkpoint of the stored tree as it is, without
// waiting for the records still queued (see Integrated).
func (l *Log) CheckpointIntegrated(ctx context.Context, s *Signer) ([]byte, error) {
	size, err := l.st.Size(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit: checkpoint: %w", err)
	}
	root, err := tlog.TreeHash(size, storageReader(ctx, l.st))
	if err != nil {
		return nil, fmt.Errorf("audit: checkpoint: %w", err)
	}
	return s.Sign(size, root)
}

// ParseSigned parses a signed checkpoint WITHOUT verifying its
// signatures: for a checkpoint this process just signed, or to read what
// one claims before verifying it with OpenCheckpoint. Errors wrap
// ErrCheckpoint.
func ParseSigned(b []byte) (Checkpoint, error) {
	if len(b) > maxCheckpoint {
		return Checkpoint{}, fmt.Errorf("%w: %d bytes", ErrCheckpoint, len(b))
	}
	text, _, ok := strings.Cut(string(b), "\n\n")
	if !ok {
		return Checkpoint{}, fmt.Errorf("%w: no signature block", ErrCheckpoint)
	}
	return ParseCheckpoint(text + "\n")
}
