package audit

import (
	"context"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// VerifyError reports the first record at which a log fails verification.
type VerifyError struct {
	Index  int64  // first bad record index
	Reason string // what is wrong there
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("audit: record %d: %s", e.Index, e.Reason)
}

// verifyChunk is how many records Verify reads and checks at a time. It is
// a variable only so that the tests can cross chunk boundaries without
// filling a database with tens of thousands of records.
var verifyChunk int64 = 8192

// Verify recomputes every stored hash from the stored records, in order,
// and compares it with the one in storage. It returns the size and the
// recomputed root hash of the log, or a *VerifyError naming the first bad
// record: one that is missing, does not decode, or whose recomputed hashes
// differ from the stored ones (a changed, inserted, deleted or reordered
// record, or a changed hash), or the first index past the last record if
// hashes are stored beyond it. It reads the log in chunks and holds only
// about log₂(size) hashes between them. A truncated tail with its hashes
// removed verifies: compare against an older checkpoint with CheckExtends.
// progress, if not nil, is called after each chunk.
func (l *Log) Verify(ctx context.Context, progress func(done, total int64)) (size int64, root tlog.Hash, err error) {
	total, err := l.Size(ctx)
	if err != nil {
		return 0, tlog.Hash{}, fmt.Errorf("audit: verify: %w", err)
	}
	v := verifier{st: l.st, known: map[int64]tlog.Hash{}}
	for v.next < total {
		if err := v.chunk(ctx, min(verifyChunk, total-v.next)); err != nil {
			return 0, tlog.Hash{}, err
		}
		if progress != nil {
			progress(v.next, total)
		}
	}
	if err := v.checkNoExtraHashes(ctx, total); err != nil {
		return 0, tlog.Hash{}, err
	}
	root, err = tlog.TreeHash(total, memReader{known: v.known})
	if err != nil {
		return 0, tlog.Hash{}, fmt.Errorf("audit: verify: %w", err)
	}
	if progress != nil && total == 0 {
		progress(0, 0)
	}
	return total, root, nil
}

// verifier holds Verify's state between chunks: the next record index and
// the recomputed frontier hashes of the tree of that size.
type verifier struct {
	st    Storage
	next  int64
	known map[int64]tlog.Hash
}

// chunk checks up to n records from v.next.
func (v *verifier) chunk(ctx context.Context, n int64) error {
	start := v.next
	leaves, err := v.st.ScanLeaves(ctx, start, int(n))
	if err != nil {
		return fmt.Errorf("audit: verify: %w", err)
	}
	// Recompute the hashes of the good prefix of the chunk; remember the
	// first bad leaf, reported unless a stored hash goes wrong before it.
	var bad *VerifyError
	var good [][]byte
	for i, leaf := range leaves {
		want := start + int64(i)
		if leaf.Index != want {
			bad = &VerifyError{Index: want, Reason: "record missing"}
			break
		}
		if _, err := Decode(leaf.Data); err != nil {
			bad = &VerifyError{Index: want, Reason: fmt.Sprintf("record does not decode: %v", err)}
			break
		}
		good = append(good, leaf.Data)
	}
	if bad == nil && int64(len(leaves)) < n {
		bad = &VerifyError{Index: start + int64(len(leaves)), Reason: "record missing"}
	}
	hashes, err := storedHashes(start, good, v.known, memReader{known: v.known})
	if err != nil {
		return fmt.Errorf("audit: verify: %w", err)
	}
	if err := v.compare(ctx, tlog.StoredHashCount(start), hashes); err != nil {
		return err
	}
	if bad != nil {
		return bad
	}
	v.next = start + int64(len(good))
	v.known, err = frontierOf(v.next, memReader{known: v.known})
	if err != nil {
		return fmt.Errorf("audit: verify: %w", err)
	}
	return nil
}

// compare checks the stored hashes from stored index base against want.
func (v *verifier) compare(ctx context.Context, base int64, want []tlog.Hash) error {
	for done := 0; done < len(want); {
		got, err := v.st.ScanHashes(ctx, base+int64(done), len(want)-done)
		if err != nil {
			return fmt.Errorf("audit: verify: %w", err)
		}
		for i, h := range got {
			x := base + int64(done+i)
			if h.Index != x {
				return &VerifyError{Index: recordOf(x), Reason: fmt.Sprintf("stored hash %d missing", x)}
			}
			if h.Hash != want[done+i] {
				return &VerifyError{Index: recordOf(x), Reason: fmt.Sprintf("stored hash %d does not match the records", x)}
			}
		}
		if len(got) == 0 {
			x := base + int64(done)
			return &VerifyError{Index: recordOf(x), Reason: fmt.Sprintf("stored hash %d missing", x)}
		}
		done += len(got)
	}
	return nil
}

// checkNoExtraHashes refuses stored hashes past those of a log of size
// total, unless the log has grown since Verify began.
func (v *verifier) checkNoExtraHashes(ctx context.Context, total int64) error {
	x := tlog.StoredHashCount(total)
	extra, err := v.st.ScanHashes(ctx, x, 1)
	if err != nil {
		return fmt.Errorf("audit: verify: %w", err)
	}
	if len(extra) == 0 {
		return nil
	}
	if now, err := v.st.Size(ctx); err != nil || now > total {
		return err // appended meanwhile: the extra hashes are the new records'
	}
	return &VerifyError{Index: total, Reason: fmt.Sprintf("stored hash %d beyond the last record", extra[0].Index)}
}

// recordOf returns the record whose append stored hash index x.
func recordOf(x int64) int64 {
	level, n := tlog.SplitStoredHashIndex(x)
	return (n+1)<<level - 1
}
