package audit

import (
	"context"
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
