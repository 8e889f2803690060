// Package auditfile checks latchkey's audit log offline, from what leaves
// the server: a JSON Lines export, signed checkpoints and inclusion
// proofs, with nothing but the log's public key to trust. It is pure: it
// reads from an io.Reader and does no other I/O.
//
// # Export format
//
// An export (GET /v1/audit/export, "latchkey audit export") is one JSON
// object per line, each line ending in a newline:
//
//	{"index":N,"leaf":"BASE64"}
//
// where index is the record's index in the log, starting at 0 (or at the
// export's from) and dense, and leaf is the standard, padded base64 of the
// record's version-1 encoding (package audit), the bytes the tree hashes.
// No other field is accepted.
package auditfile

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"golang.org/x/mod/sumdb/tlog"

	"latchkey/internal/audit"
)

// maxLine caps one export line: a leaf of audit.MaxLeafSize bytes in
// base64, its index and the JSON around them.
const maxLine = 4*audit.MaxLeafSize/3 + 256

// Tree is a log rebuilt in memory from an export: every stored hash
// (tlog.StoredHashes) of its records, about 64 bytes per record.
type Tree struct {
	size   int64
	hashes hashSlice
}

// line is one export line.
type line struct {
	Index *int64 `json:"index"`
	Leaf  []byte `json:"leaf"`
	Hash  []byte `json:"hash"` // tlog.RecordHash(leaf), for a SIEM to cite; checked
}

// ReadExport reads an export of a whole log (indexes 0, 1, 2, ...) from r
// and rebuilds its tree. Every leaf must decode strictly (audit.Decode).
// On a bad line it returns a *audit.VerifyError naming the first bad
// index: a line that is not a canonical export line, an index out of
// sequence (a record missing, repeated or reordered), or a leaf that does
// not decode. Other errors are read errors. progress, if not nil, is
// called every 8192 records and at the end with the records read so far.
func ReadExport(r io.Reader, progress func(done int64)) (*Tree, error) {
	t := &Tree{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	for sc.Scan() {
		leaf, err := parseLine(sc.Bytes(), t.size)
		if err != nil {
			return nil, err
		}
		hs, err := tlog.StoredHashes(t.size, leaf, t.hashes)
		if err != nil {
			return nil, fmt.Errorf("auditfile: record %d: %w", t.size, err)
		}
		t.hashes = append(t.hashes, hs...)
		t.size++
		if progress != nil && t.size%8192 == 0 {
			progress(t.size)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, &audit.VerifyError{Index: t.size, Reason: fmt.Sprintf("export line longer than %d bytes", maxLine)}
		}
		return nil, fmt.Errorf("auditfile: read export: %w", err)
	}
	if progress != nil {
		progress(t.size)
	}
	return t, nil
}

// parseLine checks one export line, which must be record want, and
// returns its leaf.
func parseLine(b []byte, want int64) ([]byte, error) {
	bad := func(format string, args ...any) error {
		return &audit.VerifyError{Index: want, Reason: fmt.Sprintf(format, args...)}
	}
	var l line
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return nil, bad("export line %d is not an export record: %v", want+1, err)
	}
	if dec.More() {
		return nil, bad("export line %d has data after the record", want+1)
	}
	switch {
	case l.Index == nil || l.Leaf == nil:
		return nil, bad("export line %d lacks index or leaf", want+1)
	case *l.Index < want:
		return nil, bad("record repeated or out of order: line %d has index %d", want+1, *l.Index)
	case *l.Index > want:
		return nil, bad("record missing or out of order: line %d has index %d", want+1, *l.Index)
	}
	if _, err := audit.Decode(l.Leaf); err != nil {
		return nil, bad("record does not decode: %v", err)
	}
	if h := tlog.RecordHash(l.Leaf); l.Hash != nil && !bytes.Equal(l.Hash, h[:]) {
		return nil, bad("export line %d: hash does not match its leaf", want+1)
	}
	return l.Leaf, nil
}

// Size returns the number of records read.
func (t *Tree) Size() int64 { return t.size }

// TreeHash returns the root hash of the tree of the first n records
// (0 <= n <= Size).
func (t *Tree) TreeHash(n int64) (tlog.Hash, error) {
	if n < 0 || n > t.size {
		return tlog.Hash{}, fmt.Errorf("auditfile: tree size %d out of range 0..%d", n, t.size)
	}
	return tlog.TreeHash(n, t.hashes)
}

// Check reports whether the records read have the tree cp signs: the
// root of their first cp.Size records is cp.Root. An export shorter than
// cp is a *audit.VerifyError at index Size; a different root is an error
// wrapping audit.ErrNotExtend (one of the first cp.Size records, or their
// order, differs from what was signed).
func (t *Tree) Check(cp audit.Checkpoint) error {
	if cp.Size > t.size {
		return &audit.VerifyError{Index: t.size,
			Reason: fmt.Sprintf("export truncated: %d records, checkpoint has %d", t.size, cp.Size)}
	}
	root, err := t.TreeHash(cp.Size)
	if err != nil {
		return err
	}
	if root != cp.Root {
		return fmt.Errorf("%w of %d records: the root of records 0..%d differs", audit.ErrNotExtend, cp.Size, cp.Size-1)
	}
	return nil
}

// hashSlice is a tlog.HashReader over every stored hash, by stored index.
type hashSlice []tlog.Hash

func (h hashSlice) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(h)) {
			return nil, fmt.Errorf("auditfile: stored hash %d not in a tree of %d hashes", x, len(h))
		}
		out[i] = h[x]
	}
	return out, nil
}

// RecordRoot returns the root hash of the tree of size records that
// proof (an inclusion proof, leaf to root, as tlog.ProveRecord makes)
// leads to from the record hash leaf at index: the RFC 9162 section
// 2.1.3.2 computation. A proof of the wrong length is an error. Checking
// that the result equals a trusted root (or that a trusted tree extends
// it) is the caller's part.
func RecordRoot(proof tlog.RecordProof, size, index int64, leaf tlog.Hash) (tlog.Hash, error) {
	if index < 0 || index >= size {
		return tlog.Hash{}, fmt.Errorf("auditfile: record %d not in a tree of size %d", index, size)
	}
	fn, sn, r := index, size-1, leaf
	for _, p := range proof {
		if sn == 0 {
			return tlog.Hash{}, errors.New("auditfile: inclusion proof too long")
		}
		if fn&1 == 1 || fn == sn {
			r = tlog.NodeHash(p, r)
			for fn&1 == 0 && fn != 0 {
				fn, sn = fn>>1, sn>>1
			}
		} else {
			r = tlog.NodeHash(r, p)
		}
		fn, sn = fn>>1, sn>>1
	}
	if sn != 0 {
		return tlog.Hash{}, errors.New("auditfile: inclusion proof too short")
	}
	return r, nil
}
