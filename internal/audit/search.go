package audit

import (
	"context"
	"fmt"
	"time"
)

// MaxSearch caps the records one search returns.
const MaxSearch = 1000

// Filter selects records in a search. Zero fields select everything.
// Results come newest first; Before is the cursor: only records with an
// index below it (0: no cursor).
type Filter struct {
	Contractor string
	TokenID    string
	Service    string
	Action     string
	Decision   string
	Since      time.Time // records at or after
	Until      time.Time // records before
	Before     int64
	Limit      int // at most MaxSearch; 0 means 100
}

// Entry is a record found by a search, with its index and leaf.
type Entry struct {
	Index  int64
	Record Record
	Leaf   []byte
}

// Searcher finds records. A Storage that can search implements it; its
// answers are for finding records fast, not for trusting them: a record's
// proof is its inclusion proof against a signed checkpoint.
type Searcher interface {
	Search(ctx context.Context, f Filter) ([]Entry, error)
}

// CheckIndex checks a search index of the first size records of st
// against their leaves: the tree covers only the leaf, so an index row
// edited or deleted could hide a record from a search without Verify
// noticing. rows reads the index's columns of records first..end-1, and
// cols is what the index should hold for a record. It returns a
// *VerifyError naming the first record missing from the index, whose
// indexed columns differ from its leaf's, or whose leaf does not decode.
// Engines call it from their CheckSearchColumns, after bringing their
// index up to date.
func CheckIndex[C comparable](ctx context.Context, st Storage, size int64,
	rows func(ctx context.Context, first, end int64) (map[int64]C, error), cols func(Record) C) error {
	const chunk = 8192
	for first := int64(0); first < size; first += chunk {
		end := min(first+chunk, size)
		got, err := rows(ctx, first, end)
		if err != nil {
			return fmt.Errorf("audit: index columns: %w", err)
		}
		leaves, err := st.ScanLeaves(ctx, first, int(end-first))
		if err != nil {
			return err
		}
		for _, l := range leaves {
			if l.Index >= end {
				break
			}
			c, ok := got[l.Index]
			if !ok {
				return &VerifyError{Index: l.Index, Reason: "record is missing from the search index (removed to hide it from search)"}
			}
			r, err := Decode(l.Data)
			if err != nil {
				return &VerifyError{Index: l.Index, Reason: "record does not decode: " + err.Error()}
			}
			if c != cols(r) {
				return &VerifyError{Index: l.Index, Reason: "search columns differ from the record (edited to hide it from search)"}
			}
		}
	}
	return nil
}
